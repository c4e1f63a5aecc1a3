"""Reading district polygons from GeoJSON, GeoPackage and Shapefile.

Files are validated completely before anything is returned, so that a caller can refuse a
bad file as a whole. Geometries come back in WGS84 (EPSG:4326) with their area measured in
SWEREF 99 TM (EPSG:3006).
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import zipfile
import zlib
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

__all__ = [
    "AREA_CRS",
    "MAX_COUNT",
    "STORAGE_CRS",
    "DistrictFileError",
    "DistrictFileTooLarge",
    "DistrictTable",
    "guess_crs",
    "read_districts",
]

STORAGE_CRS = CRS.from_epsg(4326)
AREA_CRS = CRS.from_epsg(3006)

# SWEREF 99 TM eastings/northings that cover Sweden with a margin.
_SWEREF_BOUNDS = (150_000.0, 6_000_000.0, 1_000_000.0, 7_800_000.0)
_POLYGONAL = {"Polygon", "MultiPolygon"}
_MAX_LISTED = 20
MAX_CODE_LENGTH = 40  # the database's column widths
MAX_NAME_LENGTH = 200
MAX_COUNT = 2**31 - 1  # voters and households are 32-bit integer columns
_READABLE = {".geojson", ".json", ".gpkg", ".shp"}
_COPY_CHUNK = 1 << 20


class DistrictFileError(ValueError):
    """A district file that cannot be imported; the message says what to fix."""

    def __init__(self, message: str, *, features: list[str] | None = None):
        super().__init__(message)
        self.features = features or []


class DistrictFileTooLarge(DistrictFileError):
    """A file (or what it unpacks to) over a size limit; ``limit`` is that limit in bytes."""

    def __init__(self, message: str, *, limit: int):
        super().__init__(message)
        self.limit = limit


@dataclass
class DistrictTable:
    """Validated districts ready to store.

    Attributes
    ----------
    frame : geopandas.GeoDataFrame
        Columns ``code``, ``name``, ``kommun_code``, ``voters``, ``households``, ``area_m2``
        and ``geometry`` in EPSG:4326, one row per district, codes unique.
    source_crs : str
        The CRS the coordinates were read in, e.g. ``"EPSG:3006"``.
    repaired : list of dict
        ``{"code", "reason"}`` for each invalid geometry that was repaired with make_valid.
    warnings : list of str
        Things the importer assumed that a person should know about.
    """

    frame: gpd.GeoDataFrame
    source_crs: str
    repaired: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def _looks_lonlat(bounds: np.ndarray) -> bool:
    minx, miny, maxx, maxy = bounds
    return -180.0 <= minx <= maxx <= 180.0 and -90.0 <= miny <= maxy <= 90.0


def guess_crs(bounds: np.ndarray) -> str | None:
    """Name the CRS that coordinates within ``bounds`` most likely use.

    Parameters
    ----------
    bounds : array-like of 4 floats
        ``minx, miny, maxx, maxy`` of the coordinates as read.

    Returns
    -------
    str or None
        ``"EPSG:4326"`` for longitude/latitude, ``"EPSG:3006"`` for SWEREF 99 TM, or None.
    """
    if _looks_lonlat(np.asarray(bounds, dtype=float)):
        return "EPSG:4326"
    minx, miny, maxx, maxy = bounds
    sx0, sy0, sx1, sy1 = _SWEREF_BOUNDS
    if sx0 <= minx <= maxx <= sx1 and sy0 <= miny <= maxy <= sy1:
        return "EPSG:3006"
    return None


def _parse_crs(value: str) -> CRS:
    try:
        return CRS.from_user_input(value)
    except CRSError as exc:
        raise DistrictFileError(f"crs: {value!r} is not a CRS pyproj knows ({exc})") from None


def _resolve_crs(path: Path, declared: str | None, given: str | None, bounds: np.ndarray) -> CRS:
    """Decide which CRS the coordinates are in, refusing every case that is a guess."""
    declared_crs = CRS.from_user_input(declared) if declared else None
    is_geojson = path.suffix.lower() in {".json", ".geojson"}
    if given is not None:
        given_crs = _parse_crs(given)
        # GDAL reports EPSG:4326 for any GeoJSON without a crs member, so a GeoJSON's
        # "declared" 4326 is no evidence against an explicit --crs.
        unstated = declared_crs is None or (is_geojson and declared_crs.equals(STORAGE_CRS))
        if not unstated and not declared_crs.equals(given_crs):
            raise DistrictFileError(
                f"crs: the file declares {declared_crs.to_string()} but {given} was given; "
                "leave out the crs option to use the file's own"
            )
        crs = given_crs
    elif declared_crs is None:
        likely = guess_crs(bounds)
        hint = f" (its coordinates look like {likely})" if likely else ""
        example = likely or "EPSG:3006"
        raise DistrictFileError(
            f"crs: {path.name} names no coordinate reference system{hint}; pass it explicitly, "
            f"e.g. --crs {example} on the command line or crs={example} in the API"
        )
    else:
        crs = declared_crs

    if crs.is_geographic and not _looks_lonlat(bounds):
        likely = guess_crs(bounds) or "a projected CRS"
        raise DistrictFileError(
            f"crs: coordinates in {path.name} are not longitude/latitude (bounds "
            f"{_fmt_bounds(bounds)}), so they cannot be {crs.to_string()}; they look like "
            f"{likely}. A GeoJSON without a crs member is read as EPSG:4326: pass the real one, "
            "e.g. --crs EPSG:3006 (crs=EPSG:3006 in the API)"
        )
    if crs.is_projected and _looks_lonlat(bounds):
        raise DistrictFileError(
            f"crs: coordinates in {path.name} look like longitude/latitude (bounds "
            f"{_fmt_bounds(bounds)}), not {crs.to_string()}; leave out the crs option or pass "
            "EPSG:4326"
        )
    return crs


def _fmt_bounds(bounds: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in bounds) + ")"


def _as_text(series: pd.Series, *, pad: int | None) -> tuple[pd.Series, bool]:
    """Codes as stripped strings; integer columns are zero-padded to ``pad`` digits."""
    padded = False
    if pd.api.types.is_float_dtype(series) and series.dropna().mod(1).eq(0).all():
        series = series.astype("Int64")
    if pd.api.types.is_integer_dtype(series):
        text = series.astype("string")
        if pad:
            padded = bool((text.str.len() < pad).any())
            text = text.str.zfill(pad)
        return text, padded
    text = series.astype("string").str.strip()
    return text.mask(text == ""), padded


def _counts(frame: pd.DataFrame, column: str | None, label: str) -> pd.Series:
    if column is None:
        return pd.Series([None] * len(frame), index=frame.index, dtype="object")
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = (
        (values.isna() & frame[column].notna())
        | (values < 0)
        | (values > MAX_COUNT)
        | (values.notna() & (values.mod(1) != 0))
    )
    if bad.any():
        rows = [str(code) for code in frame.loc[bad, "code"]]
        raise DistrictFileError(
            f"{label}: column {column!r} holds values that are not whole numbers from 0 to "
            f"{MAX_COUNT} for {_listing(rows)}",
            features=rows,
        )
    return values.astype("Int64").astype("object").where(values.notna(), None)


def _mb(size: int) -> str:
    return f"{size / 2**20:,.0f} MB" if size >= 2**20 else f"{size:,} bytes"


def _too_large(what: str, limit: int) -> DistrictFileTooLarge:
    return DistrictFileTooLarge(f"file: {what}, over the limit of {_mb(limit)}", limit=limit)


def _unzip(path: Path, target: Path, limit: int | None) -> Path:
    """Unpack the one data set a zip holds into ``target``; return the file to read.

    Sizes are checked twice: the sizes the archive declares before anything is unpacked, and
    the bytes actually written, since a crafted archive may declare less than it holds.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DistrictFileError(
            f"file: {path.name} is not a readable zip archive ({exc})"
        ) from None
    with archive:
        members: dict[str, zipfile.ZipInfo] = {}
        for info in archive.infolist():
            name = PurePosixPath(info.filename).name
            if info.is_dir() or not name or name.startswith(".") or "__MACOSX" in info.filename:
                continue  # folders and macOS resource forks
            if name.lower() in members:
                raise DistrictFileError(f"file: {path.name} holds two files named {name}")
            members[name.lower()] = info
        shapefiles = sorted(n for n in members if n.endswith(".shp"))
        if len(shapefiles) > 1:
            raise DistrictFileError(
                f"file: {path.name} holds more than one Shapefile ({_listing(shapefiles)}); "
                "zip one data set per file"
            )
        if shapefiles:
            stem = Path(shapefiles[0]).stem
            chosen = [n for n in members if Path(n).stem == stem]
            main = shapefiles[0]
        else:
            data = sorted(n for n in members if Path(n).suffix in _READABLE)
            if len(data) != 1:
                found = _listing(data) if data else "none"
                raise DistrictFileError(
                    f"file: {path.name} must hold one Shapefile, GeoJSON or GeoPackage; "
                    f"found {found}"
                )
            main = data[0]
            chosen = [main]
        declared = sum(members[n].file_size for n in chosen)
        if limit is not None and declared > limit:
            raise _too_large(f"{path.name} unpacks to {_mb(declared)}", limit)
        written = 0
        try:
            for name in chosen:
                with archive.open(members[name]) as src, (target / name).open("wb") as out:
                    while chunk := src.read(_COPY_CHUNK):
                        written += len(chunk)
                        if limit is not None and written > limit:
                            raise _too_large(f"{path.name} unpacks to more than it says", limit)
                        out.write(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as exc:
            raise DistrictFileError(f"file: cannot unpack {path.name} ({exc})") from None
    return target / main


def _nul_features(path: Path, columns: list[str]) -> list[str]:
    """GeoJSON features whose ``columns`` hold a NUL character, as ``"number (column)"``
    with 1-based feature numbers.

    GDAL cuts text at a NUL without a word, so these are looked for in the file itself; only
    a file that holds the escape at all is parsed here.
    """
    needle, tail, found = b"\\u0000", b"", False
    with path.open("rb") as raw:
        while chunk := raw.read(_COPY_CHUNK):
            if needle in tail + chunk:
                found = True
                break
            tail = chunk[-len(needle) :]
    if not found:
        return []
    try:
        with path.open("rb") as raw:
            doc = json.load(raw)
        features = doc.get("features", []) if isinstance(doc, dict) else []
    except ValueError:
        return []  # not JSON GDAL reads; GDAL's own error follows
    hits = []
    for number, feature in enumerate(features, start=1):
        props = feature.get("properties") if isinstance(feature, dict) else None
        if isinstance(props, dict):
            hits += [
                f"{number} ({c})"
                for c in columns
                if isinstance(props.get(c), str) and "\x00" in props[c]
            ]
    return hits


def _nul_rows(path: Path, columns: list[str]) -> list[str]:
    """GeoPackage rows whose ``columns`` hold a NUL character, as ``"fid (column)"``."""
    hits: list[str] = []
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            tables = [
                row[0]
                for row in conn.execute(
                    "SELECT table_name FROM gpkg_contents WHERE data_type = 'features'"
                )
            ]
            for table in tables:
                quoted = table.replace('"', '""')
                present = {row[1] for row in conn.execute(f'PRAGMA table_info("{quoted}")')}
                for column in (c for c in columns if c in present):
                    name = column.replace('"', '""')
                    query = (
                        f'SELECT rowid FROM "{quoted}" '
                        f"WHERE instr(CAST(\"{name}\" AS BLOB), X'00') > 0 LIMIT 1000"
                    )
                    hits += [f"{row[0]} ({column})" for row in conn.execute(query)]
    except sqlite3.Error:
        return []  # not a GeoPackage SQLite reads; GDAL's own error follows
    return hits


def read_districts(
    path: str | os.PathLike[str],
    *,
    crs: str | None = None,
    code_column: str = "Lkfv",
    name_column: str = "Vdnamn",
    kommun_column: str | None = None,
    voters_column: str | None = None,
    households_column: str | None = None,
    max_unzipped_bytes: int | None = None,
) -> DistrictTable:
    """Read and validate a district file.

    Parameters
    ----------
    path : path-like
        GeoJSON, GeoPackage, Shapefile, or a .zip holding a Shapefile.
    crs : str, optional
        The CRS of the coordinates when the file names none (e.g. ``"EPSG:3006"``).
    code_column, name_column : str
        Columns with the unique district code and its name. The defaults fit
        Valmyndigheten's valdistrikt files.
    kommun_column : str, optional
        Column with the four-digit kommun code; by default the first four digits of the code.
    voters_column, households_column : str, optional
        Columns with counts of voters and households, when the file has them.
    max_unzipped_bytes : int, optional
        The most a .zip may unpack to; more raises DistrictFileTooLarge.

    Returns
    -------
    DistrictTable

    Raises
    ------
    DistrictFileError
        For an unreadable or empty file, a missing column, a CRS that would be a guess,
        empty or duplicate codes, codes with no kommun, missing or non-polygon geometries,
        or geometries that cannot be repaired.
    """
    path = Path(path)
    if not path.exists():
        raise DistrictFileError(f"file: {path} does not exist")
    options = {
        "crs": crs,
        "code_column": code_column,
        "name_column": name_column,
        "kommun_column": kommun_column,
        "voters_column": voters_column,
        "households_column": households_column,
    }
    if path.suffix.lower() == ".zip":
        with tempfile.TemporaryDirectory(prefix="knacka-unzip-") as tmp:
            return _read(_unzip(path, Path(tmp), max_unzipped_bytes), **options)
    return _read(path, **options)


def _read(
    path: Path,
    *,
    crs: str | None,
    code_column: str,
    name_column: str,
    kommun_column: str | None,
    voters_column: str | None,
    households_column: str | None,
) -> DistrictTable:
    try:
        info = pyogrio.read_info(path)
    except Exception as exc:
        raise DistrictFileError(f"file: cannot read {path.name} as a vector file ({exc})") from None
    if info["features"] == 0:
        raise DistrictFileError(f"file: {path.name} holds no features")

    columns = {"code": code_column, "name": name_column}
    for key, value in (
        ("kommun", kommun_column),
        ("voters", voters_column),
        ("households", households_column),
    ):
        if value is not None:
            columns[key] = value
    present = list(info["fields"])
    missing = [f"{col!r} ({key})" for key, col in columns.items() if col not in present]
    if missing:
        raise DistrictFileError(
            f"columns: {', '.join(missing)} not in {path.name}; its columns are "
            f"{', '.join(present) or 'none'}. Name others with --code-column, --name-column, "
            "--kommun-column"
        )

    suffix = path.suffix.lower()
    if suffix in {".json", ".geojson", ".gpkg"}:
        texts = [code_column, name_column]
        cut = _nul_rows(path, texts) if suffix == ".gpkg" else _nul_features(path, texts)
        if cut:
            raise DistrictFileError(
                f"text: features {_listing(cut)} hold a NUL character (U+0000), which no code "
                "or name may hold",
                features=cut,
            )
    try:
        frame = pyogrio.read_dataframe(path, columns=list(dict.fromkeys(columns.values())))
    except Exception as exc:
        raise DistrictFileError(f"file: cannot read {path.name} ({exc})") from None
    if len(frame) == 0:
        raise DistrictFileError(f"file: {path.name} holds no features")

    warnings: list[str] = []
    derive_kommun = kommun_column is None
    out = pd.DataFrame(index=frame.index)
    out["code"], padded = _as_text(frame[code_column], pad=8 if derive_kommun else None)
    if padded:
        warnings.append(
            f"codes in {code_column!r} were stored as numbers; leading zeros were restored "
            "to 8 digits"
        )
    empty = out["code"].isna()
    if empty.any():
        rows = [str(i + 1) for i in np.flatnonzero(empty.to_numpy())]
        raise DistrictFileError(
            f"code: features {_listing(rows)} have no value in {code_column!r}", features=rows
        )
    too_long = out.loc[out["code"].str.len() > MAX_CODE_LENGTH, "code"].tolist()
    if too_long:
        raise DistrictFileError(
            f"code: codes longer than {MAX_CODE_LENGTH} characters: {_listing(too_long)}",
            features=too_long,
        )
    dupes = sorted(out.loc[out["code"].duplicated(), "code"].unique())
    if dupes:
        raise DistrictFileError(
            f"code: duplicate codes in {code_column!r}: {_listing(dupes)}", features=dupes
        )

    names = frame[name_column].astype("string").str.strip()
    out["name"] = names.fillna(out["code"]).mask(names == "", out["code"])
    long_names = out.loc[out["name"].str.len() > MAX_NAME_LENGTH, "code"].tolist()
    if long_names:
        raise DistrictFileError(
            f"name: names longer than {MAX_NAME_LENGTH} characters for {_listing(long_names)}",
            features=long_names,
        )

    if derive_kommun:
        kommun = out["code"].str.slice(0, 4)
        bad = ~kommun.str.fullmatch(r"[0-9]{4}")
        if bad.any():
            codes = list(out.loc[bad, "code"])
            raise DistrictFileError(
                f"kommun: codes {_listing(codes)} do not start with a four-digit kommun code; "
                "name a kommun column with --kommun-column",
                features=codes,
            )
    else:
        kommun, _ = _as_text(frame[kommun_column], pad=4)
        bad = kommun.isna() | ~kommun.fillna("").str.fullmatch(r"[0-9]{4}")
        if bad.any():
            codes = list(out.loc[bad, "code"])
            raise DistrictFileError(
                f"kommun: {kommun_column!r} is not a four-digit kommun code for {_listing(codes)}",
                features=codes,
            )
    out["kommun_code"] = kommun
    out["voters"] = _counts(frame.assign(code=out["code"]), voters_column, "voters")
    out["households"] = _counts(frame.assign(code=out["code"]), households_column, "households")

    geoms = frame.geometry.to_numpy()
    missing_geom = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if missing_geom.any():
        codes = list(out["code"].to_numpy()[missing_geom])
        raise DistrictFileError(
            f"geometry: features {_listing(codes)} have no geometry", features=codes
        )
    types = shapely.get_type_id(geoms)
    polygonal = np.isin(types, [3, 6])  # Polygon, MultiPolygon
    if not polygonal.all():
        codes = list(out["code"].to_numpy()[~polygonal])
        kinds = sorted({g.geom_type for g in geoms[~polygonal]})
        raise DistrictFileError(
            f"geometry: features {_listing(codes)} are {', '.join(kinds)}, not polygons",
            features=codes,
        )
    geoms = shapely.force_2d(geoms)
    coords, owner = shapely.get_coordinates(geoms, return_index=True)
    broken = np.unique(owner[~np.isfinite(coords).all(axis=1)])
    if broken.size:
        codes = list(out["code"].to_numpy()[broken])
        raise DistrictFileError(
            f"geometry: features {_listing(codes)} have coordinates that are not finite numbers "
            "(NaN or infinity)",
            features=codes,
        )

    source_crs = _resolve_crs(path, info["crs"], crs, shapely.total_bounds(geoms))

    repaired: list[dict[str, str]] = []
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        codes = out["code"].to_numpy()
        for i in np.flatnonzero(invalid):
            reason = shapely.is_valid_reason(geoms[i])
            fixed = _polygonal_part(shapely.make_valid(geoms[i]))
            if fixed is None:
                raise DistrictFileError(
                    f"geometry: feature {codes[i]} is invalid ({reason}) and has no area left "
                    "after repair",
                    features=[codes[i]],
                )
            geoms[i] = fixed
            repaired.append({"code": str(codes[i]), "reason": reason})

    series = gpd.GeoSeries(geoms, crs=source_crs, index=frame.index)
    if source_crs.equals(AREA_CRS):
        out["area_m2"] = series.area.to_numpy()
        stored = series.to_crs(STORAGE_CRS)
    else:
        stored = series if source_crs.equals(STORAGE_CRS) else series.to_crs(STORAGE_CRS)
        out["area_m2"] = stored.to_crs(AREA_CRS).area.to_numpy()

    result = gpd.GeoDataFrame(out, geometry=stored.to_numpy(), crs=STORAGE_CRS)
    return DistrictTable(
        frame=result,
        source_crs=source_crs.to_string(),
        repaired=repaired,
        warnings=warnings,
    )


def _polygonal_part(geom: shapely.Geometry) -> shapely.Geometry | None:
    """The polygons of a repaired geometry (make_valid may add stray lines or points)."""
    if geom.geom_type in _POLYGONAL:
        return geom
    if geom.geom_type == "GeometryCollection":
        parts = [g for g in geom.geoms if g.geom_type in _POLYGONAL and not g.is_empty]
        if parts:
            merged = shapely.union_all(parts)
            if merged.geom_type in _POLYGONAL:
                return merged
    return None
