"""Reading address points from CSV, GeoJSON and GeoPackage, and joining them to districts.

The defaults fit Lantmäteriet's "Belägenhetsadress Nedladdning" GeoPackage (CC BY 4.0):
a point layer in SWEREF 99 TM with ``objektidentitet``, ``adressområde``,
``adressplatsnummer``, ``bokstavstillägg``, ``lägestillägg``, ``postnummer`` and ``postort``.
Column names are matched without regard to case or Swedish diacritics, since the same data
arrives as ``adressområde`` in one extract and ``ADRESSOMRADE`` in another.

An address is a place: only the columns named here are read, so a resident's name in the
file never leaves it. Coordinates come back as WGS84 longitude/latitude; the CRS policy is
the district import's (geo.districts): nothing is guessed.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import Transformer

from geo.districts import (
    MAX_COUNT,
    STORAGE_CRS,
    DistrictFileError,
    _listing,
    _resolve_crs,
    _unzip,
)

__all__ = [
    "AddressFileError",
    "AddressTable",
    "KEY_LENGTH",
    "address_key",
    "join_districts",
    "read_addresses",
]

KEY_LENGTH = 120  # Address.key's width
_LIMITS = {"street": 200, "number": 20, "entrance": 20, "postcode": 10, "postort": 100}
_CSV_SUFFIXES = {".csv", ".txt"}
_VECTOR_SUFFIXES = {".geojson", ".json", ".gpkg", ".shp"}
# Longitude/latitude column pairs a CSV may use, then projected ones (which need a CRS).
_LONLAT = (("lon", "lat"), ("longitude", "latitude"), ("lng", "lat"))
_XY = (("x", "y"), ("e", "n"), ("easting", "northing"))


class AddressFileError(DistrictFileError):
    """An address file that cannot be imported; the message says what to fix."""


@dataclass
class AddressTable:
    """Validated addresses ready to join and store.

    Attributes
    ----------
    frame : pandas.DataFrame
        Columns ``key``, ``street``, ``number``, ``entrance``, ``postcode``, ``postort``,
        ``households`` (None when the file has no figure), ``lon``, ``lat`` and ``where``
        (``"line 7"`` or ``"feature 7"``, for messages), one row per address, keys unique.
    source_crs : str
        The CRS the coordinates were read in.
    key_source : str
        The column the keys came from, or ``"address"`` when they were built from it.
    warnings : list of str
    """

    frame: pd.DataFrame
    source_crs: str
    key_source: str
    warnings: list[str] = field(default_factory=list)


def _fold(name: str) -> str:
    """A column name without case, diacritics, spaces or underscores: the matching form."""
    plain = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    return re.sub(r"[\s_\-]", "", plain).casefold()


def _collapse(value: str) -> str:
    return re.sub(r"\s+", " ", value).strip()


def _collapsed(text: pd.Series) -> pd.Series:
    """Stripped text with runs of whitespace made one space; only the few values that hold
    such a run are rewritten (a per-value regex over a million rows costs seconds)."""
    odd = text.str.contains(r"\s\s|[^\S ]", regex=True, na=False)
    if odd.any():
        text = text.where(~odd, text[odd].str.replace(r"\s+", " ", regex=True))
    return text


def address_key(street: str, number: str, entrance: str | None, postcode: str | None) -> str:
    """The stable key of an address without an object id: its normalised parts.

    Parameters
    ----------
    street, number, entrance, postcode : str
        ``number`` already holds the letter (``"12B"``).

    Returns
    -------
    str
        At most KEY_LENGTH characters; a longer one ends in a hash of the whole.
    """
    parts = [street, number, entrance or "", (postcode or "").replace(" ", "")]
    key = "|".join(_collapse(p).casefold() for p in parts)
    if len(key) > KEY_LENGTH:
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]
        key = f"{key[: KEY_LENGTH - 17]}~{digest}"
    return key


def _text(series: pd.Series) -> pd.Series:
    """Values as stripped text, with whole floats (GDAL's integers in disguise) unfloated."""
    if pd.api.types.is_float_dtype(series) and series.dropna().mod(1).eq(0).all():
        series = series.astype("Int64")
    text = series.astype("string").str.strip()
    return text.mask(text == "")


def _find(columns: list[str], wanted: str | None) -> str | None:
    if wanted is None:
        return None
    folded = {_fold(c): c for c in columns}
    return wanted if wanted in columns else folded.get(_fold(wanted))


@dataclass
class _Columns:
    key: str | None
    street: str
    number: str | None
    letter: str | None
    entrance: str | None
    postcode: str | None
    postort: str | None
    households: str | None


def _choose_columns(
    present: list[str], path: Path, named: dict[str, str | None], defaults: dict[str, str | None]
) -> _Columns:
    """Map each part to a column; a column named by the caller must exist, a default may not."""
    chosen: dict[str, str | None] = {}
    missing = []
    for part, default in defaults.items():
        wanted = named.get(part)
        found = _find(present, wanted if wanted is not None else default)
        if wanted is not None and found is None:
            missing.append(f"{wanted!r} ({part}, --{part}-column)")
        chosen[part] = found
    if chosen["street"] is None and named.get("street") is None:
        missing.append(f"{defaults['street']!r} (street, --street-column)")
    if missing:
        raise AddressFileError(
            f"columns: {', '.join(missing)} not in {path.name}; its columns are "
            f"{', '.join(present) or 'none'}"
        )
    return _Columns(**chosen)


_DEFAULTS = {
    "key": "objektidentitet",
    "street": "adressområde",
    "number": "adressplatsnummer",
    "letter": "bokstavstillägg",
    "entrance": "lägestillägg",
    "postcode": "postnummer",
    "postort": "postort",
    "households": None,  # 1 per address unless a column is named
}


def read_addresses(
    path: str | os.PathLike[str],
    *,
    crs: str | None = None,
    key_column: str | None = None,
    street_column: str | None = None,
    number_column: str | None = None,
    letter_column: str | None = None,
    entrance_column: str | None = None,
    postcode_column: str | None = None,
    postort_column: str | None = None,
    households_column: str | None = None,
    x_column: str | None = None,
    y_column: str | None = None,
    max_unzipped_bytes: int | None = None,
) -> AddressTable:
    """Read and validate an address file.

    Parameters
    ----------
    path : path-like
        CSV (UTF-8, comma or semicolon separated), GeoJSON, GeoPackage, or a .zip holding
        one GeoJSON, GeoPackage or Shapefile.
    crs : str, optional
        The CRS of coordinates the file does not name (a CSV's x/y, a GeoJSON in SWEREF).
    key_column, street_column, number_column, letter_column, entrance_column,
    postcode_column, postort_column : str, optional
        Columns of the address's parts; None means Lantmäteriet's name, when present.
    households_column : str, optional
        Households per address; without it every address counts as one.
    x_column, y_column : str, optional
        A CSV's coordinate columns; by default lon/lat (WGS84), else x/y (which need ``crs``).
    max_unzipped_bytes : int, optional
        The most a .zip may unpack to.

    Returns
    -------
    AddressTable

    Raises
    ------
    AddressFileError
        For an unreadable or empty file, a missing column, a CRS that would be a guess,
        a feature that is not a point, empty streets, bad household counts, over-long
        values or duplicate keys; the message names the column and the lines or features.
    """
    path = Path(path)
    if not path.exists():
        raise AddressFileError(f"file: {path} does not exist")
    named = {
        "key": key_column,
        "street": street_column,
        "number": number_column,
        "letter": letter_column,
        "entrance": entrance_column,
        "postcode": postcode_column,
        "postort": postort_column,
        "households": households_column,
    }
    if path.suffix.lower() == ".zip":
        with tempfile.TemporaryDirectory(prefix="knacka-unzip-") as tmp:
            inner = _unzip(path, Path(tmp), max_unzipped_bytes)
            return _read(inner, crs, named, x_column, y_column)
    return _read(path, crs, named, x_column, y_column)


def _read(
    path: Path,
    crs: str | None,
    named: dict[str, str | None],
    x_column: str | None,
    y_column: str | None,
) -> AddressTable:
    suffix = path.suffix.lower()
    if suffix in _CSV_SUFFIXES:
        frame, x, y, declared, where = _read_csv(path, named, x_column, y_column)
    elif suffix in _VECTOR_SUFFIXES:
        frame, x, y, declared, where = _read_vector(path, named)
    else:
        raise AddressFileError(
            f"file: {path.name} is not a CSV (.csv), GeoJSON (.geojson/.json) or GeoPackage (.gpkg)"
        )
    cols: _Columns = frame.attrs["columns"]
    n = len(frame)
    if n == 0:
        raise AddressFileError(f"file: {path.name} holds no addresses")

    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        rows = list(where[bad])
        raise AddressFileError(
            f"geometry: {_listing(rows)} have coordinates that are missing or not finite numbers",
            features=rows,
        )
    bounds = np.array([x.min(), y.min(), x.max(), y.max()])
    source = _resolve_crs(path, declared, crs, bounds)
    if source.equals(STORAGE_CRS):
        lon, lat = x, y
    else:
        lon, lat = Transformer.from_crs(source, STORAGE_CRS, always_xy=True).transform(x, y)
        lon, lat = np.asarray(lon), np.asarray(lat)

    out = pd.DataFrame(index=pd.RangeIndex(n))
    street = _collapsed(_text(frame[cols.street]))
    empty = street.isna().to_numpy()
    if empty.any():
        rows = list(where[empty])
        raise AddressFileError(
            f"street: {_listing(rows)} have no value in {cols.street!r}", features=rows
        )
    out["street"] = street.to_numpy()
    number = _part(frame, cols.number)
    letter = _part(frame, cols.letter)
    out["number"] = (number.fillna("") + letter.fillna("")).str.replace(" ", "").to_numpy()
    out["entrance"] = _part(frame, cols.entrance).to_numpy()
    postcode = _part(frame, cols.postcode).str.replace(r"\s+", "", regex=True)
    out["postcode"] = postcode.to_numpy()
    out["postort"] = _part(frame, cols.postort).to_numpy()
    for part, limit in _LIMITS.items():
        lengths = out[part].astype("string").str.len().fillna(0).to_numpy()
        over = lengths > limit
        if over.any():
            rows = list(where[over])
            raise AddressFileError(
                f"{part}: {_listing(rows)} hold more than {limit} characters", features=rows
            )

    for part in ("number", "entrance", "postcode", "postort"):
        values = out[part].astype("object")
        out[part] = values.where(out[part].notna(), None)
    out["number"] = out["number"].fillna("")
    if cols.households is not None:
        raw = frame[cols.households]
        values = pd.to_numeric(raw, errors="coerce")
        wrong = (
            (values.isna() & _text(raw).notna())
            | (values < 0)
            | (values > MAX_COUNT)
            | (values.notna() & (values.mod(1) != 0))
        ).to_numpy()
        if wrong.any():
            rows = list(where[wrong])
            raise AddressFileError(
                f"households: column {cols.households!r} holds values that are not whole "
                f"numbers from 0 to {MAX_COUNT} at {_listing(rows)}",
                features=rows,
            )
        out["households"] = values.astype("Int64").astype("object").where(values.notna(), None)
    else:
        out["households"] = None

    if cols.key is not None:
        keys = _text(frame[cols.key])
        no_key = keys.isna().to_numpy()
        if no_key.any():
            rows = list(where[no_key])
            raise AddressFileError(
                f"key: {_listing(rows)} have no value in {cols.key!r}", features=rows
            )
        long_keys = (keys.str.len() > KEY_LENGTH).to_numpy()
        if long_keys.any():
            rows = list(where[long_keys])
            raise AddressFileError(
                f"key: {_listing(rows)} hold keys longer than {KEY_LENGTH} characters in "
                f"{cols.key!r}",
                features=rows,
            )
        out["key"] = keys.to_numpy()
        key_source = cols.key
    else:
        out["key"] = [
            address_key(s, nb, e, p)
            for s, nb, e, p in zip(
                out["street"], out["number"], out["entrance"], out["postcode"], strict=True
            )
        ]
        key_source = "address"
    dupes = out["key"].duplicated(keep=False).to_numpy()
    if dupes.any():
        rows = list(where[dupes])
        what = f"the same {cols.key!r}" if cols.key else "the same street, number, entrance "
        raise AddressFileError(
            f"key: {_listing(rows)} have {what}"
            + ("" if cols.key else "and postcode; name an id column with --key-column"),
            features=rows,
        )
    out["lon"] = lon
    out["lat"] = lat
    out["where"] = where
    warnings = []
    if cols.key is None:
        warnings.append(
            "no object id column: addresses are keyed by street, number, entrance and "
            "postcode, so a renamed street is a new address"
        )
    return AddressTable(
        frame=out, source_crs=source.to_string(), key_source=key_source, warnings=warnings
    )


def _part(frame: pd.DataFrame, column: str | None) -> pd.Series:
    if column is None:
        return pd.Series(pd.NA, index=frame.index, dtype="string")
    return _collapsed(_text(frame[column]).astype("string"))


def _read_csv(
    path: Path, named: dict[str, str | None], x_column: str | None, y_column: str | None
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, str | None, np.ndarray]:
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as handle:
            head = handle.readline()
        sep = ";" if head.count(";") > head.count(",") else ","
        frame = pd.read_csv(
            path, sep=sep, dtype=str, encoding="utf-8-sig", keep_default_na=False, na_values=[""]
        )
    except UnicodeDecodeError:
        raise AddressFileError(f"file: {path.name} is not UTF-8 text") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise AddressFileError(f"file: cannot read {path.name} as CSV ({exc})") from None
    present = list(frame.columns)
    cols = _choose_columns(present, path, named, _DEFAULTS)
    declared: str | None
    if (x_column is None) != (y_column is None):
        raise AddressFileError("columns: name both --x-column and --y-column, or neither")
    if x_column is not None:
        xc, yc = _find(present, x_column), _find(present, y_column)
        if xc is None or yc is None:
            raise AddressFileError(
                f"columns: {x_column!r} or {y_column!r} (coordinates) not in {path.name}; its "
                f"columns are {', '.join(present)}"
            )
        declared = None
    else:
        pair = next(
            ((_find(present, a), _find(present, b)) for a, b in _LONLAT if _find(present, a)),
            None,
        )
        declared = "EPSG:4326"
        if pair is None or pair[1] is None:
            pair = next(
                ((_find(present, a), _find(present, b)) for a, b in _XY if _find(present, a)),
                None,
            )
            declared = None
        if pair is None or pair[1] is None:
            raise AddressFileError(
                f"columns: {path.name} has no lon/lat or x/y columns; its columns are "
                f"{', '.join(present) or 'none'}. Name them with --x-column and --y-column"
            )
        xc, yc = pair
    where = np.array([f"line {i + 2}" for i in range(len(frame))], dtype=object)
    coords = {}
    for label, column in (("x", xc), ("y", yc)):
        text = frame[column].str.strip().str.replace(",", ".", regex=False)
        values = pd.to_numeric(text, errors="coerce")
        wrong = (values.isna() & text.notna() & (text != "")).to_numpy()
        if wrong.any():
            rows = list(where[wrong])
            raise AddressFileError(
                f"{label}: column {column!r} holds values that are not numbers at {_listing(rows)}",
                features=rows,
            )
        coords[label] = values.to_numpy(dtype=float, na_value=np.nan)
    frame.attrs["columns"] = cols
    return frame, coords["x"], coords["y"], declared, where


def _read_vector(
    path: Path, named: dict[str, str | None]
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, str | None, np.ndarray]:
    try:
        info = pyogrio.read_info(path)
    except Exception as exc:
        raise AddressFileError(f"file: cannot read {path.name} as a vector file ({exc})") from None
    present = list(info["fields"])
    cols = _choose_columns(present, path, named, _DEFAULTS)
    wanted = [c for c in vars(cols).values() if c is not None]
    try:
        frame = pyogrio.read_dataframe(path, columns=list(dict.fromkeys(wanted)))
    except Exception as exc:
        raise AddressFileError(f"file: cannot read {path.name} ({exc})") from None
    where = np.array([f"feature {i + 1}" for i in range(len(frame))], dtype=object)
    geoms = frame.geometry.to_numpy()
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if missing.any():
        rows = list(where[missing])
        raise AddressFileError(f"geometry: {_listing(rows)} have no geometry", features=rows)
    points = shapely.get_type_id(geoms) == 0
    if not points.all():
        rows = list(where[~points])
        kinds = sorted({g.geom_type for g in geoms[~points]})
        raise AddressFileError(
            f"geometry: {_listing(rows)} are {', '.join(kinds)}, not points", features=rows
        )
    frame = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    frame.attrs["columns"] = cols
    return frame, shapely.get_x(geoms), shapely.get_y(geoms), info["crs"], where


def join_districts(lon: np.ndarray, lat: np.ndarray, polygons: np.ndarray) -> np.ndarray:
    """The index into ``polygons`` of the polygon each point lies in, or -1.

    One vectorised ``STRtree.query`` of all points' bounding boxes, then one vectorised
    ``contains_xy`` on the prepared polygons (which are left prepared). A point in
    two overlapping polygons gets the lower index; a point exactly on a border (within
    neither) gets a polygon whose border it touches, from a second query of those few.

    Parameters
    ----------
    lon, lat : numpy.ndarray
        Point coordinates, in the polygons' CRS.
    polygons : numpy.ndarray of shapely geometries

    Returns
    -------
    numpy.ndarray of int64
    """
    n = len(lon)
    result = np.full(n, -1, dtype=np.int64)
    if n == 0 or len(polygons) == 0:
        return result
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    points = shapely.points(lon, lat)
    tree = shapely.STRtree(polygons)
    # Bounding boxes first, then the exact test on prepared polygons straight from the
    # coordinates: together about 0.6x of ``query(points, predicate="within")``, which tests
    # each candidate pair without preparing the polygon.
    hit, poly = tree.query(points)
    shapely.prepare(polygons)
    inside = shapely.contains_xy(polygons[poly], lon[hit], lat[hit])
    hit, poly = hit[inside], poly[inside]
    result[hit] = poly
    counts = np.bincount(hit, minlength=n)
    twice = counts > 1
    if twice.any():
        many = twice[hit]
        lowest = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(lowest, hit[many], poly[many])
        result[twice] = lowest[twice]
    loose = np.flatnonzero(result < 0)
    if loose.size:
        hit2, poly2 = tree.query(points[loose], predicate="intersects")
        if hit2.size:
            lowest = np.full(loose.size, np.iinfo(np.int64).max, dtype=np.int64)
            np.minimum.at(lowest, hit2, poly2)
            found = lowest < np.iinfo(np.int64).max
            result[loose[found]] = lowest[found]
    return result
