#!/usr/bin/env python3
"""Write the demo's address points deterministically: ``data/addresses/jamtland-demo.csv``.

Addresses for a few town districts of the demo (``DISTRICTS``), placed by the same made-up
population as the districts themselves (``scripts/build_demo_districts.py``: normal around
each real town of the kommun), kept to the district they are meant for. Each district gets
exactly its ``households`` from the district file: villas (one household) further from a
town's centre, blocks of flats (several households per entrance) near it, and a few big
buildings with several entrances (``lägestillägg`` U1, U2, ...). Streets run east-west in
rows of ``ROW_M`` metres, numbered along the street, odd on the south side and even on the
north, so that a turf's walk goes street by street as it would in a real town.

An address is a place only: street, number, entrance, postcode, postort, households; the
columns are Lantmäteriet's, so the file is imported like a real extract
(``knacka import-addresses data/addresses/jamtland-demo.csv --households-column hushall``).

Run it again and the file is byte-for-byte the same.
"""

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import shape

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from build_demo_districts import TOWNS  # noqa: E402

DISTRICTS_FILE = ROOT / "data" / "districts" / "jamtland-demo.geojson"
OUT = ROOT / "data" / "addresses" / "jamtland-demo.csv"
SEED = 2031

# Which districts get addresses: Östersund's town districts and the district holding the
# main town of four more kommuner. Not all 83: the demo loads in every test that needs it,
# and a few towns show everything (turfs, leases, coverage) as well as all would.
DISTRICTS = [
    "23800106",  # Östersund Centrum 3
    "23800107",  # Östersund Centrum 4 (the centre)
    "23800301",  # Östersund Centrum 6
    "23800303",  # Östersund Frösön 4
    "23800202",  # Östersund Torvalla 2
    "23800205",  # Östersund Brunflo 2
    "23090102",  # Krokom: holds Krokom
    "23210107",  # Åre: holds Åre and part of Duved
    "23130103",  # Strömsund: holds Strömsund
    "23610105",  # Härjedalen: holds Sveg
]

# Postort and the first three digits of the postcode, by town (plausible, not looked up).
POST = {
    "Centrum": ("Östersund", "831"),
    "Frösön": ("Frösön", "832"),
    "Torvalla": ("Östersund", "831"),
    "Lugnvik": ("Östersund", "831"),
    "Brunflo": ("Brunflo", "834"),
    "Lit": ("Lit", "836"),
    "Tandsbyn": ("Tandsbyn", "834"),
    "Krokom": ("Krokom", "835"),
    "Dvärsätt": ("Krokom", "835"),
    "Nälden": ("Nälden", "835"),
    "Ås": ("Krokom", "835"),
    "Föllinge": ("Föllinge", "835"),
    "Åre": ("Åre", "837"),
    "Duved": ("Duved", "837"),
    "Järpen": ("Järpen", "837"),
    "Mörsil": ("Mörsil", "837"),
    "Undersåker": ("Undersåker", "837"),
    "Strömsund": ("Strömsund", "833"),
    "Hammerdal": ("Hammerdal", "833"),
    "Hoting": ("Hoting", "833"),
    "Gäddede": ("Gäddede", "833"),
    "Sveg": ("Sveg", "842"),
    "Funäsdalen": ("Funäsdalen", "840"),
    "Hede": ("Hede", "840"),
    "Vemdalen": ("Vemdalen", "840"),
    "Ytterhogdal": ("Ytterhogdal", "820"),
}
# Street names: a first part and an ending, each pair used once per postort.
STREET_FIRST = [
    "Stor", "Kyrk", "Präst", "Rådhus", "Köpman", "Skol", "Hamn", "Järnvägs", "Badhus", "Tull",
    "Björk", "Gran", "Tall", "Rönn", "Lärk", "Älg", "Fjäll", "Sjö", "Park", "Ängs", "Åker",
    "Bäck", "Stations", "Sol", "Hag", "Löv", "Myr", "Vall", "Furu", "Asp",
]  # fmt: skip
STREET_END = ["gatan", "vägen", "stigen", "gränd"]
ROW_M = 90.0  # a street every 90 m north to south
INSET_M = 25.0  # buildings this far inside the district, so that each joins to it
ENTRANCE_M, MAX_ENTRANCES = 12.0, 7  # a building's entrances: 12 m apart, at most 7
BLOCK_NEAR = 0.6  # closer to a town's centre than this × its spread: mostly blocks
COLUMNS = [
    "adressområde", "adressplatsnummer", "bokstavstillägg", "lägestillägg",
    "postnummer", "postort", "hushall", "lon", "lat",
]  # fmt: skip


def _districts() -> dict[str, tuple[str, int, shapely.Geometry]]:
    """(kommun code, households, where its buildings may stand in EPSG:3006) of the chosen
    districts: inside the outline by INSET_M, and clear of every other district (a few
    generated districts overlap their neighbours by a sliver)."""
    to_3006 = Transformer.from_crs(4326, 3006, always_xy=True)
    outlines, households = {}, {}
    for feature in json.loads(DISTRICTS_FILE.read_text())["features"]:
        code = feature["properties"]["Lkfv"]
        # Densified first: the join tests the stored lon/lat outline, whose long straight
        # edges bow by tens of metres against straight edges in metres.
        outlines[code] = shapely.transform(
            shapely.segmentize(shape(feature["geometry"]), 0.001),
            lambda xy: np.column_stack(to_3006.transform(*xy.T)),
        )
        households[code] = int(feature["properties"]["households"])
    found = {}
    for code in DISTRICTS:
        outline = outlines[code]
        others = [g for c, g in outlines.items() if c != code and g.intersects(outline)]
        room = outline.buffer(-INSET_M).difference(shapely.union_all(others).buffer(INSET_M))
        found[code] = (code[:4], households[code], room)
    return found


def _buildings(kommun: str, room, rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` building sites in ``room``: the kommun's towns' population, rows of
    (x, y, town index)."""
    to_3006 = Transformer.from_crs(4326, 3006, always_xy=True)
    towns = TOWNS[kommun]
    centres = np.array([to_3006.transform(t[1], t[2]) for t in towns])
    weights = np.array([t[3] for t in towns], dtype=float)
    spreads = np.array([t[4] * 1000 for t in towns])
    shapely.prepare(room)
    found, have = [], 0
    while have < count:
        batch = 4096
        which = rng.choice(len(towns), size=batch, p=weights / weights.sum())
        xy = rng.normal(centres[which], spreads[which, None])
        # The building's entrances run east of its site: all of them inside the district.
        keep = shapely.contains_xy(room, xy[:, 0], xy[:, 1]) & shapely.contains_xy(
            room, xy[:, 0] + ENTRANCE_M * MAX_ENTRANCES, xy[:, 1]
        )
        found.append(np.column_stack([xy[keep], which[keep]]))
        have += int(keep.sum())
    return np.concatenate(found)[:count]


def _street(postort: str, used: dict[str, int]) -> str:
    """The next street name not yet used in ``postort``."""
    n = used.get(postort, 0)
    used[postort] = n + 1
    first = STREET_FIRST[n % len(STREET_FIRST)]
    return first + STREET_END[(n // len(STREET_FIRST)) % len(STREET_END)]


def _rows_of(
    code: str, kommun: str, households: int, room, rng, used: dict[str, int]
) -> list[dict]:
    """Addresses of one district adding up to exactly ``households``."""
    towns = TOWNS[kommun]
    to_3006 = Transformer.from_crs(4326, 3006, always_xy=True)
    centres = np.array([to_3006.transform(t[1], t[2]) for t in towns])
    # More sites than needed: each becomes a villa or a block until the households run out.
    sites = _buildings(kommun, room, rng, households)
    buildings = []  # (x, y, town, households per entrance)
    left = households
    for x, y, town in sites:
        if left <= 0:
            break
        town = int(town)
        near = np.hypot(x - centres[town][0], y - centres[town][1]) / (towns[town][4] * 1000)
        if rng.random() < (0.75 if near < BLOCK_NEAR else 0.12):
            big = rng.random() < 0.08  # a few big buildings with several entrances
            entrances = int(rng.integers(4, MAX_ENTRANCES + 1)) if big else int(rng.integers(1, 4))
            per = [int(rng.integers(6, 16)) for _ in range(entrances)]
        else:
            per = [1]
        while sum(per) > left:  # the last building takes what is left
            if per[-1] > 1:
                per[-1] -= 1
            else:
                per.pop()
        buildings.append((float(x), float(y), town, per))
        left -= sum(per)

    # Streets: rows of ROW_M metres; within a row, numbered west to east, odd on the south
    # half and even on the north half, as Swedish streets are numbered along one side each.
    ys = np.array([b[1] for b in buildings])
    row_of = np.floor((ys - ys.min()) / ROW_M).astype(int)
    to_wgs84 = Transformer.from_crs(3006, 4326, always_xy=True)
    rows = []
    for row in sorted(set(row_of.tolist())):
        members = sorted(np.flatnonzero(row_of == row).tolist(), key=lambda i: buildings[i][0])
        # A row's street belongs to the postort of its first building (west end).
        first_town = towns[buildings[members[0]][2]][0]
        postort, prefix = POST.get(first_town, (first_town, "830"))
        street = _street(postort, used)
        postcode = f"{prefix}{(row * 3 + int(code[-2:])) % 90 + 10:02d}"
        odd, even = 1, 2
        for i in members:
            x, y, town, per = buildings[i]
            north = (y - ys.min()) % ROW_M >= ROW_M / 2
            number = even if north else odd
            if north:
                even += 2
            else:
                odd += 2
            for e, n in enumerate(per):
                lon, lat = to_wgs84.transform(x + ENTRANCE_M * e, y)
                rows.append(
                    {
                        "adressområde": street,
                        "adressplatsnummer": str(number),
                        "bokstavstillägg": "",
                        "lägestillägg": f"U{e + 1}" if len(per) > 1 else "",
                        "postnummer": postcode,
                        "postort": postort,
                        "hushall": n,
                        "lon": f"{lon:.6f}",
                        "lat": f"{lat:.6f}",
                    }
                )
    return rows


def main(out: Path = OUT) -> None:
    rng = np.random.default_rng(SEED)
    rows: list[dict] = []
    used: dict[str, int] = {}
    for code, (kommun, households, room) in sorted(_districts().items()):
        rows.extend(_rows_of(code, kommun, households, room, rng, used))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(buffer.getvalue(), encoding="utf-8")
    print(f"wrote {len(rows)} addresses to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
