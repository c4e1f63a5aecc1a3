"""The Jämtland demo campaign and its deterministic district file."""

import importlib.util
import json
from pathlib import Path

from sqlmodel import func, select

from api.demo import CAMPAIGN_TARGETS, load_demo
from api.models import Campaign, District, DistrictAssignment, Forening, Kommun, Target, User
from api.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]


def _counts(session) -> dict[str, int]:
    return {
        m.__name__: session.exec(select(func.count()).select_from(m)).one()
        for m in (Kommun, District, Forening, User, Campaign, Target, DistrictAssignment)
    }


def test_demo_loads_jamtland_and_is_idempotent(session):
    load_demo(session=session, districts_path=get_settings().demo_districts_path)
    first = _counts(session)
    assert first["Kommun"] == 8 and first["District"] == 83
    codes = {k.code: k.name for k in session.exec(select(Kommun))}
    assert codes == {
        "2303": "Ragunda",
        "2305": "Bräcke",
        "2309": "Krokom",
        "2313": "Strömsund",
        "2321": "Åre",
        "2326": "Berg",
        "2361": "Härjedalen",
        "2380": "Östersund",
    }
    top = select(Target).where(Target.unit_kind == "partidistrikt")
    targets = {t.metric: t.value for t in session.exec(top)}
    assert (
        targets
        == CAMPAIGN_TARGETS
        == {
            "conversations": 43_000,
            "active_volunteers": 155,
            "new_members": 310,
        }
    )
    clubs = session.exec(select(Forening).where(Forening.kind == "workplace")).all()
    assert clubs and all(
        session.exec(select(District).where(District.forening_id == c.id)).first() is None
        for c in clubs
    )
    uncovered = session.exec(select(District).where(District.forening_id.is_(None))).all()
    assert 0 < len(uncovered) < 83
    assert first["User"] > first["Forening"]
    load_demo(session=session, districts_path=get_settings().demo_districts_path)
    assert _counts(session) == first


def test_demo_district_file_is_deterministic_and_up_to_date(tmp_path):
    spec = importlib.util.spec_from_file_location("build", ROOT / "scripts/build_demo_districts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path / "demo.geojson")
    assert (
        tmp_path / "demo.geojson"
    ).read_bytes() == get_settings().demo_districts_path.read_bytes()


def test_simulated_weeks_give_a_believable_preview_for_the_district_admin(tmp_path):
    """The demo commands end to end: load, simulate some weeks, render the admin's email."""
    from api import testing

    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"

    def knacka(*args: str) -> str:
        return testing.knacka(url, *args, timeout=300).stdout

    knacka("db", "upgrade")
    knacka("load-demo")
    simulated = json.loads(knacka("simulate", "--weeks", "6").strip().splitlines()[-1])
    assert simulated["contacts"] > 1000 and simulated["nightly"]["status"] == "ran"
    knacka("render-email", "distrikt@example.org", "--out", str(tmp_path / "mail"))
    text = (tmp_path / "mail" / "email.txt").read_text(encoding="utf-8")
    kommun_lines = [line for line in text.splitlines() if line.startswith("  ") and "/" in line]
    names = {"Ragunda", "Bräcke", "Krokom", "Strömsund", "Åre", "Berg", "Härjedalen", "Östersund"}
    assert {line.split()[0] for line in kommun_lines} == names
    total = int(text.split("Samtal: ")[1].split(" av ")[0].replace(" ", ""))
    assert 1000 < total < 43_000
    assert (tmp_path / "mail" / "chart.png").read_bytes().startswith(b"\x89PNG")
    assert "multipart/alternative" in (tmp_path / "mail" / "email.eml").read_text()
