#!/usr/bin/env python3
"""Benchmark: the nightly snapshots and the progress endpoint on PostgreSQL at scale.

Creates a fresh PostgreSQL database, migrates it and generates, server-side, one
partidistrikt with 60 kommuner of 100 districts (6,000), 6 föreningar per kommun, 3,000
volunteers and ``--contacts`` contact logs (default 5,000,000) over 120 days: each volunteer
logs 10-40 contacts per working session in one or two districts of their förening, more as
election day nears. Then it measures in the same run:

1. a full rebuild of the snapshots (``rebuild_days(session, None)`` in one transaction,
   committed) against a raw ``GROUP BY district_id, day`` over the same table, fetched
   completely by psycopg;
2. the nightly job: its first run (no watermark yet: a full rebuild replacing the
   snapshots), then, after ``--new-records`` new logs (today's, some of yesterday's synced
   late, a few backdated), the next night's incremental run end to end and its rebuild part;
3. ``GET /campaigns/{id}/progress/kommun/{code}`` for one kommun through a real uvicorn server
   (sequential requests with httpx, a district admin's bearer token), and the same service
   call in-process, in the daytime state: snapshots through yesterday plus today's live logs.

The time of every SQL statement of the rebuilds and of one progress call is printed too;
``--explain`` adds EXPLAIN (ANALYZE, BUFFERS) of each of them (replayed in transactions that
are rolled back, after the measurements).

Usage: python scripts/bench_aggregate.py [--contacts 5000000] [--requests 300] [--explain]
"""

import argparse
import contextlib
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.testing import (  # noqa: E402  (the repository is on the path)
    TUNED,
    LiveServer,
    issue_token,
    percentile,
    throwaway_database,
)

KOMMUNER = 60
PER_KOMMUN = 100  # districts per kommun: 6,000 in all
GEOGRAPHIC_PER_KOMMUN = 5  # s-föreningar holding 20 districts each, plus one workplace club
VOLUNTEERS = 3000
DAYS = 120
ADMIN_EMAIL = "admin@bench.invalid"
RAW_GROUP_BY = (
    "SELECT district_id, day, count(*), sum(conversations) FROM contact_log "
    "WHERE withdrawn_at IS NULL GROUP BY district_id, day"
)

# -- data generation ------------------------------------------------------------------------

# One row per working session: a volunteer, a day, one or two districts of their förening
# (workplace clubs: of their kommun), a kind, a start time and 10-40 contacts. Sessions are
# drawn in random order and cut at exactly %(n)s contacts, then numbered in time order so
# that the logs are stored in the order they would have arrived.
_SESSIONS = """
CREATE TEMP TABLE bench_session ON COMMIT DROP AS
WITH drawn AS (
    SELECT g, 10 + floor(random() * 31)::int AS n, random() AS r_user, random() AS r_day,
           random() AS r_dist, random() AS r_two, random() AS r_split, random() AS r_kind,
           random() AS r_start, random() AS r_back
    FROM generate_series(1, %(max_sessions)s) AS g
), counted AS (
    SELECT *, sum(n) OVER (ORDER BY g) - n AS before FROM drawn
), kept AS (
    SELECT c.*, least(c.n, %(n)s - c.before)::int AS m, {day} AS day
    FROM counted c WHERE c.before < %(n)s
), placed AS (
    SELECT k.*, v.user_id, v.forening_id, v.kommun_id, v.dist_lo, v.dist_n,
           floor(k.r_dist * v.dist_n)::int AS d,
           (k.day + time '10:00' + k.r_start * interval '9 hours')
               AT TIME ZONE 'Europe/Stockholm' AS start_at
    FROM kept k JOIN bench_volunteer v ON v.idx = floor(k.r_user * %(volunteers)s)::int
)
SELECT %(id_base)s + sum(m) OVER w - m AS first_i, m, day, start_at, user_id, forening_id,
       kommun_id, dist_lo + d AS d1,
       CASE WHEN r_two < 0.5 THEN dist_lo + d ELSE dist_lo + (d + 1) %% dist_n END AS d2,
       CASE WHEN r_two < 0.5 THEN m ELSE 1 + floor(r_split * m)::int END AS split,
       CASE WHEN r_kind < 0.85 THEN 'door' WHEN r_kind < 0.92 THEN 'phone'
            WHEN r_kind < 0.97 THEN 'stall' ELSE 'workplace' END AS kind
FROM placed
WINDOW w AS (ORDER BY day, start_at, g)
ORDER BY day, start_at, g
"""

# One row per contact of each session, a few minutes apart. Volatile random() in the inner
# select list keeps that subquery from being flattened, so each draw is made once per row.
_CONTACTS = """
INSERT INTO contact_log
    (client_uuid, body_hash, user_id, district_id, kommun_id, forening_id, kind, outcome,
     quantity, conversations, new_member, occurred_at, day, received_at, changed_at,
     withdrawn_at, withdrawn_by_user_id)
SELECT md5(i::text)::uuid, md5('body:' || i), user_id, district_id, kommun_id, forening_id,
       kind, outcome, quantity, CASE WHEN outcome = 'conversation' THEN quantity ELSE 0 END,
       outcome = 'conversation' AND r_nm < 0.01, occurred_at, day, received_at,
       CASE WHEN r_wd < 0.003 THEN received_at + interval '10 minutes' ELSE received_at END,
       CASE WHEN r_wd < 0.003 THEN received_at + interval '10 minutes' END,
       CASE WHEN r_wd < 0.003 THEN user_id END
FROM (
    SELECT *, {received} AS received_at
    FROM (
        SELECT *,
            CASE WHEN k <= split THEN d1 ELSE d2 END AS district_id,
            CASE kind
                WHEN 'door' THEN CASE WHEN r_out < 0.30 THEN 'conversation'
                    WHEN r_out < 0.80 THEN 'not_home' WHEN r_out < 0.92 THEN 'refused'
                    WHEN r_out < 0.98 THEN 'no_access' ELSE 'moved' END
                WHEN 'phone' THEN CASE WHEN r_out < 0.40 THEN 'conversation'
                    WHEN r_out < 0.75 THEN 'not_home' WHEN r_out < 0.90 THEN 'refused'
                    ELSE 'wrong_number' END
                ELSE CASE WHEN r_out < 0.85 THEN 'conversation' ELSE 'refused' END
            END AS outcome,
            CASE WHEN kind = 'stall' THEN 1 + floor(r_q * 3)::int ELSE 1 END AS quantity,
            start_at + (k - 1) * interval '3 minutes' + r_gap * interval '150 seconds'
                AS occurred_at
        FROM (
            SELECT s.*, s.first_i + k AS i, k, random() AS r_out, random() AS r_q,
                   random() AS r_nm, random() AS r_wd, random() AS r_recv, random() AS r_gap
            FROM bench_session s CROSS JOIN LATERAL generate_series(1, s.m) AS k
        ) drawn
    ) placed
) timed
"""

# Logs synced within half an hour of the contact.
_RECEIVED_SOON = "occurred_at + (30 + r_recv * 1800) * interval '1 second'"


def _local(day: date, at: clock, tz: str) -> datetime:
    return datetime.combine(day, at, tzinfo=ZoneInfo(tz)).astimezone(UTC)


def load_org(conn, now: datetime) -> dict:
    """Partidistrikt, kommuner, föreningar, districts (tiny squares), volunteers and a
    district admin; returns the ids the benchmark needs."""
    from shapely.geometry import box

    pd_id = conn.execute(
        "INSERT INTO partidistrikt (code, name, created_at) "
        "VALUES ('99', 'Bänkdistriktet', %s) RETURNING id",
        (now,),
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO kommun (code, name, partidistrikt_id, created_at) "
        "SELECT (1000 + g)::text, 'Kommun ' || (1000 + g), %s, %s "
        "FROM generate_series(0, %s - 1) AS g ORDER BY g",
        (pd_id, now, KOMMUNER),
    )
    conn.execute(
        """
        INSERT INTO forening (name, kind, kommun_id, created_at)
        SELECT CASE WHEN j < %(geo)s THEN 'S-föreningen ' || k.code || '-' || (j + 1)
                    ELSE 'Arbetsplatsklubben ' || k.code END,
               CASE WHEN j < %(geo)s THEN 'geographic' ELSE 'workplace' END, k.id, %(now)s
        FROM kommun k CROSS JOIN generate_series(0, %(geo)s) AS j ORDER BY k.code, j
        """,
        {"geo": GEOGRAPHIC_PER_KOMMUN, "now": now},
    )
    kommuner = conn.execute("SELECT id, code FROM kommun ORDER BY code").fetchall()
    geographic: dict[int, list[int]] = {}
    for fid, kid in conn.execute(
        "SELECT id, kommun_id FROM forening WHERE kind = 'geographic' ORDER BY id"
    ):
        geographic.setdefault(kid, []).append(fid)
    per_forening = PER_KOMMUN // GEOGRAPHIC_PER_KOMMUN
    side = 0.005  # degrees: about 280 m x 560 m this far north
    columns = (
        "code, name, kommun_id, forening_id, geom_wkb, min_lon, min_lat, max_lon, max_lat, "
        "area_m2, voters, households, created_at, updated_at"
    )
    with conn.cursor().copy(f"COPY district ({columns}) FROM STDIN") as copy:
        for ki, (kid, code) in enumerate(kommuner):
            for j in range(PER_KOMMUN):
                lon = 12.0 + (ki % 10) * 0.6 + (j % 10) * side
                lat = 58.0 + (ki // 10) * 0.6 + (j // 10) * side
                voters = 600 + (ki * 37 + j * 53) % 1900
                copy.write_row(
                    (
                        f"{code}{j + 1:04d}",
                        f"Valdistrikt {code}-{j + 1}",
                        kid,
                        geographic[kid][j // per_forening],
                        box(lon, lat, lon + side, lat + side).wkb,
                        lon,
                        lat,
                        lon + side,
                        lat + side,
                        155_000.0,
                        voters,
                        voters // 2,
                        now,
                        now,
                    )
                )
    # Volunteers: 50 per kommun, 45 in its geographic föreningar and 5 in its workplace club.
    per_kommun = VOLUNTEERS // KOMMUNER
    conn.execute(
        """
        INSERT INTO app_user (email, display_name, role, unit_kind, unit_id, created_at,
                              is_active, nightly_email)
        SELECT 'volontar' || (k.rn * %(per)s + g) || '@bench.invalid',
               'Volontär ' || (k.rn * %(per)s + g), 'volunteer', 'forening', f.id, %(now)s,
               true, true
        FROM (SELECT id, row_number() OVER (ORDER BY code) - 1 AS rn FROM kommun) k
        CROSS JOIN generate_series(0, %(per)s - 1) AS g
        JOIN LATERAL (
            SELECT id FROM forening WHERE kommun_id = k.id
            ORDER BY kind = 'workplace', id
            OFFSET CASE WHEN g < %(per)s * 9 / 10 THEN g %% %(geo)s ELSE %(geo)s END LIMIT 1
        ) f ON true
        ORDER BY k.rn, g
        """,
        {"per": per_kommun, "geo": GEOGRAPHIC_PER_KOMMUN, "now": now},
    )
    admin_id = conn.execute(
        "INSERT INTO app_user (email, display_name, role, unit_kind, unit_id, created_at, "
        "is_active, nightly_email) VALUES (%s, 'Distriktsadmin', 'district_admin', "
        "'partidistrikt', %s, %s, true, true) RETURNING id",
        (ADMIN_EMAIL, pd_id, now),
    ).fetchone()[0]
    map_volunteers(conn)
    return {"partidistrikt": pd_id, "admin": admin_id, "kommuner": [k[0] for k in kommuner]}


def map_volunteers(conn) -> None:
    """Where each volunteer canvasses (table bench_volunteer, which ``generate_contacts``
    draws from): the district id range of their förening (geographic föreningar hold
    consecutive ids) or of their kommun (workplace clubs)."""
    conn.execute(
        """
        CREATE UNLOGGED TABLE bench_volunteer AS
        SELECT (row_number() OVER (ORDER BY u.id) - 1)::int AS idx, u.id AS user_id,
               f.id AS forening_id, f.kommun_id,
               coalesce(fd.lo, kd.lo) AS dist_lo, coalesce(fd.n, kd.n)::int AS dist_n
        FROM app_user u
        JOIN forening f ON f.id = u.unit_id
        JOIN (SELECT kommun_id, min(id) AS lo, count(*) AS n FROM district
              GROUP BY kommun_id) kd ON kd.kommun_id = f.kommun_id
        LEFT JOIN (SELECT forening_id, min(id) AS lo, count(*) AS n FROM district
                   GROUP BY forening_id) fd ON fd.forening_id = f.id
        WHERE u.role = 'volunteer'
        """
    )
    gaps = conn.execute(
        "SELECT count(*) FROM (SELECT forening_id FROM district GROUP BY forening_id "
        "HAVING max(id) - min(id) + 1 <> count(*)) x"
    ).fetchone()[0]
    if gaps:
        raise RuntimeError("the föreningar's district ids are not consecutive")


def load_campaign(conn, pd_id: int, starts: date, ends: date, contacts: int, now) -> int:
    """The campaign and its targets: partidistrikt, every kommun and förening (evenly), and
    conversations per district by voters."""
    campaign_id = conn.execute(
        "INSERT INTO campaign (name, partidistrikt_id, starts_on, ends_on, created_at, "
        "pace_curve, pace_final_weeks, pace_final_weight) "
        "VALUES ('Valåret (benchmark)', %s, %s, %s, %s, 'final_weeks', 6, 2.0) RETURNING id",
        (pd_id, starts, ends, now),
    ).fetchone()[0]
    # Roughly what the generated logs reach by election day.
    total_days = (ends - starts).days + 1
    scale = 1.3 * total_days / DAYS
    targets = {
        "conversations": round(contacts * 0.33 * scale),
        "doors": round(contacts * 0.85 * scale),
        "new_members": round(contacts * 0.003 * scale),
        "active_volunteers": VOLUNTEERS,
    }
    for metric, value in targets.items():
        conn.execute(
            """
            INSERT INTO target (campaign_id, unit_kind, unit_id, metric, value, basis, updated_at)
            SELECT %(c)s, 'partidistrikt', %(pd)s, %(m)s, %(v)s, 'direct', %(now)s
            UNION ALL
            SELECT %(c)s, 'kommun', id, %(m)s, %(v)s / %(nk)s, 'even', %(now)s FROM kommun
            UNION ALL
            SELECT %(c)s, 'forening', id, %(m)s, %(v)s / %(nf)s, 'even', %(now)s
            FROM forening
            """,
            {
                "c": campaign_id,
                "pd": pd_id,
                "m": metric,
                "v": value,
                "now": now,
                "nk": KOMMUNER,
                "nf": KOMMUNER * (GEOGRAPHIC_PER_KOMMUN + 1),
            },
        )
    conn.execute(
        """
        INSERT INTO target (campaign_id, unit_kind, unit_id, metric, value, basis, updated_at)
        SELECT %(c)s, 'district', d.id, 'conversations',
               round(%(v)s::numeric * d.voters / t.voters), 'voters', %(now)s
        FROM district d CROSS JOIN (SELECT sum(voters) AS voters FROM district) t
        """,
        {"c": campaign_id, "v": targets["conversations"], "now": now},
    )
    return campaign_id


def generate_contacts(
    conn,
    n: int,
    *,
    day_sql: str,
    received_sql: str,
    id_base: int,
    params: dict,
) -> None:
    """Insert ``n`` contact logs in sessions, in the connection's transaction."""
    volunteers = conn.execute("SELECT count(*) FROM bench_volunteer").fetchone()[0]
    conn.execute(
        _SESSIONS.format(day=day_sql),
        {
            "max_sessions": n // 10 + 1,
            "n": n,
            "volunteers": volunteers,
            "id_base": id_base,
            **params,
        },
    )
    conn.execute(_CONTACTS.format(received=received_sql), params)
    conn.execute("DROP TABLE bench_session")


def _tally_backfill() -> str:
    """The SQL with which migration 0011 sums log_tally from the logs already there."""
    import importlib.util

    path = ROOT / "api" / "migrations" / "versions" / "0011_log_tally.py"
    spec = importlib.util.spec_from_file_location("log_tally_migration", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    return migration.BACKFILL


def load_contacts(dsn: str, n: int, first_day: date) -> None:
    """The bulk of the logs, with the secondary indexes built afterwards and the foreign
    keys (consistent by construction) not checked row by row."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
            "AND tablename = 'contact_log' AND indexname NOT IN "
            "(SELECT conname FROM pg_constraint WHERE conrelid = 'contact_log'::regclass)"
        ).fetchall()
        uniques = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'contact_log'::regclass AND contype = 'u'"
        ).fetchall()
        with conn.transaction():
            for name, _ in uniques:
                conn.execute(f'ALTER TABLE contact_log DROP CONSTRAINT "{name}"')
            for name, _ in indexes:
                conn.execute(f'DROP INDEX "{name}"')
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute("SELECT setseed(0.42)")
            day_sql = f"%(first_day)s::date + floor(sqrt(r_day) * {DAYS})::int"
            generate_contacts(
                conn,
                n,
                day_sql=day_sql,
                received_sql=_RECEIVED_SOON,
                id_base=0,
                params={"first_day": first_day},
            )
        for name, definition in uniques:
            conn.execute(f'ALTER TABLE contact_log ADD CONSTRAINT "{name}" {definition}')
        for _, definition in indexes:
            conn.execute(definition)
        # The replica role skipped contact_log's triggers too, which keep log_tally: it is
        # summed here as the migration that made it sums existing logs.
        with conn.transaction():
            conn.execute("DELETE FROM log_tally")
            conn.execute(_tally_backfill())
        conn.execute("VACUUM ANALYZE")


def add_new_records(dsn: str, n: int, today: date, tz: str) -> dict:
    """A day's new logs before the next night: mostly today's, ~15 % of yesterday's synced
    this morning, a few sessions backdated by 2-13 days; received (= changed) today."""
    import psycopg

    day_sql = (
        "CASE WHEN r_back < 0.004 THEN %(today)s::date - 2 - floor(r_day * 12)::int "
        "WHEN r_back < 0.15 THEN %(today)s::date - 1 ELSE %(today)s::date END"
    )
    received_sql = (
        f"greatest({_RECEIVED_SOON}, %(morning)s::timestamptz + r_recv * interval '3 hours')"
    )
    with psycopg.connect(dsn) as conn:
        id_base = conn.execute("SELECT count(*) FROM contact_log").fetchone()[0]
        conn.execute("SELECT setseed(0.43)")
        started = conn.execute("SELECT max(id) FROM contact_log").fetchone()[0]
        generate_contacts(
            conn,
            n,
            day_sql=day_sql,
            received_sql=received_sql,
            id_base=id_base,
            params={"today": today, "morning": _local(today, clock(7, 0), tz)},
        )
        counts = conn.execute(
            "SELECT count(*) FILTER (WHERE day = %(t)s), count(*) FILTER (WHERE day = %(t)s - 1),"
            " count(*) FILTER (WHERE day < %(t)s - 1),"
            " count(DISTINCT day) FILTER (WHERE day < %(t)s - 1) "
            "FROM contact_log WHERE id > %(s)s",
            {"t": today, "s": started},
        ).fetchone()
    return dict(zip(("today", "yesterday", "backdated", "backdated_days"), counts, strict=True))


# -- measuring ------------------------------------------------------------------------------


class StatementLog:
    """Every SQL statement an engine runs while recording, with its parameters and time
    (psycopg's default cursor fetches the whole result inside execute)."""

    def __init__(self, engine) -> None:
        from sqlalchemy import event

        self.entries: list[tuple[str, object, float]] | None = None
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def _after(self, conn, cursor, statement, parameters, context, executemany) -> None:
        elapsed = time.perf_counter() - conn.info["bench_started"].pop()
        if self.entries is not None:
            self.entries.append((statement, parameters, elapsed))

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[tuple[str, object, float]]]:
        self.entries = entries = []
        try:
            yield entries
        finally:
            self.entries = None


def _label(statement: str) -> str:
    text = " ".join(statement.split())
    text = re.sub(r"IN \((?:%\(\w+\)s(?:, )?)+\)", lambda m: f"IN ({m[0].count('%')} days)", text)
    kind = re.search(r"SELECT day, '(\w+)'", text)
    where = re.search(r" WHERE (.*?) GROUP BY", text)
    if text.startswith("INSERT INTO daily_stat") and kind and where:
        return f"INSERT INTO daily_stat ({kind[1]}) ... FROM daily_grain WHERE {where[1]}"
    if text.startswith("INSERT INTO daily_grain") and where:
        return f"INSERT INTO daily_grain ... FROM contact_log WHERE {where[1]}"
    return text if len(text) <= 110 else text[:107] + "..."


def _print_statements(entries: list[tuple[str, object, float]], min_ms: float = 0.0) -> None:
    shown = [e for e in entries if e[2] * 1000 >= min_ms]
    for statement, _, elapsed in shown:
        print(f"      {elapsed * 1000:9.1f} ms  {_label(statement)}")
    if len(shown) < len(entries):
        rest = sum(e[2] for e in entries if e not in shown)
        print(
            f"      {rest * 1000:9.1f} ms  ({len(entries) - len(shown)} statements < {min_ms} ms)"
        )


_EXPLAINABLE = {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"}


def _explain(engine, entries: list[tuple[str, object, float]], title: str) -> None:
    """Replay statements with EXPLAIN (ANALYZE, BUFFERS) in one transaction, rolled back."""
    print(f"\n=== EXPLAIN (ANALYZE, BUFFERS): {title} ===")
    with engine.connect() as conn:
        tx = conn.begin()
        try:
            for statement, parameters, _ in entries:
                words = statement.split(None, 2)
                if words[0].upper() in _EXPLAINABLE or (
                    words[0].upper() == "CREATE" and " AS\n" in statement
                ):
                    plan = conn.exec_driver_sql(
                        "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters or {}
                    ).scalars()
                    print(f"--- {_label(statement)}")
                    print("\n".join(plan))
                else:  # SET, TRUNCATE, DROP, ALTER: run as they were, for what follows
                    conn.exec_driver_sql(statement, parameters or {})
                    print(f"--- {_label(statement)} (run, nothing to explain)")
        finally:
            tx.rollback()


def _timed(fn: Callable, spent: list[float]) -> Callable:
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    return wrapper


def raw_group_by(dsn: str) -> tuple[float, int]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        rows = conn.execute(RAW_GROUP_BY).fetchall()
        return time.perf_counter() - started, len(rows)


def _counts(dsn: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("contact_log", "daily_grain", "daily_stat")
        }


# -- the progress endpoint ------------------------------------------------------------------


def endpoint_latencies(url: str, path: str, token: str, warmup: int, n: int, tmp: Path):
    """Sequential GETs of ``path`` through uvicorn: the timed latencies and the last body."""
    import httpx

    with LiveServer(url, tmp / "uvicorn.log", options=TUNED) as server:
        headers = {"Authorization": f"Bearer {token}"}
        latencies = []
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http:
            for i in range(warmup + n):
                started = time.perf_counter()
                response = http.get(path)
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:500]}")
                if i >= warmup:
                    latencies.append(elapsed)
        return latencies, response.json()


def in_process(engine, statements: StatementLog, args, ids: dict, today: date):
    """The same service call without HTTP: latencies, one result, and the statements (with
    the median time of each across the calls)."""
    from sqlmodel import Session

    from api.auth.scope import Scope
    from api.models import UnitKind, User
    from api.progress.service import unit_progress

    latencies, calls = [], []
    for i in range(args.warmup + args.requests):
        with Session(engine) as session:
            scope = Scope(session=session, user=session.get(User, ids["admin"]))
            with statements.recording() as entries:
                started = time.perf_counter()
                result = unit_progress(
                    session=session,
                    scope=scope,
                    campaign_id=ids["campaign"],
                    unit_kind=UnitKind.kommun,
                    unit_id=ids["kommun"],
                    today=today,
                )
                elapsed = time.perf_counter() - started
        if i >= args.warmup:
            latencies.append(elapsed)
            calls.append(entries)
    alike = [c for c in calls if len(c) == len(calls[-1])]
    median = [
        (statement, parameters, statistics.median(c[k][2] for c in alike))
        for k, (statement, parameters, _) in enumerate(calls[-1])
    ]
    return latencies, result, median


# -- orchestration --------------------------------------------------------------------------


def bench(args: argparse.Namespace, database_url: str, tmp: Path) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    dbname, dsn = url.database, url.set(drivername="postgresql").render_as_string(False)
    os.environ.pop("KNACKA_DATABASE_URL", None)
    os.environ["DATABASE_URL"] = database_url

    from sqlmodel import Session

    import api.jobs
    from api import db
    from api.contacts.rules import local_day
    from api.migrate import upgrade
    from api.models import utcnow
    from api.progress.snapshots import rebuild_changed, rebuild_days
    from api.settings import get_settings

    get_settings.cache_clear()
    db.get_engine.cache_clear()
    settings = get_settings()
    if settings.database_url != database_url:
        raise RuntimeError(f"DATABASE_URL is not the benchmark's: {settings.database_url}")
    tz = settings.timezone
    today = local_day(utcnow(), tz)  # the server's today: the endpoint uses the real clock
    first_day = today - timedelta(days=DAYS)  # logs on the 120 days before today
    night1 = _local(today, clock(2, 30), tz)  # the night job that covers yesterday
    night2 = _local(today + timedelta(days=1), clock(2, 30), tz)  # ... and the one for today

    # -- data ---------------------------------------------------------------------------------
    started = time.perf_counter()
    upgrade(database_url)
    now = utcnow()
    with psycopg.connect(dsn) as conn:
        ids = load_org(conn, now)
        ids["campaign"] = load_campaign(
            conn, ids["partidistrikt"], first_day, today + timedelta(days=60), args.contacts, now
        )
    ids["kommun"] = ids["kommuner"][len(ids["kommuner"]) // 2]
    org_s = time.perf_counter() - started
    load_contacts(dsn, args.contacts, first_day)
    generated_s = time.perf_counter() - started
    counts = _counts(dsn)
    print(
        f"data generation: {generated_s:.1f} s ({org_s:.1f} s migrations and org rows; "
        f"{counts['contact_log']:,} contact logs over {DAYS} days "
        f"{first_day}..{today - timedelta(days=1)}, {KOMMUNER * PER_KOMMUN:,} districts, "
        f"{VOLUNTEERS:,} volunteers; indexes, VACUUM ANALYZE) in {dbname}"
    )

    engine = db.get_engine()
    statements = StatementLog(engine)

    # -- 1. full rebuild against the raw GROUP BY -----------------------------------------------
    raw_s, raw_rows = min(raw_group_by(dsn) for _ in range(2))
    with statements.recording() as full_entries, Session(engine) as session:
        started = time.perf_counter()
        rebuild_days(session, None)
        session.commit()
        full_s = time.perf_counter() - started
    counts = _counts(dsn)
    full_line = (
        f"full rebuild: {full_s:.2f} s (daily_grain {counts['daily_grain']:,} rows, "
        f"daily_stat {counts['daily_stat']:,} rows) | raw GROUP BY district, day: {raw_s:.2f} s "
        f"(best of 2, {raw_rows:,} rows fetched) | ratio {full_s / raw_s:.2f} (target <= 1.5)"
    )
    print(full_line)
    print(
        f"    rows: contact_log {counts['contact_log']:,}, daily_grain {counts['daily_grain']:,}"
        f", daily_stat {counts['daily_stat']:,}; statements (commit "
        f"{(full_s - sum(e[2] for e in full_entries)) * 1000:.0f} ms and the rest):"
    )
    _print_statements(full_entries)

    # -- 2. the nightly job ---------------------------------------------------------------------
    rebuild_spent: list[float] = []
    api.jobs.rebuild_days = _timed(rebuild_days, rebuild_spent)
    api.jobs.rebuild_changed = _timed(rebuild_changed, rebuild_spent)
    try:
        started = time.perf_counter()
        first = api.jobs.run_nightly(settings=settings, now=night1, emails=False)
        first_s = time.perf_counter() - started
        print(
            f"first nightly run (no watermark: a full rebuild replacing the snapshots, "
            f"nights {first['nights']}): {first_s:.2f} s end to end (rebuild part "
            f"{rebuild_spent[-1]:.2f} s) = {first_s / raw_s:.2f}x the raw GROUP BY"
        )
        # Both snapshot tables now hold as many dead rows as live ones; autovacuum would clear
        # them during the day (and may be off on a test server), so vacuum them explicitly.
        with psycopg.connect(dsn, autocommit=True) as conn:
            autovacuum = conn.execute("SHOW autovacuum").fetchone()[0]
            started = time.perf_counter()
            conn.execute("VACUUM ANALYZE daily_grain, daily_stat")
        print(
            f"    then VACUUM ANALYZE daily_grain, daily_stat: {time.perf_counter() - started:.1f}"
            f" s (as autovacuum would during the day; it is {autovacuum} on this server)"
        )
        started = time.perf_counter()
        new = add_new_records(dsn, args.new_records, today, tz)
        print(
            f"added {args.new_records:,} records in {time.perf_counter() - started:.1f} s: "
            f"{new['today']:,} today, {new['yesterday']:,} yesterday (synced late), "
            f"{new['backdated']:,} backdated over {new['backdated_days']} days"
        )

        # -- 3. the progress endpoint, in the daytime state (snapshots through yesterday plus
        # today's live logs), before the next night's run --------------------------------------
        token = issue_token(database_url, ADMIN_EMAIL, device="bench")
        with psycopg.connect(dsn) as conn:  # a kommun is named by its SCB code in paths
            code = conn.execute("SELECT code FROM kommun WHERE id = %s", [ids["kommun"]]).fetchone()
        path = f"/campaigns/{ids['campaign']}/progress/kommun/{code[0]}"
        http_lat, body = endpoint_latencies(
            database_url, path, token, args.warmup, args.requests, tmp
        )
        proc_lat, result, call_entries = in_process(engine, statements, args, ids, today)
        http_actual = {m["metric"]: m["actual"] for m in body["metrics"]}
        proc_actual = {m.metric: m.actual for m in result.metrics}
        if http_actual != proc_actual:
            print(f"WARNING: HTTP and in-process results differ: {http_actual} {proc_actual}")

        with statements.recording() as night_entries:
            started = time.perf_counter()
            second = api.jobs.run_nightly(settings=settings, now=night2, emails=False)
            night_s = time.perf_counter() - started
    finally:
        api.jobs.rebuild_days = rebuild_days
        api.jobs.rebuild_changed = rebuild_changed
    changed = [e for e in night_entries if "changed_at >" in e[0]]
    nightly_line = (
        f"incremental nightly after {args.new_records:,} new records: {night_s:.2f} s end to end "
        f"(rebuild part {rebuild_spent[-1]:.2f} s) (target < 0.5 s)"
    )
    print(nightly_line)
    grain_sql = [e[0] for e in night_entries if e[0].lstrip().startswith("INSERT INTO daily_grain")]
    days = re.findall(r"%\(days_\w+\)s", grain_sql[0]) if grain_sql else []
    print(
        f"    nights {second['nights']}, {len(days)} days rebuilt, {second['rows']:,} rows "
        f"written; changed-days query {sum(e[2] for e in changed) * 1000:.1f} ms; statements:"
    )
    _print_statements(night_entries, min_ms=1.0)
    with psycopg.connect(dsn) as conn:
        grain, live = conn.execute(
            "SELECT (SELECT sum(contacts) FROM daily_grain), "
            "(SELECT count(*) FROM contact_log WHERE withdrawn_at IS NULL)"
        ).fetchone()
    print(f"    check: daily_grain sums {grain:,} contacts, contact_log has {live:,} live ones")

    p50, p99 = percentile(http_lat, 0.5) * 1000, percentile(http_lat, 0.99) * 1000
    in_p50, in_p99 = percentile(proc_lat, 0.5) * 1000, percentile(proc_lat, 0.99) * 1000
    endpoint_line = (
        f"progress endpoint, one kommun: p50 {p50:.1f} ms, p99 {p99:.1f} ms over "
        f"{len(http_lat)} requests (target p99 < 20 ms); in-process {in_p50:.1f} ms "
        f"(p99 {in_p99:.1f} ms)"
    )
    print(endpoint_line)
    print(
        f"    GET {path}: {len(body['daily'])} days, covered through {body['covered_through']}, "
        f"today {body['today']}; statements of one in-process call (median of "
        f"{len(proc_lat)}):"
    )
    _print_statements(call_entries)

    if args.explain:
        _explain(engine, [(RAW_GROUP_BY, None, 0.0)], "raw GROUP BY")
        _explain(engine, full_entries, "full rebuild")
        rebuild = [e for e in night_entries if re.search(r"contact_log|daily_|changed_pairs", e[0])]
        _explain(engine, rebuild, "incremental nightly (its snapshot statements)")
        _explain(engine, call_entries, "progress of one kommun")

    print("\nsummary:")
    print(f"  {full_line}")
    print(f"  {nightly_line}")
    print(f"  {endpoint_line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=5_000_000, help="contact logs to load")
    parser.add_argument("--new-records", type=int, default=50_000, help="logs before night 2")
    parser.add_argument("--requests", type=int, default=300, help="timed progress requests")
    parser.add_argument("--warmup", type=int, default=30, help="untimed requests first")
    parser.add_argument(
        "--explain", action="store_true", help="print EXPLAIN (ANALYZE, BUFFERS) of every query"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database (for digging)")
    args = parser.parse_args()

    started = time.perf_counter()
    with (
        throwaway_database(prefix="knacka_bench", keep=args.keep) as database_url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        try:
            bench(args, database_url, Path(tmp))
        finally:
            with contextlib.suppress(Exception):
                from api import db

                db.get_engine().dispose()
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
