#!/usr/bin/env python3
"""Benchmark: join generated addresses to generated districts, and import them.

Districts come from scripts/bench_import.py's generator (2 km grid cells with wobbling
edges, ~80 vertices each, SWEREF 99 TM); addresses are random points over the same area.
Measured in the same run:

- ``join``: geo.addresses.join_districts from longitude/latitude arrays to district
  indices, against the raw ceiling: one ``shapely.STRtree(polygons).query(points,
  predicate="within")`` of the same (already built) points and polygons;
- ``import``: ``import_address_file`` of a CSV of all addresses into a fresh PostgreSQL
  database holding the districts, in its own process so that its peak memory is its own.

Usage: python scripts/bench_addresses.py [--addresses 1000000] [--districts 6000]
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

from api.testing import percentile, run, throwaway_database  # noqa: E402
from scripts.bench_import import PER_KOMMUN, write_file  # noqa: E402  (the same districts)

SIDE = 2000.0  # bench_import's cell size


def polygons_wgs84(path: Path):
    """The generated districts as WGS84 shapely polygons, as the database stores them."""
    import pyogrio

    frame = pyogrio.read_dataframe(path).set_crs(3006, allow_override=True).to_crs(4326)
    return frame.geometry.to_numpy()


def random_points(n: int, districts: int, seed: int = 7):
    """n longitude/latitude pairs spread over the districts' grid (a few fall outside)."""
    import numpy as np
    from pyproj import Transformer

    cols = math.ceil(math.sqrt(districts))
    rows = math.ceil(districts / cols)
    rng = np.random.default_rng(seed)
    x = 300_000 + rng.random(n) * cols * SIDE
    y = 6_300_000 + rng.random(n) * rows * SIDE
    lon, lat = Transformer.from_crs(3006, 4326, always_xy=True).transform(x, y)
    return np.asarray(lon), np.asarray(lat)


def measure_join(path: Path, n: int, districts: int, repeat: int) -> None:
    import numpy as np
    import shapely

    from geo.addresses import join_districts

    polygons = polygons_wgs84(path)
    lon, lat = random_points(n, districts)
    points = shapely.points(lon, lat)
    raw, ours = [], []

    def time_raw() -> None:
        start = time.perf_counter()
        shapely.STRtree(polygons).query(points, predicate="within")
        raw.append(time.perf_counter() - start)

    def time_ours() -> np.ndarray:
        start = time.perf_counter()
        found = join_districts(lon, lat, polygons)
        ours.append(time.perf_counter() - start)
        return found

    for r in range(repeat):
        # Alternating which goes first, so that neither always meets a warm (or cold) cache.
        if r % 2:
            found = time_ours()
            time_raw()
        else:
            time_raw()
            found = time_ours()
    inside = int((found >= 0).sum())
    best_raw, best_ours = min(raw), min(ours)
    print(
        f"join: {n:,} addresses into {len(polygons):,} districts in {best_ours:.3f} s "
        f"(median {percentile(ours, 0.5):.3f} s; {inside:,} inside a district) against the "
        f"raw STRtree.query {best_raw:.3f} s: ratio {best_ours / best_raw:.2f}"
    )


def write_addresses(path: Path, n: int, districts: int) -> None:
    import pandas as pd

    lon, lat = random_points(n, districts)
    pd.DataFrame(
        {
            "objektidentitet": [f"bench-{i:08d}" for i in range(n)],
            "adressområde": [f"Gata {i % 997}" for i in range(n)],
            "adressplatsnummer": [str(i % 151 + 1) for i in range(n)],
            "lon": lon.round(7),
            "lat": lat.round(7),
        }
    ).to_csv(path, index=False)


def child(url: str, districts_path: Path, addresses_path: Path, districts: int) -> None:
    """Runs in its own process: districts, then the address import twice; prints JSON."""
    from sqlmodel import Session

    from api.addresses.schemas import AddressImportOptions
    from api.addresses.service import import_address_file
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
        for k in range(math.ceil(districts / PER_KOMMUN)):
            session.add(Kommun(code=str(1000 + k), name=f"Kommun {k}", partidistrikt_id=pd_.id))
        session.flush()
        import_district_file(
            session=session,
            scope=Scope.operator(session),
            path=districts_path,
            options=ImportOptions(crs="EPSG:3006"),
        )
        session.commit()
    runs = []

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    for _ in range(2):
        start, start_cpu = time.perf_counter(), cpu()
        with Session(engine) as session:
            summary = import_address_file(
                session=session,
                scope=Scope.operator(session),
                path=addresses_path,
                options=AddressImportOptions(),
            )
            session.commit()
        runs.append(
            (
                time.perf_counter() - start,
                summary.created,
                summary.unchanged,
                summary.outside,
                cpu() - start_cpu,
            )
        )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"runs": runs, "peak_mib": peak_mib}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--addresses", type=int, default=1_000_000)
    parser.add_argument("--districts", type=int, default=6000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-import", action="store_true", help="measure the join only")
    parser.add_argument("--child")
    parser.add_argument("--files", nargs=2)
    args = parser.parse_args()
    if args.child:
        child(args.child, Path(args.files[0]), Path(args.files[1]), args.districts)
        return

    import psycopg

    with tempfile.TemporaryDirectory() as tmp:
        districts_path = Path(tmp) / "districts.json"
        write_file(districts_path, args.districts)
        measure_join(districts_path, args.addresses, args.districts, args.repeat)
        print("target: the join at most 1.3x the raw STRtree.query")
        if args.skip_import:
            return
        addresses_path = Path(tmp) / "addresses.csv"
        write_addresses(addresses_path, args.addresses, args.districts)
        with contextlib.ExitStack() as stack:
            try:
                url = stack.enter_context(throwaway_database(prefix="knacka_bench"))
            except psycopg.OperationalError as exc:
                print(f"postgresql: not reachable ({exc}); import not measured")
                return
            out = run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    url,
                    "--files",
                    str(districts_path),
                    str(addresses_path),
                    "--districts",
                    str(args.districts),
                ],
                timeout=None,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            (first, created, _, outside, cpu1), (second, _, unchanged, _, cpu2) = result["runs"]
            n = args.addresses
            # CPU seconds next to wall seconds: on a shared machine the wall clock also
            # counts the time other processes held the cores.
            print(
                f"postgresql import: {n:,} addresses in {first:.1f} s ({n / first:,.0f}/s, "
                f"{cpu1:.1f} s CPU; {created:,} created, {outside:,} outside); re-import "
                f"{second:.1f} s ({cpu2:.1f} s CPU; {unchanged:,} unchanged); "
                f"peak RSS {result['peak_mib']:.0f} MiB"
            )


if __name__ == "__main__":
    main()
