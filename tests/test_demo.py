"""The Jämtland demo campaign and its deterministic district file."""

import importlib.util
import json
import math
import statistics
from pathlib import Path

from sqlalchemy import create_engine
from sqlmodel import Session, func, select

from api.demo import CAMPAIGN_TARGETS, load_demo
from api.models import (
    Address,
    Campaign,
    ContactLog,
    District,
    DistrictAssignment,
    Forening,
    Kommun,
    Target,
    Turf,
    TurfAddress,
    TurfLease,
    TurfStat,
    User,
    Visit,
)
from api.settings import get_settings
from api.turfs.coverage import district_coverage, rebuild_turf_stats

ROOT = Path(__file__).resolve().parents[1]


def _counts(session) -> dict[str, int]:
    return {
        m.__name__: session.exec(select(func.count()).select_from(m)).one()
        for m in (
            Kommun,
            District,
            Forening,
            User,
            Campaign,
            Target,
            DistrictAssignment,
            Address,
            Turf,
            TurfAddress,
            TurfLease,
        )
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


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_district_file_is_deterministic_and_up_to_date(tmp_path):
    _script("build_demo_districts").main(tmp_path / "demo.geojson")
    assert (
        tmp_path / "demo.geojson"
    ).read_bytes() == get_settings().demo_districts_path.read_bytes()


def test_demo_address_file_is_deterministic_and_up_to_date(tmp_path):
    _script("build_demo_addresses").main(tmp_path / "demo.csv")
    assert (tmp_path / "demo.csv").read_bytes() == get_settings().demo_addresses_path.read_bytes()


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
    # the nightly run after the simulation built door coverage from the simulated walks
    assert simulated["visits"] > 0
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            knocked, answered = session.exec(
                select(func.sum(TurfStat.households_knocked), func.sum(TurfStat.answered))
            ).one()
            coverage = district_coverage(
                session=session, district_ids=set(session.exec(select(Turf.district_id)))
            )
    finally:
        engine.dispose()
    assert knocked > 0 and answered > 0
    assert any(doors > 0 and share > 0 for doors, _, share in coverage.values())
    knacka("render-email", "distrikt@example.org", "--out", str(tmp_path / "mail"))
    text = (tmp_path / "mail" / "email.txt").read_text(encoding="utf-8")
    kommun_lines = [line for line in text.splitlines() if line.startswith("  ") and "/" in line]
    names = {"Ragunda", "Bräcke", "Krokom", "Strömsund", "Åre", "Berg", "Härjedalen", "Östersund"}
    assert {line.split()[0] for line in kommun_lines} == names
    total = int(text.split("Samtal: ")[1].split(" av ")[0].replace(" ", ""))
    assert 1000 < total < 43_000
    assert (tmp_path / "mail" / "chart.png").read_bytes().startswith(b"\x89PNG")
    assert "multipart/alternative" in (tmp_path / "mail" / "email.eml").read_text()


def test_the_demo_has_addresses_in_towns_cut_into_leased_turfs_and_simulated_walks(session):
    """Addresses only in the real towns (villas of one household, blocks of many, some big
    buildings with several entrances); every address of a cut district in exactly one live
    turf; live leases to volunteers and to föreningar; and after the simulation door visits
    that match the records naming their turfs, with nothing but the neutral status."""
    from pyproj import Transformer

    from api.demo import simulate_logging
    from api.models import Outcome, utcnow
    from api.turfs.service import live_leases

    load_demo(session=session, districts_path=get_settings().demo_districts_path)
    towns = _script("build_demo_districts").TOWNS
    addresses = session.exec(
        select(Address, Kommun.code).join(Kommun, Kommun.id == Address.kommun_id)
    ).all()
    assert len(addresses) > 1000
    # clustered in its kommun's real towns: distances in spreads of the nearest town (the
    # population model of the districts: normal around each town)
    to_metres = Transformer.from_crs(4326, 3006, always_xy=True)
    spreads = []
    for address, kommun in addresses:
        x, y = to_metres.transform(address.lon, address.lat)
        spreads.append(
            min(
                math.dist((x, y), to_metres.transform(lon, lat)) / (spread_km * 1000)
                for _, lon, lat, _, spread_km in towns[kommun]
            )
        )
    assert max(spreads) < 4 and statistics.median(spreads) < 1
    sizes = [a.households for a, _ in addresses]
    assert sizes.count(1) > 200 and max(sizes) > 5
    entrances: dict[tuple, int] = {}
    for a, _ in addresses:
        key = (a.street, a.number, a.postcode)
        entrances[key] = entrances.get(key, 0) + 1
    assert max(entrances.values()) >= 4
    # each district with addresses got exactly its own households, all of them in turfs
    cut = set(session.exec(select(Address.district_id)))
    assert len(cut) == 10
    for district in session.exec(select(District).where(District.id.in_(cut))):
        own = sum(a.households for a, _ in addresses if a.district_id == district.id)
        assert own == district.households
    in_live_turfs = session.exec(
        select(TurfAddress.address_id, func.count())
        .join(Turf, Turf.id == TurfAddress.turf_id)
        .where(Turf.retired_at.is_(None))
        .group_by(TurfAddress.address_id)
    ).all()
    assert sorted(in_live_turfs) == sorted((a.id, 1) for a, _ in addresses)
    assert set(session.exec(select(Turf.district_id))) == cut
    turf_ids = set(session.exec(select(Turf.id)))
    live = live_leases(session=session, turf_ids=turf_ids, now=utcnow()).values()
    assert len(live) > 10 and len(live) < len(turf_ids)
    assert {le.user_id is None for le in live} == {True, False}  # volunteers and föreningar

    simulate_logging(session=session, weeks=3)
    rebuild_turf_stats(session, None)
    visits = session.exec(select(Visit)).all()
    assert visits and {v.status for v in visits} <= {"answered", "not_home", "no_access"}
    # one door record naming the turf per visit, on its day, answered exactly when the
    # record's outcome says someone opened
    records = session.exec(select(ContactLog).where(ContactLog.turf_id.is_not(None))).all()
    answered = {Outcome.conversation, Outcome.refused, Outcome.moved}

    def tally(rows, opened):
        found: dict[tuple, list[int]] = {}
        for r in rows:
            counts = found.setdefault((r.turf_id, r.day), [0, 0])
            counts[0] += 1
            counts[1] += opened(r)
        return found

    assert tally(visits, lambda v: v.status == "answered") == tally(
        records, lambda r: r.outcome in answered
    )
    assert {r.kind for r in records} == {"door"}
    coverage = district_coverage(session=session, district_ids=cut)
    assert sum(doors for doors, _, _ in coverage.values()) == len({v.address_id for v in visits})
    assert any(share for _, _, share in coverage.values())
