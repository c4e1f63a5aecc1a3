"""Election results per valdistrikt: import, the priority formula and ranking, the export."""

import csv
import io
import json
from pathlib import Path

import pytest
from sqlmodel import func, select
from typer.testing import CliRunner

from api.cli import app
from api.errors import Unprocessable
from api.models import ElectionResult, Role
from api.results.service import import_results, parse_results, party_votes
from api.settings import get_settings
from tests import factories as f

runner = CliRunner()
REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"

HEADER = [
    "LÄNSKOD",
    "KOMMUNKOD",
    "VALKRETSKOD",
    "VALDISTRIKTSKOD",
    "LÄNSNAMN",
    "KOMMUNNAMN",
    "VALDISTRIKTSNAMN",
    "M",
    "S",
    "SD",
    "ÖVRIGA ANMÄLDA PARTIER",
    "BLANKA",
    "RÖSTER GILTIGA",
    "RÖSTANDE",
    "RÖSTBERÄTTIGADE",
    "VALDELTAGANDE",
]


def _line(district: int, m: int, s: int, sd: int, eligible: int, voted: int) -> list:
    valid = m + s + sd
    return [
        23,
        80,
        1,
        district,
        "Jämtlands län",
        "Östersund",
        f"Distrikt {district}",
        m,
        s,
        sd,
        0,
        voted - valid,
        valid,
        voted,
        eligible,
        f"{100 * voted / eligible:.2f}".replace(".", ","),
    ]


# Unpadded codes as Valmyndigheten writes them: län 23, kommun 80, district 1 -> 23800001.
LINES = [
    _line(1, 100, 400, 100, 1000, 600),  # 1000 × 0.4 × 400/600 = 266.7
    _line(2, 300, 200, 100, 1000, 900),  # 1000 × 0.1 × 200/600 = 33.3
    _line(3, 50, 500, 50, 2000, 1200),  # 2000 × 0.4 × 500/600 = 666.7
    _line(0, 10, 20, 5, 35, 35),  # the kommun's uppsamlingsdistrikt
    _line(99, 1, 1, 1, 10, 3),  # no such district any more
]


def _file(lines=LINES, header=HEADER, sep=",", bom=True) -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=sep, lineterminator="\n").writerows([header, *lines])
    return ("\ufeff" if bom else "").encode() + out.getvalue().encode()


@pytest.fixture
def kommun(session):
    k = f.kommun(session)
    for col in range(3):
        f.district(session, k, f"2380{col + 1:04d}", col)
    return k


def _count(session) -> int:
    return session.exec(select(func.count()).select_from(ElectionResult)).one()


def test_bom_unpadded_codes_and_uppsamlingsdistrikt(session, kommun):
    summary = import_results(session=session, election="Riksdag 2018", raw=_file())
    assert summary.rows == 4
    assert summary.districts_matched == 3
    assert summary.codes_unknown == ["23800099"]
    assert summary.collection_rows_skipped == 1
    assert summary.parties == ["M", "S", "SD", "ÖVRIGA ANMÄLDA PARTIER"]
    stored = session.exec(select(ElectionResult).order_by(ElectionResult.district_id)).all()
    assert [r.eligible for r in stored] == [1000, 1000, 2000]
    assert stored[0].turnout == pytest.approx(0.6)
    assert json.loads(stored[0].votes)["S"] == 400
    assert (stored[0].voted, stored[0].valid) == (600, 600)


def test_semicolons_and_no_bom_read_alike(session, kommun):
    rows, collection, _ = parse_results(_file(sep=";", bom=False))
    assert (len(rows), collection) == (4, 1)
    assert rows[0]["code"] == "23800001"


def test_reimport_of_the_same_election_replaces_its_rows(session, kommun):
    import_results(session=session, election="Riksdag 2018", raw=_file())
    import_results(session=session, election="Riksdag 2022", raw=_file())
    again = import_results(session=session, election="Riksdag 2018", raw=_file(LINES[:1]))
    assert again.replaced == 3
    assert _count(session) == 4  # one for 2018, three for 2022


BAD = [
    ("a missing column", _file(header=HEADER[:-2] + ["X", "Y"]), "columns: RÖSTBERÄTTIGADE"),
    (
        "a code that is no number",
        _file([[23, 80, 1, "0001a", *LINES[0][4:]]]),
        "VALDISTRIKTSKOD: line 2",
    ),
    ("a district twice", _file([LINES[0], LINES[0]]), "VALDISTRIKTSKOD: line 3 repeats"),
    (
        "more voters than eligible",
        _file([_line(1, 100, 100, 100, 100, 400)]),
        "RÖSTANDE: line 2 holds more than RÖSTBERÄTTIGADE",
    ),
    ("votes that are no number", _file([LINES[0][:8] + ["x"] + LINES[0][9:]]), "S: line 2"),
    ("a short line", _file([LINES[0][:5]]), "file: line 2 has 5 fields"),
    ("not UTF-8", "LÄNSKOD\n".encode("latin-1"), "file: not UTF-8"),
    ("an empty file", b"", "file: the CSV is empty"),
    ("only a header", _file([]), "file: the CSV has no rows"),
]


@pytest.mark.parametrize("raw,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_files_are_refused_by_name_and_nothing_is_written(session, kommun, raw, message):
    import_results(session=session, election="Riksdag 2018", raw=_file())
    with pytest.raises(Unprocessable) as error:
        import_results(session=session, election="Riksdag 2018", raw=raw)
    assert message in error.value.message
    assert "nothing was written" in error.value.message
    assert _count(session) == 3  # the earlier import is untouched


@pytest.mark.parametrize("name", ["", " ", "x" * 101, "Riksdag\x002018"])
def test_a_bad_election_name_is_refused(session, kommun, name):
    with pytest.raises(Unprocessable, match="election:"):
        import_results(session=session, election=name, raw=_file())
    assert _count(session) == 0


def test_party_columns_are_found_by_abbreviation_or_name():
    assert party_votes({"Arbetarepartiet-Socialdemokraterna": 5}, "S") == (
        "Arbetarepartiet-Socialdemokraterna",
        5,
    )
    assert party_votes({"S": 7}, "s") == ("S", 7)
    assert party_votes({"SD": 3, "M": 1}, "Moderaterna") is None
    assert party_votes({"MP": 2}, "mp") == ("MP", 2)


def test_priorities_rank_by_eligible_times_absent_share_times_party_share(client, session, kommun):
    import_results(session=session, election="Riksdag 2018", raw=_file())
    response = client.get("/kommuner/2380/priorities", params={"election": "Riksdag 2018"})
    assert response.status_code == 200, response.text
    ranked = response.json()
    assert [r["district_code"] for r in ranked] == ["23800003", "23800001", "23800002"]
    assert [r["rank"] for r in ranked] == [1, 2, 3]
    assert [r["priority"] for r in ranked] == [
        pytest.approx(2000 * 0.4 * 500 / 600, abs=0.05),
        pytest.approx(1000 * 0.4 * 400 / 600, abs=0.05),
        pytest.approx(1000 * 0.1 * 200 / 600, abs=0.05),
    ]
    assert ranked[0]["party"] == "S"
    assert ranked[0]["households_estimate"] == round(2000 / 1.8)
    # Without election: the latest imported.
    assert client.get("/kommuner/2380/priorities").json() == ranked
    missing = client.get("/kommuner/2380/priorities", params={"election": "Kommunval 1970"})
    assert missing.status_code == 404


def test_the_priority_party_is_a_setting(client, session, kommun, settings):
    import_results(session=session, election="Riksdag 2018", raw=_file())
    settings.priority_party = "M"
    ranked = client.get("/kommuner/2380/priorities").json()
    # M: 1000×0.4×100/600 = 66.7; 1000×0.1×300/600 = 50; 2000×0.4×50/600 = 66.7 (tie: code)
    assert [r["district_code"] for r in ranked] == ["23800001", "23800003", "23800002"]


def test_priorities_need_a_lead_of_the_kommun(anon_client, session, kommun):
    import_results(session=session, election="Riksdag 2018", raw=_file())
    fo = f.forening(session, kommun)
    volunteer = f.auth_headers(session, f.user(session, Role.volunteer, fo))
    lead = f.auth_headers(session, f.user(session, Role.kommun_lead, kommun))
    assert anon_client.get("/kommuner/2380/priorities", headers=volunteer).status_code == 403
    assert anon_client.get("/kommuner/2380/priorities", headers=lead).status_code == 200


def test_the_district_export_appends_priority_and_rank(client, session, kommun, monkeypatch):
    monkeypatch.setenv("KNACKA_PRIORITY_PARTY", "S")
    get_settings.cache_clear()
    import_results(session=session, election="Riksdag 2018", raw=_file())
    camp = f.campaign(session, f.partidistrikt(session))
    response = client.get(f"/campaigns/{camp.id}/export", params={"level": "district"})
    assert response.status_code == 200, response.text
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:3] == ["enhetstyp", "enhet_id", "enhet"]
    assert rows[0][-2:] == ["priority", "priority_rank"]
    code = rows[0].index("enhet_kod")
    by_code = {r[code]: (r[-2], r[-1]) for r in rows[1:]}
    assert by_code["23800003"] == ("666.7", "1")
    assert by_code["23800002"] == ("33.3", "3")
    kommun_rows = client.get(f"/campaigns/{camp.id}/export", params={"level": "kommun"}).text
    assert "priority" not in kommun_rows.splitlines()[0]
    get_settings.cache_clear()


def test_command_prints_the_summary_as_json(cli_session, kommun, tmp_path):
    path = tmp_path / "results.csv"
    path.write_bytes(_file())
    result = runner.invoke(
        app, ["import-results", str(path), "--election", "Riksdag 2018", "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["rows"], summary["districts_matched"]) == (4, 3)
    assert summary["codes_unknown"] == ["23800099"]
    assert summary["collection_rows_skipped"] == 1
    bad = tmp_path / "bad.csv"
    bad.write_bytes(_file(header=HEADER[1:], lines=[LINES[0][1:]]))
    failed = runner.invoke(app, ["import-results", str(bad), "--election", "Riksdag 2018"])
    assert failed.exit_code == 1
    assert "columns: LÄNSKOD" in failed.output


def _real_results_file() -> Path | None:
    if not REALDATA.is_dir():
        return None
    for path in sorted(REALDATA.rglob("*.csv")):
        with path.open("rb") as raw:
            head = raw.read(4096).decode("utf-8-sig", errors="replace")
        if "VALDISTRIKTSKOD" in head and "RÖSTBERÄTTIGADE" in head:
            return path
    return None


def test_a_real_results_file_when_present(session):
    path = _real_results_file()
    if path is None:
        pytest.skip("no Valmyndigheten result file under ../shared/realdata")
    rows, collection, parties = parse_results(path.read_bytes())
    assert rows and collection >= 1
    assert all(len(r["code"]) == 8 for r in rows)
    assert any(party_votes(r["votes"], "S") for r in rows[:1])
