#!/usr/bin/env python3
"""Benchmark: cut a generated kommun of 50,000 households in ~40 districts into turfs.

The addresses are made up (api.testing.generated_kommun): clustered around a few centres per
district, villas of one household and blocks of several entrances of many households. Both
cutting methods of geo.turfs run on the same data, so that the chosen one (recursive weighted
bisection) is measured against the alternative (strips):

- the time of the cut, polygons and walking orders included (best of ``--repeat``), and the
  CPU time it took (on a busy machine the wall clock mostly measures the other processes);
- max/target: the largest turf over the target (at most 1.3 unless it is one entrance);
- cv: the coefficient of variation of the turfs' households;
- within ±15 %: the share of turfs within 15 % of the target;
- walk per household: the walks' metres over the households.

Then the service end to end on a fresh SQLite file (``--no-service`` skips it): reading the
addresses, cutting and writing the turfs, in one transaction.

Usage: python scripts/bench_turfs.py [--households 50000] [--districts 40] [--target 60]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.testing import generated_kommun, knacka  # noqa: E402  (the repository is on the path)
from geo.turfs import cut_district  # noqa: E402

METHODS = ("bisection", "strips")  # the chosen one first


def cut_all(kommun, target: int, method: str):
    """Every district's cut, in order."""
    cuts = []
    for polygon, a in kommun:
        buildings = [f"{s}|{n}" for s, n in zip(a.streets, a.numbers, strict=True)]
        cuts.append(
            cut_district(
                a.xy,
                a.households,
                district=polygon,
                crs="EPSG:3006",
                target=target,
                buildings=buildings,
                streets=a.streets,
                numbers=a.numbers,
                method=method,
            )
        )
    return cuts


def figures(cuts, target: int) -> str:
    sizes = np.array([t.households for c in cuts for t in c.turfs], dtype=float)
    walk = sum(t.walk_length_m for c in cuts for t in c.turfs)
    within = np.mean(np.abs(sizes - target) <= 0.15 * target)
    return (
        f"{len(sizes)} turfs, max/target {sizes.max() / target:.2f}, "
        f"cv {sizes.std() / sizes.mean():.3f}, within ±15 % {100 * within:.0f} %, "
        f"walk per household {walk / sizes.sum():.1f} m"
    )


def bench_service(kommun, target: int) -> str:
    """Store the kommun in a fresh SQLite file and time cut_turfs on all of it."""
    import shapely
    from pyproj import Transformer
    from sqlalchemy import insert
    from sqlmodel import Session, create_engine

    from api.auth.scope import Scope
    from api.models import Address, District, Kommun, Partidistrikt, utcnow
    from api.turfs.cutting import cut_turfs

    to_degrees = Transformer.from_crs(3006, 4326, always_xy=True)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.sqlite3"
        knacka(url, "db", "upgrade")
        engine = create_engine(url)
        with Session(engine) as session:
            pd = Partidistrikt(code="01", name="Stockholms län")
            session.add(pd)
            session.flush()
            k = Kommun(code="0180", name="Stockholm", partidistrikt_id=pd.id)
            session.add(k)
            session.flush()
            addresses = []
            ids = []
            for i, (polygon, a) in enumerate(kommun):
                outline = shapely.transform(
                    polygon, lambda c: np.column_stack(to_degrees.transform(c[:, 0], c[:, 1]))
                )
                minx, miny, maxx, maxy = outline.bounds
                d = District(
                    code=f"0180{i + 1:04d}",
                    name=f"Distrikt {i + 1}",
                    kommun_id=k.id,
                    geom_wkb=shapely.to_wkb(outline),
                    min_lon=minx,
                    min_lat=miny,
                    max_lon=maxx,
                    max_lat=maxy,
                    area_m2=polygon.area,
                )
                session.add(d)
                session.flush()
                ids.append(d.id)
                lon, lat = to_degrees.transform(a.xy[:, 0], a.xy[:, 1])
                for j in range(len(a.xy)):
                    addresses.append(
                        {
                            "key": f"{d.code}-{j}",
                            "district_id": d.id,
                            "kommun_id": k.id,
                            "street": a.streets[j],
                            "number": a.numbers[j],
                            "entrance": a.entrances[j],
                            "lon": float(lon[j]),
                            "lat": float(lat[j]),
                            "households": int(a.households[j]),
                            "households_source": "file",
                        }
                    )
            session.execute(insert(Address), addresses)
            session.commit()
        with Session(engine) as session:
            started, cpu = time.perf_counter(), time.process_time()
            summary = cut_turfs(
                session=session,
                scope=Scope.operator(session),
                district_ids=ids,
                households=target,
                now=utcnow(),
            )
            session.commit()
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu
        engine.dispose()
    return (
        f"service: {seconds:.2f} s ({cpu:.2f} s CPU) on SQLite (read, cut, write "
        f"{summary.created} turfs and {len(addresses)} addresses in one transaction), "
        f"max/target {summary.max_over_target:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=50_000)
    parser.add_argument("--districts", type=int, default=40)
    parser.add_argument("--target", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-service", action="store_true", help="skip the end-to-end run")
    args = parser.parse_args()

    kommun = generated_kommun(households=args.households, districts=args.districts, seed=args.seed)
    n_addresses = sum(len(a.xy) for _, a in kommun)
    n_households = sum(int(a.households.sum()) for _, a in kommun)
    print(
        f"data: {len(kommun)} districts, {n_households:,} households at {n_addresses:,} "
        f"entrances (generated, seed {args.seed}); target {args.target}; "
        f"{os.cpu_count()} cores"
    )
    for method in METHODS:
        best, best_cpu = float("inf"), float("inf")
        for _ in range(max(1, args.repeat)):
            started, cpu = time.perf_counter(), time.process_time()
            cuts = cut_all(kommun, args.target, method)
            best = min(best, time.perf_counter() - started)
            best_cpu = min(best_cpu, time.process_time() - cpu)
        label = "cut:" if method == METHODS[0] else "alternative:"
        print(f"{label} {method} {best:.2f} s ({best_cpu:.2f} s CPU), {figures(cuts, args.target)}")
    if not args.no_service:
        print(bench_service(kommun, args.target))
    print("target: the cut under 2 s; max/target at most 1.3")


if __name__ == "__main__":
    main()
