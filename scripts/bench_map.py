#!/usr/bin/env python3
"""Benchmark: the leads' map of one kommun, and the map page's own code.

Creates a fresh PostgreSQL database with the demo, makes Östersund 41 districts (eight of
its 33 split in two), gives their borders the vertices of real ones (densified every ~40 m
with a few metres of noise), and cuts each into turfs of about 60 households as rows (with
coverage snapshots, a fifth of them leased to a förening). Then it measures through a real
uvicorn server, with a district admin's token, the map's GeoJSON of the kommun with its
turfs and progress (``GET /map/districts.geojson?campaign=..&kommun=2380&turfs=true``):
its size gzipped and its latency (sequential requests, no validator sent, so every one is
computed in full; the first ones warm the geometry cache, as the first lead of the day
would). Finally the page's own JS and CSS (not Leaflet), gzipped as the server sends them.

Prints ``geojson:`` (KB gzipped, p50 and p99 ms) and ``assets:`` (KB gzipped).

Usage: python scripts/bench_map.py [--requests 200] [--zoom 11]
"""

import argparse
import gzip
import math
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import shapely  # noqa: E402
from shapely.geometry import box  # noqa: E402

from api.testing import (  # noqa: E402  (the repository is on the path)
    TUNED,
    LiveServer,
    issue_token,
    load_demo_database,
    percentile,
    throwaway_database,
)

KOMMUN = "2380"
DISTRICTS = 41
HOUSEHOLDS_PER_TURF = 60
GEOJSON_LIMIT_KB, P99_LIMIT_MS, ASSETS_LIMIT_KB = 300, 100, 100
ADMIN = "distrikt@example.org"


def _rough(geom, rng: random.Random, step_deg: float = 0.0006, noise_deg: float = 0.00004):
    """``geom`` (polygonal) with a vertex every ``step_deg`` along its borders, each moved by
    up to ``noise_deg``: the vertex count of a surveyed border."""
    parts = []
    for poly in shapely.get_parts(geom):
        if poly.geom_type != "Polygon" or poly.is_empty:
            continue
        dense = shapely.segmentize(poly, step_deg)
        coords = [
            (x + rng.uniform(-noise_deg, noise_deg), y + rng.uniform(-noise_deg, noise_deg))
            for x, y in dense.exterior.coords[:-1]
        ]
        rough = shapely.make_valid(shapely.Polygon(coords))
        pieces = [g for g in shapely.get_parts(rough) if g.geom_type == "Polygon"]
        parts.append(max(pieces, key=lambda g: g.area) if pieces else poly)
    if not parts:
        return geom
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def _bbox(geom) -> dict[str, float]:
    x0, y0, x1, y1 = geom.bounds
    return {"min_lon": x0, "min_lat": y0, "max_lon": x1, "max_lat": y1}


def prepare(url: str, seed: int = 1) -> tuple[int, int, int]:
    """Östersund at 41 rough districts with turfs; (campaign id, districts, turfs)."""
    from sqlmodel import Session, col, select

    from api.db import make_engine
    from api.models import (
        Campaign,
        District,
        Forening,
        Kommun,
        Target,
        Turf,
        TurfLease,
        TurfStat,
        UnitKind,
        utcnow,
    )

    rng = random.Random(seed)
    engine = make_engine(url)
    with Session(engine) as session:
        kommun = session.exec(select(Kommun).where(Kommun.code == KOMMUN)).one()
        districts = list(
            session.exec(
                select(District).where(District.kommun_id == kommun.id).order_by(District.code)
            )
        )
        # Split the largest until there are 41.
        by_area = sorted(districts, key=lambda d: -d.area_m2)
        serial = 900
        for d in by_area[: max(0, DISTRICTS - len(districts))]:
            poly = shapely.from_wkb(d.geom_wkb)
            x0, y0, x1, y1 = poly.bounds
            mid = (x0 + x1) / 2
            left, right = (
                poly.intersection(box(x0, y0, mid, y1)),
                poly.intersection(box(mid, y0, x1, y1)),
            )
            d.geom_wkb = shapely.to_wkb(left)
            d.area_m2 /= 2
            d.households = (d.households or 1500) // 2
            d.voters = (d.voters or 2500) // 2
            d.__dict__.update(_bbox(left))
            serial += 1
            twin = District(
                code=f"{KOMMUN}{serial:04d}",
                name=f"{d.name} öst",
                kommun_id=d.kommun_id,
                forening_id=d.forening_id,
                geom_wkb=shapely.to_wkb(right),
                area_m2=d.area_m2,
                voters=d.voters,
                households=d.households,
                **_bbox(right),
            )
            session.add_all([d, twin])
            districts.append(twin)
        session.flush()
        campaign = session.exec(select(Campaign)).first()
        forening_ids = list(
            session.exec(select(Forening.id).where(Forening.kommun_id == kommun.id))
        )
        now = utcnow()
        # The demo cut its town districts into turfs from their addresses: those stand as
        # they are (and count); the other districts get generated turfs.
        cut = set(session.exec(select(Turf.district_id).where(col(Turf.retired_at).is_(None))))
        turfs = len(session.exec(select(Turf.id).where(col(Turf.district_id).in_(cut))).all())
        for d in districts:
            rough = _rough(shapely.from_wkb(d.geom_wkb), rng)
            d.geom_wkb = shapely.to_wkb(rough)
            d.__dict__.update(_bbox(rough))
            d.updated_at = now
            session.add(d)
            session.add(
                Target(
                    campaign_id=campaign.id,
                    unit_kind=UnitKind.district,
                    unit_id=d.id,
                    metric="conversations",
                    value=max(50, (d.voters or 2000) // 4),
                )
            )
            if d.id in cut:
                continue
            households = d.households or 1500
            n = max(1, households // HOUSEHOLDS_PER_TURF)
            cols = math.ceil(math.sqrt(n))
            rows = math.ceil(n / cols)
            x0, y0, x1, y1 = rough.bounds
            dx, dy = (x1 - x0) / cols, (y1 - y0) / rows
            k = 0
            for i in range(cols):
                for j in range(rows):
                    cell = rough.intersection(
                        _rough(
                            box(x0 + i * dx, y0 + j * dy, x0 + (i + 1) * dx, y0 + (j + 1) * dy), rng
                        )
                    )
                    if cell.is_empty or cell.area == 0:
                        continue
                    k += 1
                    turf = Turf(
                        code=f"{d.code}-{k}",
                        district_id=d.id,
                        kommun_id=d.kommun_id,
                        households=HOUSEHOLDS_PER_TURF,
                        address_count=rng.randint(8, 40),
                        walk_length_m=rng.uniform(400, 3000),
                        geom_wkb=shapely.to_wkb(cell),
                        link_code=uuid.uuid4().hex[:12],
                        **_bbox(cell),
                    )
                    session.add(turf)
                    session.flush()
                    knocked = rng.randint(0, HOUSEHOLDS_PER_TURF)
                    session.add(
                        TurfStat(
                            turf_id=turf.id,
                            doors_knocked=knocked // 3,
                            households_knocked=knocked,
                            answered=knocked // 5,
                            conversations=knocked // 6,
                        )
                    )
                    if rng.random() < 0.2 and forening_ids:
                        session.add(
                            TurfLease(
                                turf_id=turf.id,
                                forening_id=rng.choice(forening_ids),
                                expires_at=now.replace(year=now.year + 1),
                            )
                        )
                    turfs += 1
        session.commit()
        result = (campaign.id, len(districts), turfs)
    engine.dispose()
    return result


def own_assets_kb() -> float:
    """The page's own JS and CSS (not the vendored library, nor the walk list's style sheet
    that is served beside them), gzipped as the server sends."""
    static = ROOT / "api" / "map" / "static"
    files = [p for p in static.glob("karta*") if p.is_file() and p.suffix in (".js", ".css")]
    return sum(len(gzip.compress(p.read_bytes(), compresslevel=6, mtime=0)) for p in files) / 1024


def bench(args: argparse.Namespace, url: str, tmp: Path) -> None:
    started = time.perf_counter()
    load_demo_database(url)
    campaign_id, n_districts, n_turfs = prepare(url)
    print(
        f"data: {n_districts} districts, {n_turfs} turfs in {KOMMUN} "
        f"({time.perf_counter() - started:.0f} s)"
    )
    token = issue_token(url, ADMIN)
    path = (
        f"/map/districts.geojson?campaign={campaign_id}&kommun={KOMMUN}&zoom={args.zoom}&turfs=true"
    )
    with (
        LiveServer(url, tmp / "uvicorn.log", options=TUNED) as server,
        httpx.Client(
            base_url=server.base_url,
            headers={"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"},
            timeout=60,
        ) as client,
    ):
        first = client.get(path)
        first.raise_for_status()
        assert first.headers.get("content-encoding") == "gzip", first.headers
        size_kb = first.num_bytes_downloaded / 1024
        raw_kb = len(first.content) / 1024
        features = first.json()["features"]
        drawn = sum(1 for f in features if f["properties"]["layer"] == "district")
        for _ in range(args.warmup):
            client.get(path).raise_for_status()
        times = []
        for _ in range(args.requests):
            t0 = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - t0) * 1000)
            response.raise_for_status()
        etag = first.headers["etag"]
        revalidate = []
        for _ in range(min(args.requests, 50)):
            t0 = time.perf_counter()
            response = client.get(path, headers={"If-None-Match": etag})
            revalidate.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 304, response.status_code
    p50, p99 = percentile(times, 0.5), percentile(times, 0.99)
    print(
        f"geojson: {size_kb:.1f} KB gzipped ({raw_kb:.0f} KB raw; limit {GEOJSON_LIMIT_KB}), "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (limit {P99_LIMIT_MS}) over {len(times)} requests; "
        f"{drawn} districts and {len(features) - drawn} turfs at zoom {args.zoom}; "
        f"304 revalidation p99 {percentile(revalidate, 0.99):.1f} ms"
    )
    assets = own_assets_kb()
    print(f"assets: {assets:.1f} KB gzipped (the page's own JS and CSS; limit {ASSETS_LIMIT_KB})")
    verdict = size_kb < GEOJSON_LIMIT_KB and p99 < P99_LIMIT_MS and assets < ASSETS_LIMIT_KB
    print(f"within limits: {'yes' if verdict else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--zoom", type=int, default=11, help="a kommun fills the screen at 10-11")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        throwaway_database(prefix="knacka_bench_map", keep=args.keep) as url,
    ):
        bench(args, url, Path(tmp))


if __name__ == "__main__":
    main()
