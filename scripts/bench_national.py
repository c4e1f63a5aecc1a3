#!/usr/bin/env python3
"""Benchmark: a national organisation on PostgreSQL: the nightly run with every lead's
email, the export of every district, and one partidistrikt's kommuner.

Creates a fresh PostgreSQL database, migrates it and loads the 290 kommuner of the SCB code
list (api/data/kommuner.csv) under 21 partidistrikt (one per län), 2,000 föreningar (one
workplace club per kommun, the rest geographic), 6,000 districts spread over the kommuner
by a fixed skewed draw (2 to a few hundred each), 3,000 leads at every level (district
admins, kommun leads, förening leads), 20,000 volunteers and ``--contacts`` contact logs
(default 5,000,000) over 120 days, generated server-side by bench_aggregate.py's functions;
a campaign per partidistrikt with its targets apportioned by voters down to the districts.
After a first nightly run (a full rebuild, no emails) and ``--new-records`` new logs, it
measures in the same run:

- ``export:`` the district export (GET /campaigns/{id}/export?level=district, CSV) of every
  campaign through a real uvicorn server, one request per partidistrikt with its district
  admin's token, against one raw ``GROUP BY district_id`` over contact_log summing the same
  figures, fetched completely by psycopg;
- ``endpoint:`` GET /campaigns/{id}/progress/partidistrikt/{id}/children of the partidistrikt
  with the most kommuner, sequential requests through a real uvicorn server, against its
  SQL statements (captured from an in-process call of the same service functions, all but
  authentication's token lookup) replayed over one psycopg connection, half before the
  requests and half after;
- ``nightly run:`` the next night's ``api.jobs.run_nightly`` in this process: incremental
  snapshots, then every lead's email rendered and delivered to an aiosmtpd server on loopback
  (a subprocess counting connections and messages); SQL statements are counted with a
  SQLAlchemy ``before_cursor_execute`` listener and attributed to the email sent next.

Every night it runs is in the past (the logs end the day before yesterday, the first night
is yesterday's, the new records are yesterday's, the measured night is today's); the export
is measured before the measured night, reading the snapshots through the day before
yesterday plus yesterday's new logs live, as in the day before a night's run. The endpoint
is measured twice: in that state, which for the server's clock (today) is the day after a
missed night (no precomputed windows for today: api/progress/windows.py), and after the
measured night and another ``--new-records`` logs of today, as in a day's evening.

Usage: python scripts/bench_national.py [--contacts 5000000] [--new-records 50000]
    [--leads 3000] [--requests 300] [--keep]
"""

import argparse
import contextlib
import csv
import io
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# scripts/ is on the path when run as a script
from bench_aggregate import (  # noqa: E402
    DAYS,
    _local,
    add_new_records,
    endpoint_latencies,
    load_contacts,
    map_volunteers,
)

from api.testing import TUNED, LiveServer, free_port, percentile, throwaway_database  # noqa: E402

KOMMUN_CSV = ROOT / "api" / "data" / "kommuner.csv"
DISTRICTS = 6000
FORENINGAR = 2000  # one workplace club per kommun, the rest geographic
VOLUNTEERS = 20_000
MIN_DISTRICTS = 2  # the smallest kommuner have two valdistrikt
# Leads at full size: two district admins per partidistrikt, three leads per kommun and the
# rest förening leads (one per förening, a second in some).
LEADS = 3000
ADMINS_PER_PARTIDISTRIKT = 2
LEADS_PER_KOMMUN = 3
SKEW = 1.0  # sigma of the lognormal draw that sizes the kommuner

TARGET_NIGHTLY_S = 60
TARGET_RSS_MB = 500
TARGET_EXPORT_S = 2.0
TARGET_EXPORT_RATIO = 3.0
TARGET_P99_MS = 20

RAW_EXPORT = (
    "SELECT district_id, count(*), sum(conversations), count(*) FILTER (WHERE kind = 'door'),"
    " count(*) FILTER (WHERE new_member) FROM contact_log "
    "WHERE withdrawn_at IS NULL AND day BETWEEN %(start)s AND %(last)s GROUP BY district_id"
)

# -- the organisation -----------------------------------------------------------------------


def _split(total: int, weights: list[float], minimum: int) -> list[int]:
    """``total`` split in proportion to ``weights``, each share at least ``minimum``."""
    from api.campaigns.service import largest_remainder

    rest = largest_remainder(total - minimum * len(weights), weights)
    return [minimum + r for r in rest]


def _spread(items: list, k: int) -> list:
    """``k`` of ``items``, evenly spaced, so that a smaller run keeps small and large units."""
    if k >= len(items):
        return items
    return [items[i * len(items) // k] for i in range(k)]


def read_kommuner() -> list[dict[str, str]]:
    with KOMMUN_CSV.open(encoding="utf-8", newline="") as f:
        return sorted(csv.DictReader(f), key=lambda r: r["municipality_code"])


def _copy(conn, table: str, columns: str, rows) -> None:
    with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def load_org(conn, now: datetime, leads: int) -> dict:
    """Partidistrikt, kommuner, föreningar, districts, leads and volunteers; returns what the
    benchmark needs to address them."""
    from shapely.geometry import box

    kommuner = read_kommuner()
    counties = sorted({(k["county_code"], k["county_name"]) for k in kommuner})
    pd_ids = {}
    for code, name in counties:
        pd_ids[code] = conn.execute(
            "INSERT INTO partidistrikt (code, name, created_at) VALUES (%s, %s, %s) RETURNING id",
            (code, name, now),
        ).fetchone()[0]
    _copy(
        conn,
        "kommun",
        "code, name, partidistrikt_id, created_at",
        (
            (k["municipality_code"], k["municipality_name_short"], pd_ids[k["county_code"]], now)
            for k in kommuner
        ),
    )
    kommun_ids = dict(conn.execute("SELECT code, id FROM kommun").fetchall())

    rng = random.Random(8)
    weights = [rng.lognormvariate(0, SKEW) for _ in kommuner]
    districts = _split(DISTRICTS, weights, MIN_DISTRICTS)
    geographic = _split(FORENINGAR - len(kommuner), [float(d) for d in districts], 1)
    volunteers = _split(VOLUNTEERS, [float(d) for d in districts], 5)
    if any(g > d for g, d in zip(geographic, districts, strict=True)):
        raise RuntimeError("a kommun got more geographic föreningar than districts")

    def forening_rows():
        for k, g in zip(kommuner, geographic, strict=True):
            kid, name = kommun_ids[k["municipality_code"]], k["municipality_name_short"]
            for j in range(g):
                yield f"S-föreningen {name} {j + 1}", "geographic", kid, now
            yield f"Arbetsplatsklubben {name}", "workplace", kid, now

    _copy(conn, "forening", "name, kind, kommun_id, created_at", forening_rows())
    foreningar: dict[int, list[int]] = defaultdict(list)  # kommun -> geographic ids in order
    workplace: dict[int, int] = {}
    for fid, kid, kind in conn.execute("SELECT id, kommun_id, kind FROM forening ORDER BY id"):
        if kind == "geographic":
            foreningar[kid].append(fid)
        else:
            workplace[kid] = fid

    side = 0.005  # degrees: about 280 m x 560 m this far north

    def district_rows():
        for ki, (k, n) in enumerate(zip(kommuner, districts, strict=True)):
            kid, code = kommun_ids[k["municipality_code"]], k["municipality_code"]
            # Each geographic förening holds a block of consecutive districts.
            blocks = _split(n, [1.0] * len(foreningar[kid]), 0)
            owner = [f for f, b in zip(foreningar[kid], blocks, strict=True) for _ in range(b)]
            for j in range(n):
                lon = 11.0 + (ki % 17) * 0.6 + (j % 20) * side
                lat = 55.5 + (ki // 17) * 0.6 + (j // 20) * side
                voters = 600 + (ki * 37 + j * 53) % 1900
                geom = box(lon, lat, lon + side, lat + side)
                yield (
                    *(f"{code}{j + 1:04d}", f"Valdistrikt {code}-{j + 1}", kid, owner[j]),
                    *(geom.wkb, lon, lat, lon + side, lat + side, 155_000.0),
                    *(voters, voters // 2, now, now),
                )

    _copy(
        conn,
        "district",
        "code, name, kommun_id, forening_id, geom_wkb, min_lon, min_lat, max_lon, max_lat, "
        "area_m2, voters, households, created_at, updated_at",
        district_rows(),
    )

    # Leads: at full size every unit has one; a smaller --leads keeps each role's share,
    # spread over small and large units.
    admins = [
        ("district_admin", "partidistrikt", pd_ids[c], f"distriktsadmin{c}-{i + 1}")
        for i in range(ADMINS_PER_PARTIDISTRIKT)
        for c, _ in counties
    ]
    kommun_leads = [
        (
            "kommun_lead",
            "kommun",
            kommun_ids[k["municipality_code"]],
            f"kommun{k['municipality_code']}-{i + 1}",
        )
        for i in range(LEADS_PER_KOMMUN)
        for k in kommuner
    ]
    all_foreningar = sorted([*workplace.values(), *(f for fs in foreningar.values() for f in fs)])
    n_forening = LEADS - len(admins) - len(kommun_leads)
    forening_leads = [
        ("forening_lead", "forening", f, f"forening{f}-{i // len(all_foreningar) + 1}")
        for i, f in enumerate(all_foreningar * 2)
    ][:n_forening]
    full = len(admins) + len(kommun_leads) + len(forening_leads)
    # Every partidistrikt keeps a district admin: the export and the endpoint ask as one.
    admins = _spread(admins, max(len(counties), round(leads * len(admins) / full)))
    kommun_leads = _spread(kommun_leads, max(1, round(leads * len(kommun_leads) / full)))
    forening_leads = _spread(forening_leads, max(1, leads - len(admins) - len(kommun_leads)))
    names = {"district_admin": "Distriktsadmin", "kommun_lead": "Kommunansvarig"}

    def user_rows():
        for role, kind, unit_id, handle in [*admins, *kommun_leads, *forening_leads]:
            label = names.get(role, "Föreningsansvarig")
            yield f"{handle}@bench.invalid", f"{label} {handle}", role, kind, unit_id, now, True
        # Volunteers: nine in ten in the kommun's geographic föreningar, in turn, the rest
        # in its workplace club.
        n = 0
        for k, v in zip(kommuner, volunteers, strict=True):
            kid = kommun_ids[k["municipality_code"]]
            for j in range(v):
                fid = (
                    workplace[kid]
                    if j >= v * 9 // 10
                    else foreningar[kid][j % len(foreningar[kid])]
                )
                n += 1
                email = f"volontar{n}@bench.invalid"
                yield email, f"Volontär {n}", "volunteer", "forening", fid, now, True

    _copy(
        conn,
        "app_user",
        "email, display_name, role, unit_kind, unit_id, created_at, is_active",
        user_rows(),
    )
    map_volunteers(conn)
    admin_of = {}
    for email, pd_id in conn.execute(
        "SELECT email, unit_id FROM app_user WHERE role = 'district_admin' ORDER BY id"
    ):
        admin_of.setdefault(pd_id, email)
    return {
        "partidistrikt": pd_ids,
        "admin_of": admin_of,
        "kommuner": len(kommuner),
        "foreningar": sum(geographic) + len(workplace),
        "districts": sum(districts),
        "volunteers": sum(volunteers),
        "leads": {
            "district_admin": len(admins),
            "kommun_lead": len(kommun_leads),
            "forening_lead": len(forening_leads),
        },
        "largest_kommun": max(districts),
    }


def load_campaigns(conn, starts: date, ends: date, contacts: int, now: datetime) -> dict:
    """A campaign per partidistrikt; national targets apportioned by voters to the
    partidistrikt, their kommuner, geographic föreningar and (conversations, doors) the
    districts, as the campaigns' apportion does. Returns the campaign id of each
    partidistrikt."""
    from api.campaigns.service import largest_remainder

    total_days = (ends - starts).days + 1
    scale = 1.3 * total_days / DAYS  # roughly what the generated logs reach by election day
    national = {
        "conversations": round(contacts * 0.33 * scale),
        "doors": round(contacts * 0.85 * scale),
        "new_members": round(contacts * 0.003 * scale),
        "active_volunteers": VOLUNTEERS,
    }
    rows = conn.execute(
        "SELECT d.id, d.forening_id, d.kommun_id, k.partidistrikt_id, d.voters "
        "FROM district d JOIN kommun k ON k.id = d.kommun_id ORDER BY d.id"
    ).fetchall()
    voters: dict[str, dict[int, int]] = {k: defaultdict(int) for k in ("pd", "k", "f", "d")}
    children: dict[str, dict[int, set[int]]] = {k: defaultdict(set) for k in ("pd", "k", "f")}
    for did, fid, kid, pid, v in rows:
        for level, unit in (("pd", pid), ("k", kid), ("f", fid), ("d", did)):
            voters[level][unit] += v
        children["pd"][pid].add(kid)
        children["k"][kid].add(fid)
        children["f"][fid].add(did)

    campaigns = {}
    for pid in sorted(voters["pd"]):
        campaigns[pid] = conn.execute(
            "INSERT INTO campaign (name, partidistrikt_id, starts_on, ends_on, created_at, "
            "pace_curve, pace_final_weeks, pace_final_weight) SELECT 'Valåret ' || name || "
            "' (benchmark)', id, %s, %s, %s, 'final_weeks', 6, 2.0 FROM partidistrikt "
            "WHERE id = %s RETURNING id",
            (starts, ends, now, pid),
        ).fetchone()[0]

    def apportion(value: int, kind: str, ids: set[int]) -> list[tuple[int, int]]:
        order = sorted(ids)
        shares = largest_remainder(value, [float(voters[kind][i]) for i in order])
        return list(zip(order, shares, strict=True))

    targets = []
    for metric, value in national.items():
        for pid, pd_value in apportion(value, "pd", set(voters["pd"])):
            cid = campaigns[pid]
            targets.append((cid, "partidistrikt", pid, metric, pd_value, "direct"))
            for kid, k_value in apportion(pd_value, "k", children["pd"][pid]):
                targets.append((cid, "kommun", kid, metric, k_value, "voters"))
                for fid, f_value in apportion(k_value, "f", children["k"][kid]):
                    targets.append((cid, "forening", fid, metric, f_value, "voters"))
                    if metric in ("conversations", "doors"):
                        for did, d_value in apportion(f_value, "d", children["f"][fid]):
                            targets.append((cid, "district", did, metric, d_value, "voters"))
    _copy(
        conn,
        "target",
        "campaign_id, unit_kind, unit_id, metric, value, basis, updated_at",
        ((*t, now) for t in targets),
    )
    return campaigns


# -- the SMTP server ------------------------------------------------------------------------


def smtp_sink(port: int) -> None:
    """An SMTP server on loopback that accepts every message; when its stdin closes it
    prints what it received as JSON and stops. Runs as a subprocess of the benchmark."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP

    counts = {"connections": 0, "messages": 0, "recipients": 0, "bytes": 0}

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            counts["messages"] += 1
            counts["recipients"] += len(envelope.rcpt_tos)
            counts["bytes"] += len(envelope.content)
            return "250 OK"

    class CountingSMTP(SMTP):
        def connection_made(self, transport):
            counts["connections"] += 1
            super().connection_made(transport)

    class Sink(Controller):
        def factory(self):
            return CountingSMTP(self.handler, **self.SMTP_kwargs)

    sink = Sink(Handler(), hostname="127.0.0.1", port=port)
    sink.start()
    counts["connections"] = 0  # start() connects once to see that the server is up
    print("ready", flush=True)
    sys.stdin.read()
    sink.stop()
    print(json.dumps(counts), flush=True)


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[int, dict]]:
    """The SMTP sink in a subprocess; yields its port and a dict filled with its counts on
    exit."""
    port = free_port()
    sink = subprocess.Popen(
        [sys.executable, __file__, "--smtp-sink", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    counts: dict = {}
    try:
        if sink.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the SMTP sink did not start ({sink.wait(timeout=10)})")
        yield port, counts
    finally:
        out, _ = sink.communicate(timeout=60)
        lines = out.strip().splitlines()
        if lines:
            counts.update(json.loads(lines[-1]))


# -- measuring ------------------------------------------------------------------------------


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def raw_export(dsn: str, start: date, last: date) -> tuple[float, list[tuple]]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        rows = conn.execute(RAW_EXPORT, {"start": start, "last": last}).fetchall()
        return time.perf_counter() - started, rows


def http_export(env: dict, tokens: dict[int, str], rounds: int, tmp: Path):
    """Every campaign's district export as CSV through uvicorn, one request per campaign
    with its district admin's token: the seconds of each round and the last round's CSVs."""
    import httpx

    times, bodies = [], []
    with (
        LiveServer(env["DATABASE_URL"], tmp / "export.log", options=TUNED) as server,
        httpx.Client(base_url=server.base_url, timeout=300) as http,
    ):
        for _ in range(rounds):
            bodies = []
            started = time.perf_counter()
            for campaign_id, token in tokens.items():
                response = http.get(
                    f"/campaigns/{campaign_id}/export",
                    params={"level": "district", "format": "csv"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                if response.status_code != 200:
                    raise RuntimeError(f"export: {response.status_code} {response.text[:500]}")
                bodies.append(response.text)
            times.append(time.perf_counter() - started)
    return times, bodies


def issue_tokens(emails: list[str]) -> dict[str, str]:
    """A bearer token for each of these users, issued in-process."""
    from sqlmodel import select

    from api import db
    from api.auth.service import issue_device_token
    from api.models import User, utcnow

    tokens = {}
    with db.session_scope() as session:
        for email in emails:
            user = session.exec(select(User).where(User.email == email)).one()
            tokens[email], _ = issue_device_token(
                session=session, user=user, name="bench", now=utcnow()
            )
    return tokens


def request_statements(email: str, campaign_id: int, pd_id: int, today: date) -> tuple[list, int]:
    """The SQL statements (text and parameters, as the driver gets them) of one in-process
    call of the endpoint's service functions as ``email`` (all the request's statements but
    authentication's token lookup), and how many child units the call found."""
    from sqlalchemy import event
    from sqlmodel import Session, select

    from api import db
    from api.auth.scope import Scope
    from api.models import UnitKind, User
    from api.progress import service

    engine, captured = db.get_engine(), []

    def grab(conn, cursor, statement, parameters, context, executemany) -> None:
        captured.append((statement, parameters))

    with Session(engine) as session:
        scope = Scope(
            session=session, user=session.exec(select(User).where(User.email == email)).one()
        )
        event.listen(engine, "before_cursor_execute", grab)
        try:
            kind = UnitKind.partidistrikt
            found = service.resolve_unit(session=session, scope=scope, kind=kind, ref=str(pd_id))
            _, children = service.child_progress(
                session=session,
                scope=scope,
                campaign_id=campaign_id,
                unit_kind=kind,
                unit_id=found.id,
                today=today,
            )
        finally:
            event.remove(engine, "before_cursor_execute", grab)
    return captured, len(children)


def replayed_latencies(dsn: str, statements: list, warmup: int, n: int) -> list[float]:
    """``statements`` sent over one psycopg connection as one transaction, ``warmup`` + ``n``
    times, planned as the service's connections plan them: the timed latencies."""
    import psycopg

    from api.db import _PLAN_FOR_THE_VALUES

    latencies = []
    with psycopg.connect(dsn) as conn:
        conn.execute(_PLAN_FOR_THE_VALUES)
        conn.commit()
        for i in range(warmup + n):
            started = time.perf_counter()
            for sql, params in statements:
                conn.execute(sql, params).fetchall()
            conn.commit()
            if i >= warmup:
                latencies.append(time.perf_counter() - started)
    return latencies


def _run_nightly(settings, now: datetime, before_send, after_send) -> dict:
    """``api.jobs.run_nightly`` with a hook around every message it hands to the real SMTP
    sender: a ``send`` callable (one connection per message), or a ``mailer`` opening one
    connection per batch (api.mail.smtp_session) where the job takes one instead."""
    import inspect

    import api.jobs
    import api.mail

    if "mailer" in inspect.signature(api.jobs.run_nightly).parameters:

        @contextlib.contextmanager
        def mailer(settings):
            with api.mail.smtp_session(settings) as sender:
                real = sender.send

                def send(message) -> None:
                    before_send(message)
                    real(message)
                    after_send()

                sender.send = send
                yield sender

        return api.jobs.run_nightly(settings=settings, now=now, mailer=mailer)

    def send(*, settings, message) -> None:
        before_send(message)
        api.mail.send_message(settings=settings, message=message)
        after_send()

    return api.jobs.run_nightly(settings=settings, now=now, send=send)


def measured_nightly(settings, now: datetime) -> dict:
    """The nightly run with every SQL statement counted and timed: the seconds, the result,
    and per email (by recipient) the statements, seconds and seconds in SQL since the
    previous email was sent."""
    from sqlalchemy import event

    from api import db

    engine = db.get_engine()
    sql = {"statements": 0, "seconds": 0.0}
    mark: dict = {}
    per_email: dict[str, tuple[int, float, float]] = {}

    def before(conn, *_args) -> None:
        sql["statements"] += 1
        conn.info["bench_started"] = time.perf_counter()

    def after(conn, *_args) -> None:
        sql["seconds"] += time.perf_counter() - conn.info.pop("bench_started")

    def before_send(message) -> None:
        # The first email's share is mixed with the snapshots and the queueing: not counted.
        if mark:
            per_email[message["To"]] = (
                sql["statements"] - mark["statements"],
                time.perf_counter() - mark["at"],
                sql["seconds"] - mark["seconds"],
            )

    def after_send() -> None:
        mark.update(sql, at=time.perf_counter())

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        started = time.perf_counter()
        result = _run_nightly(settings, now, before_send, after_send)
        seconds = time.perf_counter() - started
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    return {
        "seconds": seconds,
        "result": result,
        "per_email": per_email,
        "statements": sql["statements"],
        "sql_seconds": sql["seconds"],
    }


def _scopes(dsn: str) -> dict[str, tuple[str, int]]:
    """Each lead's role and the number of districts under the unit they lead."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """
            SELECT u.email, u.role, CASE u.unit_kind
                WHEN 'partidistrikt' THEN (SELECT count(*) FROM district d JOIN kommun k
                                           ON k.id = d.kommun_id
                                           WHERE k.partidistrikt_id = u.unit_id)
                WHEN 'kommun' THEN (SELECT count(*) FROM district WHERE kommun_id = u.unit_id)
                ELSE (SELECT count(*) FROM district WHERE forening_id = u.unit_id) END
            FROM app_user u WHERE u.role <> 'volunteer'
            """
        ).fetchall()
    return {email: (role, n) for email, role, n in rows}


def _export_check(
    dsn: str, bodies: list[str], start: date, today: date, covered: date, night: datetime
) -> str:
    """The export's districts and conversations against the logs it should count: those the
    last night saw for the days it covered, and every log of the days after."""
    import psycopg

    exported, units = 0, set()
    for body in bodies:
        for row in csv.DictReader(io.StringIO(body)):
            units.add(row["enhet_id"])
            if row["mått"] == "conversations":
                exported += int(row["utfall"])
    with psycopg.connect(dsn) as conn:
        seen, late = conn.execute(
            "SELECT sum(conversations) FILTER (WHERE day > %(covered)s OR changed_at < %(night)s),"
            " sum(conversations) FILTER (WHERE day <= %(covered)s AND changed_at >= %(night)s) "
            "FROM contact_log WHERE withdrawn_at IS NULL AND day BETWEEN %(start)s AND %(today)s",
            {"start": start, "today": today, "covered": covered, "night": night},
        ).fetchone()
    verdict = "equal" if exported == seen else "DIFFERENT"
    return (
        f"{len(units):,} districts exported, {exported:,} conversations; the logs hold {seen:,}"
        f" ({verdict}) plus {late or 0:,} synced late for days the last night covered, which "
        f"the next night adds"
    )


# -- orchestration --------------------------------------------------------------------------


def _role_lines(per_email: dict[str, tuple[int, float, float]], scopes: dict):
    """Statements and time per email by role, and the smallest against the largest scope."""
    by_role: dict[str, list[tuple[int, int, float, float]]] = defaultdict(list)
    for email, (n, seconds, in_sql) in per_email.items():
        role, districts = scopes[email]
        by_role[role].append((districts, n, seconds, in_sql))
    lines = []
    for role in ("forening_lead", "kommun_lead", "district_admin"):
        got = sorted(by_role.get(role, []))
        if not got:
            continue
        counts = [n for _, n, _, _ in got]
        lines.append(
            f"    {role}: {len(got):,} emails, scopes of {got[0][0]:,}..{got[-1][0]:,} "
            f"districts; statements/email min {min(counts)}, median "
            f"{statistics.median(counts):g}, max {max(counts)}; median "
            f"{statistics.median(g[2] for g in got) * 1000:.0f} ms/email, of which "
            f"{statistics.median(g[3] for g in got) * 1000:.0f} ms in SQL statements"
        )
    every = sorted((g[0], g[1]) for got in by_role.values() for g in got)
    if not every:
        return lines, "no email counted"
    # By the tenth of the emails with the smallest and the largest scopes: a few emails
    # (the first of each campaign's recipients) also read figures that the campaign's
    # other emails then share, whatever their scope.
    tenth = max(1, len(every) // 10)

    def part(emails: list[tuple[int, int]]) -> str:
        return (
            f"{emails[0][0]:,}..{emails[-1][0]:,} districts: median "
            f"{statistics.median(n for _, n in emails):g}, max {max(n for _, n in emails)}"
        )

    return lines, (
        f"the tenth with the smallest scopes ({part(every[:tenth])}), the tenth with the "
        f"largest ({part(every[-tenth:])})"
    )


def bench(args: argparse.Namespace, database_url: str, smtp_port: int, tmp: Path) -> dict:
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    dsn = url.set(drivername="postgresql").render_as_string(False)
    database_url = url.set(drivername="postgresql+psycopg").render_as_string(False)
    os.environ.pop("KNACKA_DATABASE_URL", None)
    os.environ["DATABASE_URL"] = database_url
    os.environ["KNACKA_SMTP_HOST"] = "127.0.0.1"
    os.environ["KNACKA_SMTP_PORT"] = str(smtp_port)
    env = {**os.environ}

    import api.jobs
    from api import db
    from api.contacts.rules import local_day
    from api.migrate import upgrade
    from api.models import utcnow
    from api.settings import get_settings

    get_settings.cache_clear()
    db.get_engine.cache_clear()
    settings = get_settings()
    if settings.database_url != database_url or settings.smtp_port != smtp_port:
        raise RuntimeError("the settings are not the benchmark's")
    tz = settings.timezone
    today = local_day(utcnow(), tz)  # the server's today: the routes use the real clock
    yesterday = today - timedelta(days=1)
    # No night in the future: the logs end the day before yesterday, which the first night
    # (yesterday at 02:30) covers; the new records are yesterday's, and the measured night
    # is this one (today at 02:30, or now if that is earlier), which covers yesterday.
    first_day = yesterday - timedelta(days=DAYS)
    night1 = _local(yesterday, clock(2, 30), tz)
    night2 = min(_local(today, clock(2, 30), tz), utcnow())

    # -- data ---------------------------------------------------------------------------------
    started = time.perf_counter()
    upgrade(database_url)
    now = utcnow()
    with psycopg.connect(dsn) as conn:
        org = load_org(conn, now, args.leads)
        campaigns = load_campaigns(conn, first_day, today + timedelta(days=60), args.contacts, now)
    org_s = time.perf_counter() - started
    load_contacts(dsn, args.contacts, first_day)
    print(
        f"data generation: {time.perf_counter() - started:.1f} s ({org_s:.1f} s migrations, "
        f"organisation and targets): {len(org['partidistrikt'])} partidistrikt, "
        f"{org['kommuner']} kommuner, {org['foreningar']:,} föreningar, "
        f"{org['districts']:,} districts (largest kommun {org['largest_kommun']}), "
        f"{sum(org['leads'].values()):,} leads {org['leads']}, {org['volunteers']:,} "
        f"volunteers, {args.contacts:,} contact logs over {DAYS} days, {len(campaigns)} "
        f"campaigns, in {url.database}"
    )

    started = time.perf_counter()
    first = api.jobs.run_nightly(settings=settings, now=night1, emails=False)
    print(
        f"first nightly run, no emails (no watermark: a full rebuild, nights "
        f"{first['nights']}): {time.perf_counter() - started:.1f} s"
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE daily_grain, daily_stat")  # as autovacuum would by day
    started = time.perf_counter()
    new = add_new_records(dsn, args.new_records, yesterday, tz)
    print(
        f"added {args.new_records:,} records in {time.perf_counter() - started:.1f} s: "
        f"{new['today']:,} of yesterday, {new['yesterday']:,} of the day before (synced late), "
        f"{new['backdated']:,} backdated"
    )
    tokens = issue_tokens(list(org["admin_of"].values()))
    figures = {}

    # -- export, in the daytime state -----------------------------------------------------------
    raw_runs = [raw_export(dsn, first_day, today) for _ in range(2)]
    raw_s, raw_rows = min(raw_runs, key=lambda r: r[0])
    by_campaign = {campaigns[pid]: tokens[email] for pid, email in sorted(org["admin_of"].items())}
    export_runs, bodies = http_export(env, by_campaign, 2, tmp)
    export_s = min(export_runs)
    figures["export"] = (
        f"export: all districts as CSV through uvicorn (GET /campaigns/{{id}}/export"
        f"?level=district, one request per campaign, {len(by_campaign)} in all): "
        f"{export_s:.2f} s (best of {len(export_runs)}: "
        f"{', '.join(f'{t:.2f}' for t in export_runs)}) | raw GROUP BY district_id over "
        f"contact_log: {raw_s:.2f} s (best of 2, {len(raw_rows):,} rows) | ratio "
        f"{export_s / raw_s:.2f} "
        f"(targets < {TARGET_EXPORT_S:g} s and < {TARGET_EXPORT_RATIO:g}x)"
    )
    check = _export_check(dsn, bodies, first_day, today, yesterday - timedelta(days=1), night1)
    print(f"export measured; check: {check}")

    # -- the children endpoint, the day after a missed night -------------------------------------
    with psycopg.connect(dsn) as conn:
        pd_id, n_kommuner = conn.execute(
            "SELECT partidistrikt_id, count(*) FROM kommun GROUP BY partidistrikt_id "
            "ORDER BY count(*) DESC, partidistrikt_id LIMIT 1"
        ).fetchone()
    path = f"/campaigns/{campaigns[pd_id]}/progress/partidistrikt/{pd_id}/children"

    def endpoint(state: str) -> str:
        admin = org["admin_of"][pd_id]
        # The ceiling: the same statements straight over psycopg, without HTTP, framework,
        # authentication, ORM or models; half before the requests and half after, so that
        # the machine's drift weighs on both alike.
        statements, found = request_statements(admin, campaigns[pd_id], pd_id, today)
        if found != n_kommuner:
            raise RuntimeError(f"the in-process call found {found} kommuner, not {n_kommuner}")
        half = args.requests // 2
        raw = replayed_latencies(dsn, statements, args.warmup, half)
        latencies, body = endpoint_latencies(
            database_url, path, tokens[admin], args.warmup, args.requests, tmp
        )
        raw += replayed_latencies(dsn, statements, args.warmup, args.requests - half)
        if len(body["children"]) != n_kommuner:
            raise RuntimeError(f"{path}: {len(body['children'])} children, not {n_kommuner}")
        p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
        raw50, raw99 = percentile(raw, 0.5) * 1000, percentile(raw, 0.99) * 1000
        print(f"endpoint measured {state}: {len(latencies)} requests")
        return (
            f"GET {path} ({n_kommuner} kommuner, {state}): p50 {p50:.1f} ms, p99 {p99:.1f} ms "
            f"over {len(latencies)} sequential requests through uvicorn | raw: its "
            f"{len(statements)} SQL statements replayed over psycopg (authentication's aside): "
            f"p50 {raw50:.1f} ms, p99 {raw99:.1f} ms | ratio p50 {p50 / raw50:.2f}, "
            f"p99 {p99 / raw99:.2f}"
        )

    # Today's windows are the measured night's to make: until then requests read the
    # snapshots through the day before yesterday and yesterday's logs live.
    missed = endpoint("the day after a missed night: no windows, two days live")

    # -- the nightly run ------------------------------------------------------------------------
    rss_before = _rss_mb()
    night = measured_nightly(settings, night2)
    rss_peak = _rss_mb()
    result, per_email = night["result"], night["per_email"]
    sent = result.get("emails", {}).get("sent", 0) if isinstance(result.get("emails"), dict) else 0
    role_lines, scopes_line = _role_lines(per_email, _scopes(dsn))
    counted = [n for n, _, _ in per_email.values()]
    figures["nightly"] = (
        f"nightly run: {night['seconds']:.1f} s (target < {TARGET_NIGHTLY_S} s) for nights "
        f"{result.get('nights')} and {sent:,} emails sent = {sent / night['seconds']:.1f} "
        f"emails/s; SQL statements per email {statistics.mean(counted) if counted else 0:.1f}"
        f" ({scopes_line}; target: independent of the scope); peak RSS {rss_peak:.0f} MB "
        f"(target < {TARGET_RSS_MB} MB; {rss_before:.0f} MB before the run)"
    )
    night["role_lines"] = role_lines

    # -- the children endpoint, in a day's evening after its night ------------------------------
    # Today's logs, as many as yesterday's, on top of the windows the night made.
    added = add_new_records(dsn, args.new_records, today, tz)
    print(f"added {args.new_records:,} records: {added['today']:,} of today")
    figures["endpoint"] = (
        f"endpoint: {endpoint('after the night: its windows plus a day of logs live')} "
        f"(target p99 < {TARGET_P99_MS} ms)"
    )
    figures["endpoint"] += f"\n    endpoint {missed}"
    return {"figures": figures, "night": night}


def main() -> None:
    if sys.argv[1:2] == ["--smtp-sink"]:
        smtp_sink(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=5_000_000, help="contact logs to load")
    parser.add_argument("--new-records", type=int, default=50_000, help="logs before the night")
    parser.add_argument("--leads", type=int, default=LEADS, help="leads (who get the email)")
    parser.add_argument("--requests", type=int, default=300, help="timed endpoint requests")
    parser.add_argument("--warmup", type=int, default=30, help="untimed requests first")
    parser.add_argument("--keep", action="store_true", help="keep the database (for digging)")
    args = parser.parse_args()

    started = time.perf_counter()
    with (
        throwaway_database(prefix="knacka_bench", keep=args.keep) as database_url,
        tempfile.TemporaryDirectory() as tmp,
        smtp_server() as (smtp_port, received),
    ):
        try:
            done = bench(args, database_url, smtp_port, Path(tmp))
        finally:
            with contextlib.suppress(Exception):
                from api import db

                db.get_engine().dispose()
    night, figures = done["night"], done["figures"]
    figures["nightly"] += (
        f"; the SMTP server received {received.get('messages', 0):,} messages over "
        f"{received.get('connections', 0):,} connections"
    )
    print()
    for name in ("nightly", "export", "endpoint"):
        print(figures[name])
    print(
        f"    nightly details: {night['statements']:,} statements ({night['sql_seconds']:.1f} s)"
        f" in the whole run; result "
        f"{night['result']}; {received.get('bytes', 0) / 1e6:.1f} MB received by SMTP"
    )
    print("\n".join(night["role_lines"]))
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
