#!/usr/bin/env python3
"""Benchmark: import a generated 6,000-district file, against the raw read ceiling.

Writes a GeoJSON like Valmyndigheten's (EPSG:3006 coordinates, no ``crs`` member, ~80
vertices per district), then measures in the same run:

- the ceiling: a bare ``pyogrio.read_dataframe`` + ``to_crs(4326)`` of the file;
- ``knacka import-districts --crs EPSG:3006`` into a fresh SQLite file and a fresh PostgreSQL
  database (first import, and the re-import that changes nothing), each in its own process so
  that its peak memory is its own.

Usage: python scripts/bench_import.py [--districts 6000] [--repeat 3]
"""

import argparse
import contextlib
import json
import math
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.testing import run, throwaway_database  # noqa: E402  (the repository is on the path)

PER_KOMMUN = 100


def write_file(path: Path, n: int) -> None:
    """n grid cells of 2 km, each edge cut into 20 segments with a deterministic wobble."""
    cols = math.ceil(math.sqrt(n))
    side, steps = 2000.0, 20
    features = []
    for i in range(n):
        x0, y0 = 300_000 + (i % cols) * side, 6_300_000 + (i // cols) * side
        ring = []
        for k in range(4 * steps):
            edge, t = divmod(k, steps)
            f = t / steps
            # The wobble depends only on the absolute position so neighbours share edges.
            x, y = [
                (x0 + f * side, y0),
                (x0 + side, y0 + f * side),
                (x0 + side - f * side, y0 + side),
                (x0, y0 + side - f * side),
            ][edge]
            w = 30.0 * math.sin((x + y) / 150.0) if t > 0 else 0.0
            ring.append(
                [round(x + (w if edge % 2 else 0), 3), round(y + (0 if edge % 2 else w), 3)]
            )
        ring.append(ring[0])
        kommun = 1000 + i // PER_KOMMUN
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "Lkfv": f"{kommun}{i % PER_KOMMUN + 1:04d}",
                    "Vdnamn": f"Distrikt {i + 1}",
                },
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))


def bare_read(path: Path) -> float:
    import pyogrio

    start = time.perf_counter()
    frame = pyogrio.read_dataframe(path)
    frame.set_crs(3006, allow_override=True).to_crs(4326)
    return time.perf_counter() - start


def child(url: str, path: Path, n: int) -> None:
    """Runs in its own process: set up kommuner, import twice, print timings as JSON."""
    from sqlmodel import Session

    from api.auth.scope import Scope
    from api.db import make_engine
    from api.districts.schemas import ImportOptions
    from api.districts.service import import_district_file
    from api.migrate import upgrade
    from api.models import Kommun, Partidistrikt

    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        pd_ = Partidistrikt(code="99", name="Benchmark")
        session.add(pd_)
        session.flush()
        for k in range(math.ceil(n / PER_KOMMUN)):
            session.add(Kommun(code=str(1000 + k), name=f"Kommun {k}", partidistrikt_id=pd_.id))
        session.commit()
    timings = []
    for _ in range(2):
        start = time.perf_counter()
        with Session(engine) as session:
            summary = import_district_file(
                session=session,
                scope=Scope.operator(session),
                path=path,
                options=ImportOptions(crs="EPSG:3006"),
            )
            session.commit()
        timings.append((time.perf_counter() - start, summary.created, summary.unchanged))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"runs": timings, "peak_mib": peak_mib}))


def run_child(url: str, path: Path, n: int) -> dict:
    out = run(
        [sys.executable, __file__, "--child", url, "--file", str(path), "--districts", str(n)],
        timeout=None,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--districts", type=int, default=6000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child")
    parser.add_argument("--file")
    args = parser.parse_args()
    if args.child:
        child(args.child, Path(args.file), args.districts)
        return

    import psycopg

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "districts.json"
        write_file(path, args.districts)
        n = args.districts
        print(f"file: {n} districts, {path.stat().st_size / 2**20:.1f} MiB, EPSG:3006 without crs")
        bare = min(bare_read(path) for _ in range(args.repeat))
        print(
            f"ceiling  bare pyogrio.read_dataframe + to_crs: {bare:.3f} s "
            f"({n / bare:,.0f} districts/s)"
        )

        targets = [("sqlite", f"sqlite:///{tmp}/bench.sqlite3")]
        with contextlib.ExitStack() as stack:
            try:
                pg_url = stack.enter_context(throwaway_database(prefix="knacka_bench"))
                targets.append(("postgresql", pg_url))
            except psycopg.OperationalError as exc:
                print(f"postgresql: not reachable ({exc}); measured SQLite only")
            for name, url in targets:
                result = run_child(url, path, n)
                (first, created, _), (second, _, unchanged) = result["runs"]
                print(
                    f"{name:10s} import: {first:.3f} s ({n / first:,.0f} districts/s, "
                    f"{created} created) = {first / bare:.2f}x the bare read; "
                    f"re-import: {second:.3f} s ({unchanged} unchanged) = {second / bare:.2f}x; "
                    f"peak RSS {result['peak_mib']:.0f} MiB"
                )
    print("target: the whole import at most 3x the bare read")


if __name__ == "__main__":
    main()
