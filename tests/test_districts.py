"""Districts: import (API and service), GeoJSON views, assignment and coverage."""

import json
from pathlib import Path

import geopandas as gpd
import pytest
from sqlmodel import select

from api.auth.scope import Scope
from api.districts import router as districts_router
from api.districts.schemas import ImportOptions
from api.districts.service import import_district_file
from api.models import District, DistrictAssignment, ForeningKind
from api.org.service import import_kommuner_csv
from tests import factories as f

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
STOCKHOLM = REALDATA / "valmyndigheten-valdistrikt-2022" / "VD_01_20220910_Val_20220911.json"
KOMMUN_LIST = REALDATA / "swedish-geodata" / "municipality_county.csv"


def test_import_creates_then_reimport_changes_nothing(client, session):
    f.kommun(session)
    features = f.district_features(n=3)
    first = f.upload_districts(client, features)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["created"], body["updated"], body["unchanged"]) == (3, 0, 0)
    assert body["kommuner"] == [{"code": "2380", "name": "Östersund", "districts_in_file": 3}]
    again = f.upload_districts(client, features).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 3)
    assert f.district_count(session) == 3


def test_changed_and_missing_districts_are_reported_never_deleted(client, session):
    f.kommun(session)
    features = f.district_features(n=3)
    f.upload_districts(client, features)
    newer = [
        features[0],
        f.feature(features[1]["properties"]["Lkfv"], "Nytt namn", geometry=features[1]["geometry"]),
    ]
    body = f.upload_districts(client, newer).json()
    assert (body["created"], body["updated"], body["unchanged"]) == (0, 1, 1)
    assert body["updated_codes"] == ["23800002"]
    assert body["missing_from_file"] == ["23800003"]
    assert f.district_count(session) == 3
    assert client.get("/districts/23800002").json()["name"] == "Nytt namn"


def test_dry_run_writes_nothing(client, session):
    f.kommun(session)
    body = f.upload_districts(client, f.district_features(n=2), dry_run=True).json()
    assert body["dry_run"] and body["created"] == 2
    assert f.district_count(session) == 0


BAD_FILES = [
    ("empty", [], {}, "holds no features"),
    ("missing column", [f.feature("23800001")], {"code_column": "Kod"}, "'Kod' (code) not in"),
    ("duplicate codes", [f.feature("23800001"), f.feature("23800001")], {}, "duplicate codes"),
    (
        "non-polygon",
        [
            f.feature("23800001"),
            f.feature(
                "23800002", geometry={"type": "LineString", "coordinates": [[14, 63], [15, 64]]}
            ),
        ],
        {},
        "23800002 are LineString, not polygons",
    ),
    (
        "unknown kommun",
        [f.feature("23800001"), f.feature("23210001")],
        {},
        "no kommun with code 2321",
    ),
    (
        "sweref without crs",
        [
            f.feature(
                "23800001",
                geometry={
                    "type": "Polygon",
                    "coordinates": [
                        [[480000, 7000000], [481000, 7000000], [481000, 7001000], [480000, 7000000]]
                    ],
                },
            )
        ],
        {},
        "they look like EPSG:3006",
    ),
]


@pytest.mark.parametrize(
    ("case", "features", "params", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES]
)
def test_bad_files_are_refused_and_nothing_is_written(
    client, session, case, features, params, message
):
    f.kommun(session)
    response = f.upload_districts(client, features, **params)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert f.district_count(session) == 0


def test_unknown_kommun_names_the_districts(client, session):
    f.kommun(session)
    body = f.upload_districts(client, [f.feature("23800001"), f.feature("23210001")]).json()
    errors = {e["field"]: e["values"] for e in body["errors"]}
    assert errors == {"features": ["23210001"], "kommuner": ["2321"]}


def test_unreadable_upload_and_wrong_kind_of_file(client, session):
    f.kommun(session)
    junk = client.post(
        "/districts/import", files={"file": ("d.geojson", b"{not json", "text/plain")}
    )
    assert junk.status_code == 422 and "cannot read" in junk.json()["detail"]
    csv = client.post("/districts/import", files={"file": ("d.csv", b"a,b", "text/csv")})
    assert csv.status_code == 422 and csv.json()["detail"].startswith("file:")
    unknown_option = client.post(
        "/districts/import", params={"colour": "red"}, files={"file": ("d.geojson", b"{}", "x")}
    )
    assert unknown_option.status_code == 422
    assert f.district_count(session) == 0


def test_oversized_upload_is_413(client, session, monkeypatch):
    monkeypatch.setattr(districts_router, "MAX_UPLOAD_BYTES", 100)
    f.kommun(session)
    response = f.upload_districts(client, f.district_features(n=5))
    assert response.status_code == 413 and "larger than" in response.json()["detail"]
    assert f.district_count(session) == 0


def test_invalid_geometry_is_repaired_and_reported(client, session):
    f.kommun(session)
    x, y = f.LON, f.LAT
    bowtie = {
        "type": "Polygon",
        "coordinates": [[[x, y], [x + 0.01, y + 0.01], [x + 0.01, y], [x, y + 0.01], [x, y]]],
    }
    body = f.upload_districts(client, [f.feature("23800001", geometry=bowtie)]).json()
    assert body["created"] == 1
    assert body["repaired"][0]["code"] == "23800001"
    assert "Self-intersection" in body["repaired"][0]["reason"]


def test_geojson_is_served_in_wgs84(client, session):
    f.kommun(session)
    features = f.district_features(n=2)
    f.upload_districts(client, features)
    one = client.get("/districts/23800001/geojson")
    assert one.headers["content-type"] == "application/geo+json"
    assert one.json()["geometry"]["coordinates"] == features[0]["geometry"]["coordinates"]
    assert one.json()["properties"]["kommun_code"] == "2380"
    collection = client.get("/districts.geojson", params={"kommun": "2380"}).json()
    assert [feat["id"] for feat in collection["features"]] == ["23800001", "23800002"]
    listed = client.get("/districts", params={"kommun": "2380", "limit": 1}).json()
    assert listed["total"] == 2 and listed["items"][0]["bbox"][0] == pytest.approx(f.LON)
    assert client.get("/districts/99999999/geojson").status_code == 404


def _setup_assignable(session, client):
    ost = f.kommun(session)
    are = f.kommun(session, "2321", "Åre")
    f.upload_districts(client, f.district_features(n=4))
    return {
        "ost": ost,
        "geo": f.forening(session, ost, "S-föreningen Frösön"),
        "geo2": f.forening(session, ost, "S-föreningen Brunflo"),
        "club": f.forening(session, ost, "S-klubben Sjukhuset", ForeningKind.workplace),
        "are": f.forening(session, are, "S-föreningen Järpen"),
    }


def test_assign_one_district_and_keep_history(client, session):
    u = _setup_assignable(session, client)
    r = client.put("/districts/23800001/forening", json={"forening_id": u["geo"].id})
    assert r.status_code == 200 and r.json()["forening_id"] == u["geo"].id
    client.put("/districts/23800001/forening", json={"forening_id": u["geo2"].id})
    client.put("/districts/23800001/forening", json={"forening_id": None})
    history = client.get("/districts/23800001/assignments").json()
    assert [(h["from_forening_id"], h["to_forening_id"]) for h in history] == [
        (None, u["geo"].id),
        (u["geo"].id, u["geo2"].id),
        (u["geo2"].id, None),
    ]
    assert all(h["via"] == "api" and h["changed_at"] for h in history)


@pytest.mark.parametrize(
    ("who", "status", "message"),
    [
        ("club", 422, "workplace club and holds no districts"),
        ("are", 422, "belongs to another kommun"),
        ("nobody", 422, "forening_id: förening 999999 does not exist"),
    ],
)
def test_assignment_refusals(client, session, who, status, message):
    u = _setup_assignable(session, client)
    fid = u[who].id if who in u else 999999
    r = client.put("/districts/23800001/forening", json={"forening_id": fid})
    assert r.status_code == status and message in r.json()["detail"]
    assert session.exec(select(DistrictAssignment)).all() == []


def test_assign_unknown_district_is_404(client, session):
    u = _setup_assignable(session, client)
    r = client.put("/districts/00000000/forening", json={"forening_id": u["geo"].id})
    assert r.status_code == 404


def _csv(client, text):
    return client.post(
        "/districts/assignments", files={"file": ("a.csv", text.encode(), "text/csv")}
    )


def test_bulk_assignment_by_name_or_id(client, session):
    u = _setup_assignable(session, client)
    text = (
        "district_code,forening\n"
        f"23800001,{u['geo'].id}\n"
        "23800002,s-föreningen brunflo\n"
        "23800003,\n"
    )
    body = _csv(client, text).json()
    assert (body["rows"], body["changed"], body["unchanged"]) == (3, 2, 1)
    assert [r["status"] for r in body["results"]] == ["assigned", "assigned", "unchanged"]
    again = _csv(client, text).json()
    assert again["changed"] == 0


def test_bulk_assignment_with_one_bad_row_applies_nothing(client, session):
    u = _setup_assignable(session, client)
    text = (
        "district_code,forening\n"
        f"23800001,{u['geo'].id}\n"
        "23809999,S-föreningen Frösön\n"
        f"23800002,{u['club'].id}\n"
        "23800003,S-föreningen Järpen\n"
        "23800001,S-föreningen Brunflo\n"
    )
    r = _csv(client, text)
    assert r.status_code == 422 and "4 of 5 rows are invalid" in r.json()["detail"]
    errors = {e["line"]: e for e in r.json()["errors"]}
    assert errors[3]["field"] == "district_code" and "23809999" in errors[3]["message"]
    assert "workplace club" in errors[4]["message"]
    assert "no förening 'S-föreningen Järpen'" in errors[5]["message"]
    assert "appears again (first on line 2)" in errors[6]["message"]
    assert all(d.forening_id is None for d in session.exec(select(District)))


def test_bulk_assignment_header_is_checked(client, session):
    _setup_assignable(session, client)
    r = _csv(client, "code;forening\n23800001;1\n")
    assert r.status_code == 422 and r.json()["detail"].startswith("columns:")


def test_uncovered_view_and_coverage(client, session):
    u = _setup_assignable(session, client)
    client.put("/districts/23800001/forening", json={"forening_id": u["geo"].id})
    view = client.get("/kommuner/2380/uncovered-districts")
    assert view.headers["content-type"] == "application/geo+json"
    body = view.json()
    assert [feat["id"] for feat in body["features"]] == ["23800002", "23800003", "23800004"]
    assert body["summary"]["districts"] == 4 and body["summary"]["uncovered"] == 3
    assert body["summary"]["uncovered_area_km2"] > 0
    coverage = {row["kommun_code"]: row for row in client.get("/districts/coverage").json()}
    assert coverage["2380"] == {
        "kommun_code": "2380",
        "kommun_name": "Östersund",
        "districts": 4,
        "assigned": 1,
        "uncovered": 3,
    }
    assert coverage["2321"]["districts"] == 0
    assert client.get("/kommuner/9999/uncovered-districts").status_code == 404


@pytest.mark.skipif(not STOCKHOLM.exists(), reason="../shared/realdata is not present")
def test_stockholm_valdistrikt_import(session):
    import_kommuner_csv(session=session, text=KOMMUN_LIST.read_text(encoding="utf-8"))
    options = ImportOptions(crs="EPSG:3006")
    operator = Scope.operator(session)
    summary = import_district_file(session=session, scope=operator, path=STOCKHOLM, options=options)
    assert (summary.features, summary.created, len(summary.kommuner)) == (1378, 1378, 26)
    expected = gpd.read_file(STOCKHOLM).set_crs(3006, allow_override=True)
    expected_area = dict(zip(expected["Lkfv"], expected.area, strict=True))
    stored = {d.code: d.area_m2 for d in session.exec(select(District))}
    assert stored.keys() == expected_area.keys()
    assert all(stored[c] == pytest.approx(expected_area[c], rel=1e-9) for c in stored)
    again = import_district_file(session=session, scope=operator, path=STOCKHOLM, options=options)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 1378)
    assert json.loads(again.model_dump_json())["missing_from_file"] == []


def test_a_lead_cannot_move_another_units_district_into_their_kommun(anon_client, session, clock):
    ragunda = f.kommun(session, "2303", "Ragunda")
    sthlm = f.kommun(session, "0180", "Stockholm", f.partidistrikt(session, "01", "Sthlm"))
    f.district(session, sthlm, "01800001", 0)
    lead = f.user(session, f.Role.kommun_lead, ragunda)
    anon_client.headers.update(f.auth_headers(session, lead, clock.now))
    moved = [f.feature("01800001", K="2303")]
    r = f.upload_districts(anon_client, moved, kommun_column="K")
    assert r.status_code == 403 and "outside your unit" in r.json()["detail"]
    assert session.exec(select(District).where(District.code == "01800001")).one().kommun_id == (
        sthlm.id
    )


def test_bulk_assignment_tolerates_spaces_and_odd_digits(client, session):
    u = _setup_assignable(session, client)
    ok = _csv(client, f"district_code, forening\n23800001, {u['geo'].id}\n")
    assert ok.status_code == 200 and ok.json()["changed"] == 1
    assert client.get("/districts/23800001").json()["forening_id"] == u["geo"].id
    odd = _csv(client, "district_code,forening\n23800002,²\n")
    assert odd.status_code == 422 and "no förening '²'" in odd.json()["errors"][0]["message"]


def test_empty_count_cells_are_unknown_counts(client, session):
    f.kommun(session)
    features = [f.feature("23800001", voters=1200), f.feature("23800002", voters=None)]
    r = f.upload_districts(client, features, voters_column="voters")
    assert r.status_code == 200, r.text
    assert client.get("/districts/23800002").json()["voters"] is None


def test_out_of_range_numbers_are_422_not_500(client):
    assert client.get(f"/districts?offset={10**20}").status_code == 422
    assert client.get(f"/foreningar/{10**20}").status_code in (404, 422)
