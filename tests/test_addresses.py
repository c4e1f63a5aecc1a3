"""Address points: reading, the join to districts, import (API, service, command), households."""

import json

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import Point, Polygon
from sqlmodel import func, select
from typer.testing import CliRunner

from api.addresses.schemas import AddressImportOptions
from api.addresses.service import PERSONS_PER_HOUSEHOLD, household_estimate, import_address_file
from api.auth.scope import Scope
from api.cli import app
from api.models import Address, ElectionResult, Role
from geo.addresses import join_districts, read_addresses
from tests import factories as f

runner = CliRunner()
TO_SWEREF = Transformer.from_crs(4326, 3006, always_xy=True)


def _inside(col: int, dx: float = 0.003, dy: float = 0.004) -> tuple[float, float]:
    """A point inside the district square ``col`` of the factories."""
    return f.LON + col * 0.01 + dx, f.LAT + dy


def _csv(rows: list[dict], header: list[str] | None = None) -> bytes:
    header = header or list(rows[0])
    lines = [",".join(header)] + [",".join(str(r.get(h, "")) for h in header) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def _row(street: str, number: str, col: int, **extra) -> dict:
    lon, lat = _inside(col)
    return {"adressområde": street, "adressplatsnummer": number, "lon": lon, "lat": lat} | extra


def _upload(client, body: bytes, name: str = "a.csv", **params):
    return client.post(
        "/addresses/import", params=params, files={"file": (name, body, "application/octet-stream")}
    )


def _count(session) -> int:
    return session.exec(select(func.count()).select_from(Address)).one()


@pytest.fixture
def kommun(session):
    k = f.kommun(session)
    for col in range(3):
        f.district(session, k, f"2380{col + 1:04d}", col)
    return k


ROWS = [
    _row("Storgatan", "1", 0),
    _row("Storgatan", "3", 0),
    _row("Kyrkgatan", "2", 1),
    _row("Fjällvägen", "9", 7),  # in no district
]


def test_import_joins_each_address_to_its_district_and_reports_the_rest(client, session, kommun):
    response = _upload(client, _csv(ROWS))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["features"], body["created"], body["outside"]) == (4, 3, 1)
    assert body["outside_rows"] == ["line 5"]
    assert body["districts_without_addresses"] == ["23800003"]
    assert body["kommuner"] == ["2380"]
    assert body["source_crs"] == "EPSG:4326"
    listed = client.get("/districts/23800001/addresses").json()
    assert listed["total"] == 2
    assert [a["number"] for a in listed["items"]] == ["1", "3"]
    assert {a["households"] for a in listed["items"]} == {1}
    assert {a["households_source"] for a in listed["items"]} == {"default"}
    assert client.get("/districts/23800002/addresses").json()["total"] == 1


def test_reimport_is_idempotent_and_marks_missing_addresses_without_deleting(
    client, session, kommun
):
    _upload(client, _csv(ROWS))
    again = _upload(client, _csv(ROWS)).json()
    assert (again["created"], again["updated"], again["unchanged"], again["missing"]) == (
        0,
        0,
        3,
        0,
    )
    newer = _upload(client, _csv(ROWS[:2])).json()
    assert newer["missing"] == 1
    assert newer["missing_keys"] == ["kyrkgatan|2||"]
    assert newer["districts_without_addresses"] == ["23800002", "23800003"]
    assert _count(session) == 3
    gone = session.exec(select(Address).where(Address.street == "Kyrkgatan")).one()
    assert gone.missing_since is not None
    assert client.get("/districts/23800002/addresses").json()["total"] == 0
    assert client.get("/districts/23800002/addresses?missing=true").json()["total"] == 1
    back = _upload(client, _csv(ROWS)).json()
    assert (back["updated"], back["missing"]) == (1, 0)
    session.refresh(gone)
    assert gone.missing_since is None


def test_a_moved_point_updates_its_district(client, session, kommun):
    _upload(client, _csv(ROWS[:1]))
    moved = dict(ROWS[0], lon=_inside(2)[0])
    body = _upload(client, _csv([moved])).json()
    assert body["updated"] == 1
    assert client.get("/districts/23800003/addresses").json()["total"] == 1


def test_households_from_a_column_and_a_leads_edit_survives_reimport(client, session, kommun):
    rows = [dict(r, hushåll=h) for r, h in zip(ROWS[:3], (4, 2, ""), strict=True)]
    body = _upload(client, _csv(rows), households_column="hushåll").json()
    assert body["created"] == 3
    stored = {a.number: a for a in session.exec(select(Address))}
    assert (stored["1"].households, stored["1"].households_source) == (4, "file")
    assert (stored["2"].households, stored["2"].households_source) == (1, "default")
    edited = client.patch(f"/addresses/{stored['1'].id}", json={"households": 12})
    assert edited.status_code == 200, edited.text
    assert edited.json()["households_source"] == "lead"
    rows[0]["hushåll"] = 5
    _upload(client, _csv(rows), households_column="hushåll")
    session.refresh(stored["1"])
    assert (stored["1"].households, stored["1"].households_source) == (12, "lead")
    assert client.patch(f"/addresses/{stored['1'].id}", json={"households": -1}).status_code == 422


def test_a_name_column_in_the_file_is_never_stored(client, session, kommun):
    rows = [dict(r, namn="Anna Andersson", name="Anna Andersson") for r in ROWS[:2]]
    assert _upload(client, _csv(rows)).status_code == 200
    for address in session.exec(select(Address)):
        assert "Anna" not in json.dumps(address.model_dump(mode="json"))


def test_volunteers_cannot_upload_and_the_role_is_checked_before_the_body(
    anon_client, session, kommun
):
    fo = f.forening(session, kommun)
    headers = f.auth_headers(session, f.user(session, Role.volunteer, fo))
    response = anon_client.post("/addresses/import", headers=headers, content=b"not even multipart")
    assert response.status_code == 403
    assert "role" in response.json()["detail"]


def test_a_kommun_outside_the_callers_unit_is_refused(client, session, kommun):
    other = f.kommun(session, "0180", "Stockholm", f.partidistrikt(session, "01", "Stockholm"))
    response = _upload(client, _csv(ROWS), kommun=other.code)
    assert response.status_code == 403
    assert _count(session) == 0


# -- CRS --------------------------------------------------------------------------------------


def _sweref_features(rows: list[dict]) -> list[dict]:
    features = []
    for r in rows:
        x, y = TO_SWEREF.transform(r["lon"], r["lat"])
        props = {k: v for k, v in r.items() if k not in ("lon", "lat")}
        features.append(
            {
                "type": "Feature",
                "properties": props,
                "geometry": {"type": "Point", "coordinates": [x, y]},
            }
        )
    return features


def _geojson(features: list[dict], crs: str | None = None) -> bytes:
    doc: dict = {"type": "FeatureCollection", "features": features}
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    return json.dumps(doc).encode()


def test_sweref_geojson_without_a_crs_member_is_refused_then_accepted_with_crs(
    client, session, kommun
):
    body = _geojson(_sweref_features(ROWS[:3]))
    refused = _upload(client, body, "a.geojson")
    assert refused.status_code == 422
    message = refused.json()["detail"]
    assert message.startswith("crs:") and "EPSG:3006" in message
    assert _count(session) == 0
    accepted = _upload(client, body, "a.geojson", crs="EPSG:3006")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["created"] == 3
    assert accepted.json()["source_crs"] == "EPSG:3006"
    assert client.get("/districts/23800001/addresses").json()["total"] == 2


def test_a_geojson_declaring_sweref_needs_no_option(client, session, kommun):
    body = _geojson(_sweref_features(ROWS[:3]), "urn:ogc:def:crs:EPSG::3006")
    response = _upload(client, body, "a.geojson")
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 3


def test_csv_xy_needs_a_crs(client, session, kommun):
    rows = []
    for r in ROWS[:2]:
        x, y = TO_SWEREF.transform(r["lon"], r["lat"])
        rows.append({"gata": r["adressområde"], "nr": r["adressplatsnummer"], "x": x, "y": y})
    body = _csv(rows)
    refused = _upload(client, body, street_column="gata", number_column="nr")
    assert refused.status_code == 422 and refused.json()["detail"].startswith("crs:")
    ok = _upload(client, body, street_column="gata", number_column="nr", crs="EPSG:3006")
    assert ok.status_code == 200, ok.text
    assert ok.json()["created"] == 2


def test_lantmateriet_geopackage_defaults(tmp_path, session, kommun):
    points = [Point(*TO_SWEREF.transform(*_inside(c))) for c in (0, 1)]
    frame = gpd.GeoDataFrame(
        {
            "objektidentitet": ["a1b2c3d4-0001", "a1b2c3d4-0002"],
            "adressområde": ["Storgatan", "Kyrkgatan"],
            "adressplatsnummer": [12, 3],
            "bokstavstillägg": ["B", None],
            "lägestillägg": ["U1", None],
            "postnummer": ["831 40", "831 41"],
            "postort": ["Östersund", "Östersund"],
        },
        geometry=points,
        crs="EPSG:3006",
    )
    path = tmp_path / "belagenhetsadress.gpkg"
    frame.to_file(path, driver="GPKG")
    summary = import_address_file(
        session=session,
        scope=Scope.operator(session),
        path=path,
        options=AddressImportOptions(),
    )
    assert (summary.created, summary.key_source, summary.source_crs) == (
        2,
        "objektidentitet",
        "EPSG:3006",
    )
    first = session.exec(select(Address).where(Address.key == "a1b2c3d4-0001")).one()
    assert (first.street, first.number, first.entrance, first.postcode, first.postort) == (
        "Storgatan",
        "12B",
        "U1",
        "83140",
        "Östersund",
    )
    assert first.lon == pytest.approx(_inside(0)[0], abs=1e-7)


# -- bad input ----------------------------------------------------------------------------------

_GOOD = _row("Storgatan", "1", 0)

BAD_CSV = [
    (
        "no street column",
        _csv([{"gata": "x", "lon": 14.6, "lat": 63.17}]),
        {},
        "columns: 'adressområde' (street",
    ),
    (
        "a named column that is missing",
        _csv([_GOOD]),
        {"households_column": "hh"},
        "columns: 'hh' (households",
    ),
    ("an empty street", _csv([_GOOD, dict(_GOOD, adressområde="")]), {}, "street: line 3"),
    ("the same address twice", _csv([_GOOD, _GOOD]), {}, "key: line 2, line 3"),
    (
        "the same object id twice",
        _csv([dict(_GOOD, id="7"), dict(_row("Kyrkgatan", "2", 1), id="7")]),
        {"key_column": "id"},
        "key: line 2, line 3 have the same 'id'",
    ),
    (
        "households that are not whole numbers",
        _csv([dict(_GOOD, hh="2.5")]),
        {"households_column": "hh"},
        "households: column 'hh'",
    ),
    ("negative households", _csv([dict(_GOOD, hh="-1")]), {"households_column": "hh"}, "line 2"),
    ("a longitude that is no number", _csv([dict(_GOOD, lon="öst")]), {}, "x: column 'lon'"),
    ("a missing coordinate", _csv([dict(_GOOD, lat="")]), {}, "geometry: line 2"),
    ("no coordinate columns", _csv([{"adressområde": "x"}]), {}, "no lon/lat or x/y columns"),
    ("a street too long", _csv([dict(_GOOD, adressområde="x" * 201)]), {}, "street: line 2"),
    ("no rows", b"adressomrade,lon,lat\n", {}, "holds no addresses"),
    ("not UTF-8", "adressområde,lon,lat\nÅ,14.6,63.17\n".encode("latin-1"), {}, "not UTF-8"),
    (
        "a CRS that is not one",
        _csv([_GOOD]),
        {"crs": "EPSG:999999"},
        "crs:",
    ),
    (
        "lon/lat with a projected CRS",
        _csv([_GOOD]),
        {"crs": "EPSG:3006"},
        "crs:",
    ),
]


@pytest.mark.parametrize(
    "body,params,message", [c[1:] for c in BAD_CSV], ids=[c[0] for c in BAD_CSV]
)
def test_bad_csv_is_refused_with_a_named_error_and_nothing_written(
    client, session, kommun, body, params, message
):
    response = _upload(client, body, **params)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert "nothing was written" in response.json()["detail"]
    assert _count(session) == 0


def test_bad_geojson_features_are_named(client, session, kommun):
    line = {
        "type": "Feature",
        "properties": {"adressområde": "Storgatan"},
        "geometry": {"type": "LineString", "coordinates": [[14.6, 63.17], [14.61, 63.18]]},
    }
    point = _geojson(_sweref_features([_GOOD]), "EPSG:3006")
    features = json.loads(point)["features"]
    body = _geojson(features + [line])
    response = _upload(client, body, "a.geojson")
    assert response.status_code == 422
    assert "geometry: feature 2 are LineString, not points" in response.json()["detail"]
    empty = dict(line, geometry=None)
    response = _upload(client, _geojson([empty]), "a.geojson")
    assert response.status_code == 422
    assert "geometry: feature 1 have no geometry" in response.json()["detail"]
    assert _count(session) == 0


def test_an_unsupported_upload_is_refused(client, session, kommun):
    response = _upload(client, b"x", "a.xlsx")
    assert response.status_code == 422 and response.json()["detail"].startswith("file:")


def test_a_zip_over_the_unzip_limit_is_413(client, session, kommun, settings, tmp_path):
    import io
    import zipfile

    settings.import_max_unzipped_mb = 1
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.geojson", b" " * (2 * 2**20) + _geojson([]))
    response = _upload(client, buffer.getvalue(), "a.zip")
    assert response.status_code == 413
    assert "KNACKA_IMPORT_MAX_UNZIPPED_MB" in response.json()["detail"]


# -- the join -----------------------------------------------------------------------------------


def test_join_hand_drawn_polygons():
    polygons = np.array(
        [
            Polygon([(0, 0), (2, 0), (2, 2), (0, 2)]),
            Polygon([(2, 0), (4, 0), (4, 2), (2, 2)]),
            Polygon([(0, 0), (1, 0), (1, 1), (0, 1)]),  # overlaps the first
            Polygon([(10, 10), (11, 10), (11, 11)]),  # gets no point
        ],
        dtype=object,
    )
    lon = np.array([1.5, 3.0, 0.5, 9.0, 2.0])
    lat = np.array([1.5, 1.0, 0.5, 9.0, 1.0])
    # inside the first; inside the second; in the overlap (lower index wins); outside all;
    # on the shared border (within neither: it gets one whose border it touches).
    assert join_districts(lon, lat, polygons).tolist() == [0, 1, 0, -1, 0]


def test_join_of_nothing():
    assert join_districts(np.array([]), np.array([]), np.array([], dtype=object)).size == 0
    assert join_districts(
        np.array([1.0]), np.array([1.0]), np.array([], dtype=object)
    ).tolist() == [-1]


def test_read_addresses_builds_normalised_keys(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(
        _csv([{"Gata": "  Stor  gatan ", "nummer": "12", "bokstav": "b", "lon": 14.6, "lat": 63.1}])
    )
    table = read_addresses(
        path, street_column="gata", number_column="NUMMER", letter_column="bokstav"
    )
    assert table.frame["key"].tolist() == ["stor gatan|12b||"]
    assert table.frame["street"].tolist() == ["Stor gatan"]
    assert table.key_source == "address" and table.warnings


# -- the command --------------------------------------------------------------------------------


def test_command_prints_json_and_dry_run_writes_nothing(cli_session, kommun, tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(_csv(ROWS))
    dry = runner.invoke(app, ["import-addresses", str(path), "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    summary = json.loads(dry.output)
    assert summary["dry_run"] and summary["created"] == 3 and summary["outside"] == 1
    assert _count(cli_session) == 0
    done = runner.invoke(app, ["import-addresses", str(path)])
    assert done.exit_code == 0, done.output
    assert "3 created" in done.output and "1 outside every district" in done.output
    assert _count(cli_session) == 3


def test_command_bad_file_is_one_line(cli_session, kommun, tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(_csv([_GOOD, _GOOD]))
    result = runner.invoke(app, ["import-addresses", str(path), "--key-column", "objid"])
    assert result.exit_code == 1
    assert "columns: 'objid' (key" in result.output
    assert _count(cli_session) == 0


# -- household estimates -------------------------------------------------------------------------


def test_household_estimate_prefers_addresses_then_voters_then_the_district(session, kommun):
    from api.models import District

    d1, d2, d3 = session.exec(select(District).order_by(District.code)).all()
    f.address(session, d1, households=3)
    f.address(session, d1, households=4)
    session.add(
        ElectionResult(
            election="Riksdag 2022",
            district_id=d2.id,
            eligible=900,
            voted=800,
            valid=790,
            turnout=800 / 900,
            votes="{}",
        )
    )
    d3.households = 250
    session.add(d3)
    session.flush()
    found = household_estimate(session, [d1.id, d2.id, d3.id])
    assert found == {d1.id: 7, d2.id: round(900 / PERSONS_PER_HOUSEHOLD), d3.id: 250}


def test_the_join_is_one_tree_query_for_the_whole_file(monkeypatch):
    calls = []
    real = shapely.STRtree.query

    def counting(self, geometry, *args, **kwargs):
        calls.append(len(geometry))
        return real(self, geometry, *args, **kwargs)

    monkeypatch.setattr(shapely.STRtree, "query", counting)
    grid = np.array(
        [
            Polygon([(x, y), (x + 1, y), (x + 1, y + 1), (x, y + 1)])
            for x in range(10)
            for y in range(10)
        ],
        dtype=object,
    )
    rng = np.random.default_rng(1)
    lon, lat = rng.random(5000) * 10, rng.random(5000) * 10
    found = join_districts(lon, lat, grid)
    assert calls == [5000]  # no point is on a border, so no second query either
    assert (found == np.floor(lon).astype(int) * 10 + np.floor(lat).astype(int)).all()


def test_reading_over_the_time_limit_is_413_and_writes_nothing(client, session, kommun, settings):
    settings.import_timeout_seconds = 0.001
    response = _upload(client, _csv(ROWS))
    assert response.status_code == 413
    assert "KNACKA_IMPORT_TIMEOUT_SECONDS" in response.json()["detail"]
    assert _count(session) == 0


def test_a_nul_in_a_path_or_parameter_is_an_answer_not_a_500(client, session, kommun):
    # PostgreSQL refuses NUL in text: such a code or name must be answered, never a 500.
    answers = [
        client.get("/districts/2380%000001/addresses"),
        client.patch("/addresses/-1", json={"households": 1}),
        client.get("/kommuner/2380%00/priorities"),
        client.get("/kommuner/2380/priorities", params={"election": "a\x00b"}),
        _upload(client, _csv(ROWS), kommun="23\x0080"),
    ]
    # SQLite finds nothing (404); PostgreSQL's refusal is answered as bad input (422).
    assert all(r.status_code in (404, 422) for r in answers), [r.text for r in answers]
    assert _count(session) == 0


def test_dry_run_over_the_api_with_column_options(client, session, kommun):
    response = _upload(client, _csv(ROWS), dry_run=True, street_column="adressområde")
    assert response.status_code == 200, response.text
    assert response.json()["dry_run"] and response.json()["created"] == 3
    assert _count(session) == 0
