#!/usr/bin/env python3
"""Benchmark: the member register import, and the new-member follow-up list.

On a throwaway PostgreSQL database, in the same run:

- the ceiling: a bare ``csv.DictReader`` parse of the register and one bulk INSERT of the
  same rows into ``member``;
- ``import_members`` (the service behind ``knacka import-members`` and ``POST
  /members/import``) of the same file into the emptied table: validation, förening lookup,
  volunteer linking, follow-ups and course offers;
- ``GET /members/followups?kommun_id=…`` through a live server (api.testing.LiveServer) as
  that kommun's lead, for a kommun whose members are all new: p50 and p99.

Usage: python scripts/bench_members.py [--members 100000] [--kommun-members 5000]
       [--requests 300] [--warmup 30]
Targets: import ratio ≤ 3×; follow-up list p99 < 50 ms.
"""

import argparse
import csv
import io
import sys
import tempfile
import time
from datetime import date, timedelta
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

KOMMUNER = 20
FORENINGAR_PER_KOMMUN = 5
LEAD_EMAIL = "bench-kommun-lead@example.org"
HEADER = ["member_number", "name", "phone", "email", "forening", "joined_on", "status"]


def setup_org(engine) -> dict:
    """A partidistrikt, its kommuner and föreningar, and the first kommun's lead."""
    from sqlmodel import Session

    from api.models import Forening, ForeningKind, Kommun, Partidistrikt, Role, UnitKind, User

    with Session(engine) as s:
        pd = Partidistrikt(code="23", name="Jämtlands län")
        s.add(pd)
        s.flush()
        foreningar: list[list[int]] = []
        kommun_ids = []
        for k in range(KOMMUNER):
            kommun = Kommun(code=f"{2300 + k:04d}", name=f"Kommun {k}", partidistrikt_id=pd.id)
            s.add(kommun)
            s.flush()
            kommun_ids.append(kommun.id)
            row = []
            for i in range(FORENINGAR_PER_KOMMUN):
                fo = Forening(
                    name=f"S-föreningen {k}-{i}", kind=ForeningKind.geographic, kommun_id=kommun.id
                )
                s.add(fo)
                s.flush()
                row.append(fo.id)
            foreningar.append(row)
        s.add(
            User(
                email=LEAD_EMAIL,
                display_name="Kommun lead",
                role=Role.kommun_lead,
                unit_kind=UnitKind.kommun,
                unit_id=kommun_ids[0],
            )
        )
        s.commit()
    return {"foreningar": foreningar, "kommun": kommun_ids[0]}


def register(n: int, in_first: int, foreningar: list[list[int]], today: date) -> str:
    """n members; the first kommun has ``in_first`` of them, all joined in the last months."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(HEADER)
    for i in range(n):
        if i < in_first:
            fo = foreningar[0][i % FORENINGAR_PER_KOMMUN]
            joined = today - timedelta(days=i % 300)
        else:
            fo = foreningar[1 + i % (KOMMUNER - 1)][i % FORENINGAR_PER_KOMMUN]
            joined = today - timedelta(days=400 + i % 5000)
        w.writerow(
            [
                f"{100000 + i}",
                f"Förnamn{i} Efternamn{i % 997}",
                f"070-{i:07d}",
                f"medlem{i}@example.org",
                fo,
                joined.isoformat(),
                "left" if i % 50 == 49 else "active",
            ]
        )
    return out.getvalue()


def bare_parse_and_insert(engine, text: str) -> float:
    """The ceiling: parse the CSV and COPY its rows as they are into ``member``."""
    from api.models import utcnow

    columns = [*HEADER[:4], "forening_id", "kommun_id", "joined_on", "status"]
    columns += ["do_not_call", "created_at", "updated_at"]
    raw = engine.raw_connection()
    try:
        started = time.perf_counter()
        with raw.cursor() as cursor:
            cursor.execute("SELECT id, kommun_id FROM forening")
            kommun_of = dict(cursor.fetchall())
            now = utcnow()
            names = ", ".join(columns)
            with cursor.copy(f"COPY member ({names}) FROM STDIN") as copy:
                for r in csv.DictReader(io.StringIO(text)):
                    forening = int(r["forening"])
                    copy.write_row(
                        (
                            r["member_number"],
                            r["name"],
                            r["phone"] or None,
                            r["email"] or None,
                            forening,
                            kommun_of[forening],
                            date.fromisoformat(r["joined_on"]),
                            r["status"],
                            False,
                            now,
                            now,
                        )
                    )
        raw.commit()
        elapsed = time.perf_counter() - started
        with raw.cursor() as cursor:
            cursor.execute("DELETE FROM member")
        raw.commit()
    finally:
        raw.close()
    return elapsed


def service_import(engine, text: str, today: date):
    from sqlmodel import Session

    from api.auth.scope import Scope
    from api.members.schemas import MemberImportOptions
    from api.members.service import import_members
    from api.settings import Settings

    started = time.perf_counter()
    with Session(engine) as s:
        summary = import_members(
            session=s,
            scope=Scope.operator(s),
            text=text,
            options=MemberImportOptions(),
            settings=Settings(_env_file=None),
            today=today,
        )
        s.commit()
    return time.perf_counter() - started, summary


def followup_latencies(url: str, kommun_id: int, warmup: int, n: int, tmp: Path) -> list[float]:
    import httpx

    token = issue_token(url, LEAD_EMAIL, device="bench")
    path = f"/members/followups?kommun_id={kommun_id}&limit=50"
    with LiveServer(url, tmp / "uvicorn.log", options=TUNED) as server:
        latencies = []
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http:
            for i in range(warmup + n):
                started = time.perf_counter()
                response = http.get(path)
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:300]}")
                if i >= warmup:
                    latencies.append(elapsed)
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--kommun-members", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    from api.contacts.rules import local_day
    from api.db import make_engine
    from api.migrate import upgrade
    from api.models import utcnow

    today = local_day(utcnow(), "Europe/Stockholm")
    with (
        throwaway_database(prefix="knacka_bench_members") as url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        upgrade(url)
        engine = make_engine(url)
        try:
            ids = setup_org(engine)
            text = register(
                args.members, min(args.kommun_members, args.members), ids["foreningar"], today
            )
            bare = bare_parse_and_insert(engine, text)
            took, summary = service_import(engine, text, today)
            print(
                f"import: {summary.rows} members in {took:.2f}s, {summary.rows / took:,.0f} "
                f"members/s ({summary.new_members} new); bare parse + insert {bare:.2f}s, "
                f"{summary.rows / bare:,.0f} rows/s; ratio {took / bare:.2f} (target ≤ 3)"
            )
            again, summary = service_import(engine, text, today)
            print(f"re-import: {summary.unchanged} unchanged in {again:.2f}s")
        finally:
            engine.dispose()
        latencies = followup_latencies(url, ids["kommun"], args.warmup, args.requests, Path(tmp))
        print(
            f"follow-up list: kommun of {args.kommun_members} new members, "
            f"{len(latencies)} requests, p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
            f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms (target < 50 ms)"
        )


if __name__ == "__main__":
    main()
