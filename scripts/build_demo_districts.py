#!/usr/bin/env python3
"""Write the demo's district file, data/districts/jamtland-demo.geojson, deterministically.

The shapes are generated, not real valdistrikt: each kommun is a block placed roughly where it
lies in Jämtland, cut into as many rectangular districts as the kommun had valdistrikt in 2022.
Run it again and the file is byte-for-byte the same.
"""

import json
import math
import random
import sys
from pathlib import Path

from pyproj import Transformer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.demo import KOMMUNER  # noqa: E402

OUT = ROOT / "data" / "districts" / "jamtland-demo.geojson"

# Blocks in SWEREF 99 TM (EPSG:3006): minx, miny, maxx, maxy in metres.
BLOCKS = {
    "2321": (330_000, 7_040_000, 420_000, 7_120_000),  # Åre
    "2309": (420_000, 7_060_000, 480_000, 7_160_000),  # Krokom
    "2313": (480_000, 7_060_000, 570_000, 7_170_000),  # Strömsund
    "2380": (450_000, 7_000_000, 500_000, 7_060_000),  # Östersund
    "2305": (500_000, 6_980_000, 570_000, 7_060_000),  # Bräcke
    "2326": (390_000, 6_960_000, 450_000, 7_040_000),  # Berg
    "2303": (570_000, 6_990_000, 630_000, 7_060_000),  # Ragunda
    "2361": (320_000, 6_850_000, 450_000, 6_960_000),  # Härjedalen
}
PLACES = {
    "2303": ["Hammarstrand", "Stugun", "Bispgården", "Gevåg"],
    "2305": ["Bräcke", "Kälarne", "Gällö", "Pilgrimstad", "Revsund"],
    "2309": [
        "Krokom",
        "Dvärsätt",
        "Nälden",
        "Föllinge",
        "Ås",
        "Aspås",
        "Offerdal",
        "Rödön",
        "Laxsjö",
        "Hotagen",
    ],
    "2313": [
        "Strömsund",
        "Hammerdal",
        "Hoting",
        "Backe",
        "Gäddede",
        "Frostviken",
        "Ström",
        "Alanäs",
    ],
    "2321": [
        "Järpen",
        "Åre",
        "Undersåker",
        "Duved",
        "Mörsil",
        "Hallen",
        "Kall",
        "Oviken",
        "Storlien",
    ],
    "2326": ["Svenstavik", "Myrviken", "Hackås", "Rätan", "Klövsjö", "Åsarne"],
    "2361": [
        "Sveg",
        "Funäsdalen",
        "Hede",
        "Vemdalen",
        "Lillhärdal",
        "Ytterhogdal",
        "Tännäs",
        "Älvros",
    ],
    "2380": [
        "Centrum",
        "Frösön",
        "Odenslund",
        "Lugnvik",
        "Torvalla",
        "Brunflo",
        "Lit",
        "Tandsbyn",
        "Odensala",
        "Körfältet",
        "Erikslund",
        "Valla",
        "Söder",
        "Norr",
        "Ängsmon",
        "Karlslund",
        "Fältjägarn",
    ],
}


def cells(block: tuple[int, int, int, int], n: int) -> list[tuple[float, float, float, float]]:
    """Cut a block into n rectangles: full rows of `cols`, the last row's cells wider."""
    minx, miny, maxx, maxy = block
    cols = max(1, round(math.sqrt(n * (maxx - minx) / (maxy - miny))))
    rows = math.ceil(n / cols)
    out = []
    height = (maxy - miny) / rows
    for r in range(rows):
        in_row = cols if r < rows - 1 else n - cols * (rows - 1)
        width = (maxx - minx) / in_row
        y0 = maxy - (r + 1) * height
        for c in range(in_row):
            out.append((minx + c * width, y0, minx + (c + 1) * width, y0 + height))
    return out


def main(out: Path = OUT) -> None:
    to_wgs84 = Transformer.from_crs(3006, 4326, always_xy=True)
    rng = random.Random(2030)
    features = []
    for code, name, count in KOMMUNER:
        places = PLACES[code]
        for i, (x0, y0, x1, y1) in enumerate(cells(BLOCKS[code], count)):
            ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
            lonlat = [[round(v, 6) for v in to_wgs84.transform(x, y)] for x, y in ring]
            place = places[i % len(places)]
            suffix = f" {i // len(places) + 1}" if count > len(places) else ""
            voters = rng.randint(1300, 2100) if code == "2380" else rng.randint(700, 1500)
            features.append(
                {
                    "type": "Feature",
                    "properties": {
                        "Lkfv": f"{code}{(i // 9 + 1):02d}{(i % 9 + 1):02d}",
                        "Vdnamn": f"{name} {place}{suffix}",
                        "voters": voters,
                        "households": round(voters * rng.uniform(0.5, 0.62)),
                    },
                    "geometry": {"type": "Polygon", "coordinates": [lonlat]},
                }
            )
    doc = {"type": "FeatureCollection", "name": "jamtland-demo", "features": features}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"wrote {len(features)} districts to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
