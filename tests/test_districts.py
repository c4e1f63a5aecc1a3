"""Districts: import (API and service), GeoJSON views, assignment and coverage."""

import io
import json
import os
import zipfile
from pathlib import Path

import anyio
import geopandas as gpd
import pytest
from sqlmodel import select

from api.auth.scope import Scope
from api.districts import service as districts_service
from api.districts.schemas import ImportOptions
from api.districts.service import import_district_file
from api.models import District, DistrictAssignment, ForeningKind
from api.org.service import import_kommuner_csv
from tests import factories as f

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
STOCKHOLM = REALDATA / "valmyndigheten-valdistrikt-2022" / "VD_01_20220910_Val_20220911.json"
NAN = float("nan")
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
    (
        "nan coordinate",
        [
            f.feature("23800001"),
            f.feature(
                "23800002",
                geometry={
                    "type": "Polygon",
                    "coordinates": [
                        [[14.6, 63.1], [float("nan"), 63.1], [14.7, 63.2], [14.6, 63.1]]
                    ],
                },
            ),
        ],
        {},
        "geometry: features 23800002 have coordinates that are not finite numbers",
    ),
    (
        "count too large",
        [f.feature("23800001", voters=10), f.feature("23800002", voters=1e30)],
        {"voters_column": "voters"},
        "voters: column 'voters' holds values that are not whole numbers from 0 to 2147483647 "
        "for 23800002",
    ),
    (
        "nul in a name",
        [f.feature("23800001"), f.feature("23800002", "Rad1\x00Rad2")],
        {},
        "text: features 2 (Vdnamn) hold a NUL character (U+0000)",
    ),
    (
        "newline in a name",
        [f.feature("23800001", "Rad1\nRad2")],
        {},
        "name: feature 1 ('Rad1\\nRad2') holds a control character U+000A; nothing was written",
    ),
    (
        "control character in a code",
        [f.feature("23800001"), f.feature("2380\x070002")],
        {},
        "code: feature 2 ('2380\\x070002') holds U+0007",
    ),
    (
        "nul in a code",
        [f.feature("2380\x000001", "Norr")],
        {},
        "text: features 1 (Lkfv) hold a NUL character",
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


def test_bad_features_are_named_in_the_errors(client, session):
    f.kommun(session)
    names = [
        f.feature("23800001", "Rad1\nRad2"),
        f.feature("23800002"),
        f.feature("23800003", "\t"),
    ]
    body = f.upload_districts(client, names).json()
    errors = {e["field"]: e["values"] for e in body["errors"]}
    assert errors["features"] == ["1"]
    assert errors["problems"][0] == {
        "feature": 1,
        "field": "name",
        "value": "Rad1\nRad2",
        "message": "holds a control character U+000A",
    }
    huge = [f.feature("23800001", households=2**31)]
    body = f.upload_districts(client, huge, households_column="households").json()
    assert {e["field"]: e["values"] for e in body["errors"]} == {"features": ["23800001"]}


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
    odd_name = client.post("/districts/import", files={"file": ("../d.geo\x00json", b"{}", "x")})
    assert odd_name.status_code == 422 and odd_name.json()["detail"].startswith("file:")
    not_multipart = client.post("/districts/import", content=b"{}")
    assert not_multipart.status_code == 422
    assert not_multipart.json()["detail"].startswith("file: send the file as multipart")
    unknown_option = client.post(
        "/districts/import", params={"colour": "red"}, files={"file": ("d.geojson", b"{}", "x")}
    )
    assert unknown_option.status_code == 422
    assert f.district_count(session) == 0


def _multipart(name: str, content: bytes) -> tuple[bytes, str]:
    boundary = "knackaboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_oversized_upload_is_413_naming_the_limit(client, session, settings):
    settings.import_max_upload_mb = 1
    f.kommun(session)
    padded = f.district_features(n=1) + [f.feature("23800002", Pad=" " * 2**21)]
    response = f.upload_districts(client, padded)
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "file: larger than the limit of 1 MB (KNACKA_IMPORT_MAX_UPLOAD_MB)"
    )
    # Without a Content-Length (chunked), the body is counted as it arrives.
    body, content_type = _multipart("d.geojson", b" " * 2**21)
    chunked = client.post(
        "/districts/import",
        content=(body[i : i + 65536] for i in range(0, len(body), 65536)),
        headers={"Content-Type": content_type},
    )
    assert chunked.status_code == 413 and "KNACKA_IMPORT_MAX_UPLOAD_MB" in chunked.text
    assert f.district_count(session) == 0


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _collection(features: list[dict]) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": features}).encode()


def test_zip_that_unpacks_past_the_limit_is_413_before_unpacking(client, session, settings):
    settings.import_max_unzipped_mb = 1
    f.kommun(session)
    bomb = _zip({"d.geojson": _collection(f.district_features(n=1)) + b" " * 5 * 2**20})
    assert len(bomb) < 100_000
    response = client.post("/districts/import", files={"file": ("d.zip", bomb, "application/zip")})
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "file: d.zip unpacks to 5 MB, over the limit of 1 MB (KNACKA_IMPORT_MAX_UNZIPPED_MB)"
    )
    assert f.district_count(session) == 0
    small = _zip({"d.geojson": _collection(f.district_features(n=2))})
    ok = client.post("/districts/import", files={"file": ("d.zip", small, "application/zip")})
    assert ok.status_code == 200 and ok.json()["created"] == 2


def _call_asgi(app, *, headers: list[tuple[bytes, bytes]], chunks: list[bytes]):
    """Call the app with a body whose chunks are counted as the app takes them."""
    taken = []
    sent: list[dict] = []

    async def receive():
        if len(taken) < len(chunks):
            taken.append(len(chunks[len(taken)]))
            return {"type": "http.request", "body": chunks[len(taken) - 1], "more_body": True}
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/districts/import",
        "raw_path": b"/districts/import",
        "query_string": b"dry_run=true",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    anyio.run(app, scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), taken


@pytest.mark.parametrize("role", ["volunteer", "forening_lead"])
def test_upload_of_a_non_lead_is_refused_before_its_body_is_read(anon_client, session, clock, role):
    ost = f.kommun(session)
    user = f.user(session, f.Role(role), f.forening(session, ost))
    body, content_type = _multipart("d.geojson", _collection(f.district_features(n=2)))
    body += b" " * 2**20
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    auth = f.auth_headers(session, user, clock.now)
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *[(k.lower().encode(), v.encode()) for k, v in auth.items()],
    ]
    status, answer, taken = _call_asgi(anon_client.app, headers=headers, chunks=chunks)
    assert status == 403 and answer["detail"].startswith("role:")
    assert taken == []


def test_reading_runs_in_a_child_process_with_the_configured_time_limit(
    client, session, settings, monkeypatch, tmp_path
):
    """A reader that never finishes (a named pipe nobody writes) is killed at the limit."""
    settings.import_timeout_seconds = 0.5
    f.kommun(session)
    stuck = tmp_path / "stuck.geojson"
    os.mkfifo(stuck)
    real = districts_service.read_districts_isolated

    def on_the_stuck_file(path, *, timeout, **options):
        assert timeout == 0.5
        return real(stuck, timeout=timeout, **options)

    monkeypatch.setattr(districts_service, "read_districts_isolated", on_the_stuck_file)
    response = f.upload_districts(client, f.district_features(n=1))
    assert response.status_code == 413
    detail = response.json()["detail"]
    assert "took longer than 0.5 seconds (KNACKA_IMPORT_TIMEOUT_SECONDS)" in detail
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


def test_bulk_assignment_names_the_line_of_a_bad_code_or_name(client, session):
    u = _setup_assignable(session, client)
    text = (
        f"district_code,forening\n23800001,{u['geo'].id}\n2380\x000002,{u['geo'].id}\n"
        "23800003,S-föreningen\x07Frösön\n"
    )
    r = _csv(client, text)
    assert r.status_code == 422, r.text
    errors = {e["line"]: (e["field"], e["message"]) for e in r.json()["errors"]}
    assert errors[3] == (
        "district_code",
        "holds U+0000; a district code is printable ASCII (letters, digits, punctuation)",
    )
    assert errors[4] == ("forening", "holds a control character U+0007")
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
