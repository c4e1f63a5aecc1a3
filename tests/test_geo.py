"""The pure geospatial library: reading and validating district files."""

import os
import sqlite3
import zipfile
from contextlib import closing

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import Polygon, box

from geo import (
    DistrictFileError,
    DistrictFileTooLarge,
    DistrictReadTimeout,
    read_districts,
    read_districts_isolated,
)
from geo.districts import guess_crs
from tests.factories import feature, square, write_geojson

# A 1 km x 1 km square in SWEREF 99 TM near Östersund.
SWEREF_SQUARE = [
    [[480000, 7000000], [481000, 7000000], [481000, 7001000], [480000, 7001000], [480000, 7000000]]
]


def test_lonlat_geojson_is_read_in_wgs84_with_area_in_sweref(tmp_path):
    path = write_geojson(tmp_path / "d.geojson", [feature("23800001")])
    table = read_districts(path)
    assert table.source_crs == "EPSG:4326"
    row = table.frame.iloc[0]
    assert (row.code, row.kommun_code, row["name"]) == ("23800001", "2380", "Distrikt 23800001")
    expected = gpd.GeoSeries([Polygon(square(0)[0])], crs=4326).to_crs(3006).area[0]
    assert row.area_m2 == pytest.approx(expected)
    assert 400_000 < row.area_m2 < 700_000


def test_sweref_coordinates_without_crs_are_refused_naming_the_crs(tmp_path):
    geom = {"type": "Polygon", "coordinates": SWEREF_SQUARE}
    path = write_geojson(tmp_path / "vd.json", [feature("23800001", geometry=geom)])
    with pytest.raises(DistrictFileError) as err:
        read_districts(path)
    assert "EPSG:3006" in str(err.value) and "--crs" in str(err.value)


def test_sweref_with_explicit_crs_keeps_exact_area(tmp_path):
    geom = {"type": "Polygon", "coordinates": SWEREF_SQUARE}
    path = write_geojson(tmp_path / "vd.json", [feature("23800001", geometry=geom)])
    table = read_districts(path, crs="EPSG:3006")
    assert table.source_crs == "EPSG:3006"
    assert table.frame.iloc[0].area_m2 == pytest.approx(1_000_000.0)
    minx, miny, maxx, maxy = table.frame.total_bounds
    assert 14 < minx < maxx < 15 and 63 < miny < maxy < 64


def test_named_crs_member_is_honoured(tmp_path):
    geom = {"type": "Polygon", "coordinates": SWEREF_SQUARE}
    path = write_geojson(
        tmp_path / "vd.json", [feature("23800001", geometry=geom)], crs="urn:ogc:def:crs:EPSG::3006"
    )
    assert read_districts(path).frame.iloc[0].area_m2 == pytest.approx(1_000_000.0)


def test_projected_crs_given_for_lonlat_coordinates_is_refused(tmp_path):
    path = write_geojson(tmp_path / "d.geojson", [feature("23800001")])
    with pytest.raises(DistrictFileError, match="look like longitude/latitude"):
        read_districts(path, crs="EPSG:3006")


def test_unknown_crs_text_is_refused(tmp_path):
    path = write_geojson(tmp_path / "d.geojson", [feature("23800001")])
    with pytest.raises(DistrictFileError, match="crs: 'EPSG:nope'"):
        read_districts(path, crs="EPSG:nope")


def _frame(crs):
    return gpd.GeoDataFrame(
        {"Lkfv": ["23800001", "23800002"], "Vdnamn": ["A", "B"]},
        geometry=[box(480000, 7000000, 481000, 7001000), box(481000, 7000000, 482000, 7001000)],
        crs=crs,
    )


def test_geopackage_in_sweref_is_read_with_its_declared_crs(tmp_path):
    path = tmp_path / "d.gpkg"
    _frame(3006).to_file(path, driver="GPKG")
    table = read_districts(path)
    assert table.source_crs == "EPSG:3006"
    assert list(table.frame.area_m2) == pytest.approx([1e6, 1e6])


def test_geopackage_declared_crs_conflicting_with_option_is_refused(tmp_path):
    path = tmp_path / "d.gpkg"
    _frame(3006).to_file(path, driver="GPKG")
    with pytest.raises(DistrictFileError, match="declares EPSG:3006"):
        read_districts(path, crs="EPSG:3021")


@pytest.mark.filterwarnings("ignore:.crs. was not provided")
def test_shapefile_without_prj_needs_a_crs_and_zipped_shapefile_reads(tmp_path):
    shp = tmp_path / "d.shp"
    _frame(None).to_file(shp)
    with pytest.raises(DistrictFileError, match="names no coordinate reference system"):
        read_districts(shp)
    assert len(read_districts(shp, crs="EPSG:3006").frame) == 2
    archive = tmp_path / "d.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for part in tmp_path.glob("d.*"):
            if part.suffix != ".zip":
                zf.write(part, part.name)
    assert len(read_districts(archive, crs="EPSG:3006").frame) == 2


def test_bowtie_is_repaired_and_reported(tmp_path):
    x, y = 14.6, 63.17
    bowtie = [[[x, y], [x + 0.01, y + 0.01], [x + 0.01, y], [x, y + 0.01], [x, y]]]
    path = write_geojson(
        tmp_path / "d.geojson",
        [feature("23800001", geometry={"type": "Polygon", "coordinates": bowtie})],
    )
    table = read_districts(path)
    assert table.repaired == [{"code": "23800001", "reason": table.repaired[0]["reason"]}]
    assert "Self-intersection" in table.repaired[0]["reason"]
    geom = table.frame.geometry.iloc[0]
    assert geom.is_valid and geom.geom_type == "MultiPolygon" and geom.area > 0


@pytest.mark.parametrize(
    ("features", "kwargs", "message"),
    [
        ([], {}, "holds no features"),
        ([feature("23800001"), feature("23800001")], {}, "duplicate codes in 'Lkfv': 23800001"),
        ([feature("23800001"), feature("")], {}, "features 2 have no value in 'Lkfv'"),
        (
            [feature("23800001", geometry={"type": "Point", "coordinates": [14.6, 63.1]})],
            {},
            "23800001 are Point, not polygons",
        ),
        ([feature("23800001", geometry=None)], {}, "have no geometry"),
        ([feature("ABC")], {}, "do not start with a four-digit kommun code"),
        ([feature("23800001", voters="many")], {"voters_column": "voters"}, "voters: column"),
        ([feature("23800001")], {"name_column": "Namn"}, "'Namn' (name) not in"),
    ],
)
def test_bad_files_are_refused_with_a_message(tmp_path, features, kwargs, message):
    path = write_geojson(tmp_path / "d.geojson", features)
    with pytest.raises(DistrictFileError) as err:
        read_districts(path, **kwargs)
    assert message in str(err.value)


def test_unreadable_and_missing_files(tmp_path):
    junk = tmp_path / "junk.geojson"
    junk.write_bytes(b"\x00\x01 not json")
    with pytest.raises(DistrictFileError, match="cannot read junk.geojson"):
        read_districts(junk)
    with pytest.raises(DistrictFileError, match="does not exist"):
        read_districts(tmp_path / "absent.geojson")


def test_numeric_codes_get_their_leading_zeros_back(tmp_path):
    path = write_geojson(tmp_path / "d.geojson", [feature(1800101)])
    table = read_districts(path)
    assert table.frame.iloc[0].code == "01800101"
    assert table.frame.iloc[0].kommun_code == "0180"
    assert "leading zeros" in table.warnings[0]


def test_other_columns_and_counts(tmp_path):
    path = write_geojson(
        tmp_path / "d.geojson",
        [feature("X1", Kod="X1", Namn="Norr", Kommun=2380, Rost=1200, Hush=600)],
    )
    table = read_districts(
        path,
        code_column="Kod",
        name_column="Namn",
        kommun_column="Kommun",
        voters_column="Rost",
        households_column="Hush",
    )
    row = table.frame.iloc[0]
    assert (row.code, row["name"], row.kommun_code, row.voters, row.households) == (
        "X1",
        "Norr",
        "2380",
        1200,
        600,
    )


def test_guess_crs():
    assert guess_crs(np.array([14.0, 63.0, 15.0, 64.0])) == "EPSG:4326"
    assert guess_crs(np.array([628086, 6506790, 763836, 6689240])) == "EPSG:3006"
    assert guess_crs(np.array([-5e6, -5e6, 5e6, 5e6])) is None


def _zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _geojson_bytes(tmp_path, features) -> bytes:
    return write_geojson(tmp_path / "member.geojson", features).read_bytes()


def test_zip_members_are_chosen_and_size_checked_before_unpacking(tmp_path):
    one = _geojson_bytes(tmp_path, [feature("23800001")])
    nested = _zip(tmp_path / "a.zip", {"valdistrikt/d.geojson": one, "__MACOSX/._d.geojson": b"x"})
    assert list(read_districts(nested).frame["code"]) == ["23800001"]
    with pytest.raises(DistrictFileError, match="must hold one Shapefile, GeoJSON or GeoPackage"):
        read_districts(_zip(tmp_path / "b.zip", {"a.geojson": one, "b.geojson": one}))
    with pytest.raises(DistrictFileError, match="found none"):
        read_districts(_zip(tmp_path / "c.zip", {"readme.txt": b"hej"}))
    padded = _zip(tmp_path / "d.zip", {"d.geojson": one + b" " * 3 * 2**20})
    with pytest.raises(DistrictFileTooLarge, match="unpacks to 3 MB, over the limit of 1 MB"):
        read_districts(padded, max_unzipped_bytes=2**20)
    assert len(read_districts(padded, max_unzipped_bytes=4 * 2**20).frame) == 1


def test_zip_that_declares_less_than_it_holds_is_refused(tmp_path):
    one = _geojson_bytes(tmp_path, [feature("23800001")])
    archive = _zip(tmp_path / "lie.zip", {"d.geojson": one + b" " * 3 * 2**20})
    raw = bytearray(archive.read_bytes())
    real = (len(one) + 3 * 2**20).to_bytes(4, "little")
    # Claim 1,000 bytes in both the local header and the central directory.
    for at in (i for i in range(len(raw) - 4) if raw[i : i + 4] == real):
        raw[at : at + 4] = (1000).to_bytes(4, "little")
    archive.write_bytes(bytes(raw))
    with pytest.raises(DistrictFileError, match="cannot unpack lie.zip"):
        read_districts(archive, max_unzipped_bytes=2**20)


def test_isolated_reader_gives_the_same_table_and_errors(tmp_path):
    path = write_geojson(tmp_path / "d.geojson", [feature("23800001"), feature("23800002")])
    here, there = read_districts(path), read_districts_isolated(path, timeout=60)
    assert there.frame.equals(here.frame) and there.source_crs == here.source_crs
    bad = write_geojson(tmp_path / "bad.geojson", [feature("23800001"), feature("23800001")])
    with pytest.raises(DistrictFileError, match="duplicate codes") as refused:
        read_districts_isolated(bad, timeout=60)
    assert refused.value.features == ["23800001"]
    padded = _zip(tmp_path / "p.zip", {"d.geojson": path.read_bytes() + b" " * 2**21})
    with pytest.raises(DistrictFileTooLarge) as too_large:
        read_districts_isolated(padded, timeout=60, max_unzipped_bytes=2**20)
    assert too_large.value.limit == 2**20


def test_isolated_reader_is_killed_at_its_time_limit(tmp_path):
    """A named pipe that nobody writes to blocks its reader for ever."""
    stuck = tmp_path / "stuck.geojson"
    os.mkfifo(stuck)
    with pytest.raises(DistrictReadTimeout, match="took longer than 0.5 seconds"):
        read_districts_isolated(stuck, timeout=0.5)


def test_nul_characters_that_gdal_would_cut_off_are_refused(tmp_path):
    gpkg = tmp_path / "d.gpkg"
    _frame(3006).to_file(gpkg)
    with closing(sqlite3.connect(gpkg)) as conn:
        # The GeoPackage's R-tree triggers call SpatiaLite functions that plain SQLite lacks.
        conn.create_function("ST_IsEmpty", 1, lambda _: 0)
        for name in ("ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY"):
            conn.create_function(name, 1, lambda _: 0.0)
        conn.execute('UPDATE d SET "Vdnamn" = ? WHERE rowid = 2', ("Rad1\x00Rad2",))
        conn.commit()
    with pytest.raises(DistrictFileError, match=r"features 2 \(Vdnamn\) hold a NUL character"):
        read_districts(gpkg)
    path = write_geojson(tmp_path / "d.geojson", [feature("23800001", "A\x00B")])
    with pytest.raises(DistrictFileError, match=r"features 1 \(Vdnamn\) hold a NUL character"):
        read_districts(path)
