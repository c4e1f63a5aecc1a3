#!/usr/bin/env python3
"""Benchmark: the printable walk list of one turf through a real server on PostgreSQL.

Creates a fresh PostgreSQL database, migrates it, stores one district with a turf of
``--households`` addresses (one household each, some already answered) and a volunteer, starts
uvicorn (api.testing.LiveServer) and requests ``GET /turfs/{code}/walklist`` ``--requests``
times in sequence over one keep-alive connection, after ``--warmup`` requests. Prints
``walk list: p50 X ms p99 Y ms`` (the target is under 50 ms for 60 households).

Usage: python scripts/bench_walklist.py [--households 60] [--requests 300]
"""

import argparse
import http.client
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.testing import (  # noqa: E402  (the repository is on the path)
    TUNED,
    LiveServer,
    issue_token,
    percentile,
    throwaway_database,
)

LON, LAT = 14.60, 63.17
EMAIL = "volontar@bench.invalid"


def _populate(url: str, households: int) -> str:
    """One kommun, förening, district and turf of ``households`` addresses; the turf's code."""
    import shapely
    from shapely.geometry import box
    from sqlmodel import Session

    from api.db import make_engine
    from api.models import (
        Address,
        District,
        Forening,
        Kommun,
        Partidistrikt,
        Role,
        Turf,
        TurfAddress,
        UnitKind,
        User,
        Visit,
    )

    engine = make_engine(url)
    poly = box(LON, LAT, LON + 0.01, LAT + 0.01)
    wkb = shapely.to_wkb(poly)
    with Session(engine) as s:
        pd = Partidistrikt(code="23", name="Jämtlands län")
        s.add(pd)
        s.flush()
        k = Kommun(code="2380", name="Östersund", partidistrikt_id=pd.id)
        s.add(k)
        s.flush()
        fo = Forening(name="S-föreningen Frösön", kind="geographic", kommun_id=k.id)
        s.add(fo)
        s.flush()
        d = District(
            code="23800001", name="Frösön norra", kommun_id=k.id, forening_id=fo.id,
            geom_wkb=wkb, min_lon=LON, min_lat=LAT, max_lon=LON + 0.01, max_lat=LAT + 0.01,
            area_m2=500_000.0,
        )  # fmt: skip
        s.add(d)
        s.flush()
        homes = [
            Address(
                key=f"bench-{i}",
                district_id=d.id,
                kommun_id=k.id,
                street="Bänkvägen",
                number=str(i + 1),
                postcode="83200",
                postort="Frösön",
                lon=LON + 0.0001 * (i % 90),
                lat=LAT + 0.0001 * (i // 90 + i % 7),
                households=1,
            )  # fmt: skip
            for i in range(households)
        ]
        s.add_all(homes)
        s.flush()
        turf = Turf(
            code="23800001-1", district_id=d.id, kommun_id=k.id, households=households,
            address_count=households, walk_length_m=10.0 * households, geom_wkb=wkb,
            min_lon=LON, min_lat=LAT, max_lon=LON + 0.01, max_lat=LAT + 0.01, link_code="bench1",
        )  # fmt: skip
        s.add(turf)
        s.flush()
        s.add_all(
            TurfAddress(turf_id=turf.id, address_id=a.id, position=i + 1)
            for i, a in enumerate(homes)
        )
        day = datetime.now(UTC).date()
        s.add_all(
            Visit(
                client_uuid=uuid.uuid4(),
                address_id=a.id,
                turf_id=turf.id,
                status="answered",
                day=day,
            )  # fmt: skip
            for a in homes[::3]
        )
        s.add(
            User(
                email=EMAIL,
                display_name="Volontär",
                role=Role.volunteer,
                unit_kind=UnitKind.forening,
                unit_id=fo.id,
            )  # fmt: skip
        )
        s.commit()
        code = turf.code
    engine.dispose()
    return code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=60)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    from api.migrate import upgrade

    with throwaway_database(prefix="knacka_bench") as url, tempfile.TemporaryDirectory() as tmp:
        upgrade(url)
        code = _populate(url, args.households)
        token = issue_token(url, EMAIL)
        server = LiveServer(url, Path(tmp) / "server.log", options=TUNED)
        server.start()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            headers = {"Authorization": f"Bearer {token}"}
            timings = []
            size = 0
            for i in range(args.warmup + args.requests):
                started = time.perf_counter()
                conn.request("GET", f"/turfs/{code}/walklist", headers=headers)
                response = conn.getresponse()
                body = response.read()
                elapsed = (time.perf_counter() - started) * 1000
                if response.status != 200:
                    raise SystemExit(f"walk list answered {response.status}: {body[:500]!r}")
                if i >= args.warmup:
                    timings.append(elapsed)
                size = len(body)
            conn.close()
        finally:
            server.stop()
    print(f"{args.households} households, {args.requests} requests, {size / 1024:.1f} KiB a page")
    print(
        f"walk list: p50 {percentile(timings, 0.5):.1f} ms p99 {percentile(timings, 0.99):.1f} ms"
    )


if __name__ == "__main__":
    main()
