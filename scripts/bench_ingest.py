#!/usr/bin/env python3
"""Benchmark: logging contacts through the API on PostgreSQL, against raw psycopg ceilings.

Creates a fresh PostgreSQL database, migrates it, loads the demo and issues a device token
per demo volunteer, then measures in the same run:

- the ceilings, with psycopg straight into ``bench_raw`` (a copy of ``contact_log`` with
  its defaults, checks, indexes and foreign keys): single-row INSERT + COMMIT over as many
  connections as there are clients, and ``--raw-rows`` rows inserted with one pipelined
  ``executemany`` in a single transaction;
- the API under uvicorn (``--workers`` processes, uvloop + httptools), loaded from a second
  process over 127.0.0.1: ``POST /contacts`` from ``--clients`` concurrent clients, then
  ``POST /contacts/batch`` with ``--batch-size`` records per request from
  ``--batch-clients`` clients, each for ``--duration`` seconds after a short warm-up.

For each phase it also reports the CPU time spent per record by the load generator, the
uvicorn processes and the PostgreSQL backends of the benchmark's database, how busy the
whole machine was (other work on it skews the figures), how many PostgreSQL sessions were
opened (connection churn) and how many transactions committed per record (below 1 where
the API groups concurrent single records into one statement). The load generator speaks
HTTP/1.1 over asyncio streams, one keep-alive connection per client, so that it takes
little of the CPU the server needs; ``--http-client httpx`` uses one shared
httpx.AsyncClient pool instead.

Usage: python scripts/bench_ingest.py [--duration 10] [--clients 50] [--batch-size 500]
"""

import argparse
import asyncio
import contextlib
import io
import json
import os
import resource
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.testing import (  # noqa: E402  (the repository is on the path)
    TUNED,
    LiveServer,
    knacka_env,
    load_demo_database,
    percentile,
    run,
    throwaway_database,
)

CLK_TCK = os.sysconf("SC_CLK_TCK")
# The columns the API's insert fills (api.contacts.records.COLUMNS).
COLUMNS = (
    "client_uuid, body_hash, user_id, district_id, kommun_id, forening_id, kind, outcome, "
    "quantity, conversations, new_member, occurred_at, day, received_at, changed_at"
)
N_COLUMNS = COLUMNS.count(",") + 1


# -- CPU accounting from /proc -----------------------------------------------------------------


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _tree(root: int) -> list[int]:
    """``root`` and its descendants (uvicorn's master and its worker processes)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def _backends(dbname: str) -> list[int]:
    """PostgreSQL backends connected to ``dbname`` (by their process title)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if title.startswith("postgres: ") and f" {dbname} " in title:
                    pids.append(int(entry.name))
    return pids


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine_cpu() -> float:
    """CPU seconds the whole machine spent busy (not idle or waiting for I/O)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK


class CpuMeter:
    """CPU seconds used between ``start`` and ``stop`` by this process, the server processes,
    the database's backends (those alive at ``stop``) and the whole machine, and the
    PostgreSQL sessions opened meanwhile."""

    def __init__(self, dsn: str, dbname: str, server_pid: int | None) -> None:
        self.dsn, self.dbname, self.server_pid = dsn, dbname, server_pid

    def _sample(self) -> dict[str, float]:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            sessions, commits = conn.execute(
                "SELECT sessions, xact_commit FROM pg_stat_database "
                "WHERE datname = current_database()"
            ).fetchone()
            conn.execute("SELECT pg_stat_clear_snapshot()")
        server = self.server_pid
        return {
            "client": _self_cpu(),
            "server": sum(map(_proc_cpu, _tree(server))) if server else 0.0,
            "backends": {pid: _proc_cpu(pid) for pid in _backends(self.dbname)},
            "sessions": sessions,
            "commits": commits,
            "machine": _machine_cpu(),
        }

    def start(self) -> None:
        self._start, self._t0 = self._sample(), time.perf_counter()

    def stop(self) -> dict[str, float]:
        end, wall = self._sample(), time.perf_counter() - self._t0
        a, b = self._start["backends"], end["backends"]
        # Backends that ended meanwhile are lost; new ones count from zero.
        postgres = sum(cpu - a.get(pid, 0.0) for pid, cpu in b.items())
        return {
            "wall": wall,
            "client": end["client"] - self._start["client"],
            "server": end["server"] - self._start["server"],
            "postgres": postgres,
            "machine": end["machine"] - self._start["machine"],
            "sessions": end["sessions"] - self._start["sessions"] - 1,  # the meter's own
            "commits": end["commits"] - self._start["commits"] - 1,
        }


def _cpu_line(cpu: dict[str, float], records: int, client_name: str) -> str:
    per = 1000 / max(records, 1)
    ours = (cpu["client"] + cpu["server"] + cpu["postgres"]) / cpu["wall"]
    return (
        f"    CPU ms/record: {client_name} {cpu['client'] * per:.2f}, "
        f"uvicorn {cpu['server'] * per:.2f}, postgres backends {cpu['postgres'] * per:.2f}; "
        f"cores busy: these {ours:.2f}, whole machine {cpu['machine'] / cpu['wall']:.2f} "
        f"of {os.cpu_count()}; {cpu['sessions']:,} new PostgreSQL sessions; "
        f"{cpu['commits'] / max(records, 1):.2f} PostgreSQL commits per record"
    )


# -- the load generator (a separate process) --------------------------------------------------


def _record(code: str) -> dict:
    return {
        "client_uuid": str(uuid.uuid4()),
        "kind": "door",
        "outcome": "conversation",
        "district_code": code,
        "occurred_at": datetime.now(UTC).astimezone().isoformat(),
        "topics": ["jobs"],
    }


class RawConnection:
    """One HTTP/1.1 keep-alive connection over asyncio streams. It costs the load generator
    ~0.2 ms of CPU per request where a shared httpx.AsyncClient pool of 50 connections costs
    several ms, CPU that the server under test would otherwise not get on a small machine."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = "".join(
            [
                f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n",
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n",
                *(f"{k}: {v}\r\n" for k, v in headers.items()),
                "\r\n",
            ]
        )
        try:
            self.writer.write(head.encode() + body)
            lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            fields = {
                k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
            }
            if "content-length" not in fields:
                raise OSError(f"no Content-Length in the response: {lines[0]}")
            data = await self.reader.readexactly(int(fields["content-length"]))
        except BaseException:
            self.close()
            raise
        if fields.get("connection", "").lower() == "close":
            self.close()
        return int(lines[0].split(" ", 2)[1]), data


async def _phase(cfg: dict, *, batch: bool) -> dict:
    """Run one phase: clients post until warm-up + duration; count what ends in the window."""
    clients = cfg["batch_clients"] if batch else cfg["clients"]
    size = cfg["batch_size"] if batch else 1
    path = "/contacts/batch" if batch else "/contacts"
    users = cfg["users"]
    meter = CpuMeter(cfg["dsn"], cfg["dbname"], cfg["server_pid"])
    latencies: list[float] = []
    state = {"records": 0, "errors": 0, "error_sample": None}
    t0 = time.perf_counter() + cfg["warmup"]
    t1 = t0 + cfg["duration"]

    async def client(i: int, post) -> None:
        token, code = users[i % len(users)]
        headers = {"Authorization": f"Bearer {token}"}
        while (began := time.perf_counter()) < t1:
            records = [_record(code) for _ in range(size)]
            payload = {"records": records} if batch else records[0]
            try:
                async with asyncio.timeout(60):
                    status, data = await post(path, json.dumps(payload).encode(), headers)
                if batch:
                    ok = status == 200 and json.loads(data)["created"] == size
                else:
                    ok = status == 201
                error = None if ok else f"{status} {data[:300].decode(errors='replace')}"
            except Exception as exc:
                ok, error = False, f"{type(exc).__name__}: {exc}"
            ended = time.perf_counter()
            if t0 <= ended <= t1:
                latencies.append(ended - began)
                if ok:
                    state["records"] += size
                else:
                    state["errors"] += 1
                    state["error_sample"] = state["error_sample"] or error

    async def window() -> None:
        await asyncio.sleep(t0 - time.perf_counter())
        meter.start()
        await asyncio.sleep(t1 - time.perf_counter())
        state["cpu"] = meter.stop()

    if cfg["http_client"] == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=cfg["base_url"], limits=limits) as http:

            async def post(path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
                headers = {**headers, "Content-Type": "application/json"}
                response = await http.post(path, content=body, headers=headers)
                return response.status_code, response.content

            await asyncio.gather(window(), *(client(i, post) for i in range(clients)))
    else:
        host, port = cfg["base_url"].removeprefix("http://").split(":")
        conns = [RawConnection(host, int(port)) for _ in range(clients)]
        try:
            await asyncio.gather(window(), *(client(i, c.post) for i, c in enumerate(conns)))
        finally:
            for conn in conns:
                conn.close()
    return {
        "records": state["records"],
        "rate": state["records"] / cfg["duration"],
        "requests": len(latencies),
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "errors": state["errors"],
        "error_sample": state["error_sample"],
        "cpu": state["cpu"],
    }


def load_main() -> None:
    """Runs in its own process: both API phases, printing their results as JSON."""
    import uvloop

    cfg = json.load(sys.stdin)
    single = uvloop.run(_phase(cfg, batch=False))
    batch = uvloop.run(_phase(cfg, batch=True))
    print(json.dumps({"single": single, "batch": batch}))


def issue_tokens_main(emails: list[str]) -> None:
    """Runs in its own process: ``knacka issue-token`` for each email, as JSON."""
    from api.cli import app

    tokens = {}
    for email in emails:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            app(["issue-token", email, "--device", "bench_ingest"], standalone_mode=False)
        tokens[email] = out.getvalue().strip()
    print(json.dumps(tokens))


# -- the raw ceilings -----------------------------------------------------------------------


def _raw_row(user: tuple) -> tuple:
    now = datetime.now(UTC)
    u = uuid.uuid4()
    return (u, u.hex * 2, *user, "door", "conversation", 1, 1, False, now, now.date(), now, now)


def create_raw_table(conn) -> None:
    conn.execute(
        "CREATE TABLE bench_raw (LIKE contact_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
        "INCLUDING INDEXES)"
    )
    # LIKE copies no foreign keys; the API's inserts check four, so the ceiling does too.
    fks = conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'contact_log'::regclass AND contype = 'f'"
    ).fetchall()
    for (definition,) in fks:
        conn.execute(f"ALTER TABLE bench_raw ADD {definition}")


def raw_single(
    dsn: str, users: list[tuple], threads: int, warmup: float, duration: float, meter: CpuMeter
):
    """Rows/s of INSERT + COMMIT per row from ``threads`` connections, with the latencies and
    the CPU used in the measured window, and the errors."""
    import psycopg

    sql = f"INSERT INTO bench_raw ({COLUMNS}) VALUES ({', '.join(['%s'] * N_COLUMNS)})"
    conns: list[psycopg.Connection] = []
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    t0 = t1 = 0.0  # the window, set once the connections are open

    def work(i: int) -> None:
        conn, user = conns[i], users[i % len(users)]
        while (began := time.perf_counter()) < t1:
            try:
                conn.execute(sql, _raw_row(user), prepare=True)
                conn.commit()
            except psycopg.Error:
                conn.rollback()
                errors[i] += 1
            ended = time.perf_counter()
            if t0 <= ended <= t1:
                latencies[i].append(ended - began)

    try:
        conns.extend(psycopg.connect(dsn) for _ in range(threads))
        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        t0 = time.perf_counter() + warmup
        t1 = t0 + duration
        for w in workers:
            w.start()
        time.sleep(max(0.0, t0 - time.perf_counter()))
        meter.start()
        time.sleep(max(0.0, t1 - time.perf_counter()))
        cpu = meter.stop()
        for w in workers:
            w.join()
    finally:
        for conn in conns:
            conn.close()
    flat = [x for lst in latencies for x in lst]
    return len(flat) / duration, flat, sum(errors), cpu


def raw_bulk(dsn: str, users: list[tuple], n: int) -> float:
    """Rows/s of one transaction inserting ``n`` rows with executemany (pipelined, one
    prepared statement). Multi-row VALUES, unnest() arrays and even COPY measured the same
    or slower here: the table's indexes and foreign keys are the limit, not the protocol."""
    import psycopg

    rows = [_raw_row(users[i % len(users)]) for i in range(n)]
    sql = f"INSERT INTO bench_raw ({COLUMNS}) VALUES ({', '.join(['%s'] * N_COLUMNS)})"
    with psycopg.connect(dsn) as conn:
        start = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(sql, rows)
        return n / (time.perf_counter() - start)


# -- orchestration --------------------------------------------------------------------------


def bench(args: argparse.Namespace, database_url: str, tmp: Path) -> None:
    import httpx
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    dbname, dsn = url.database, url.set(drivername="postgresql").render_as_string(False)
    py = sys.executable
    started = time.perf_counter()
    load_demo_database(database_url)

    # Each volunteer logs in one district of its förening's kommun.
    with psycopg.connect(dsn, autocommit=True) as conn:
        volunteers = conn.execute(
            """
            SELECT u.email, d.code, u.id, d.id, d.kommun_id, f.id
            FROM app_user u
            JOIN forening f ON f.id = u.unit_id
            JOIN LATERAL (
                SELECT id, code, kommun_id FROM district
                WHERE kommun_id = f.kommun_id ORDER BY code OFFSET u.id % 3 LIMIT 1
            ) d ON true
            WHERE u.role = 'volunteer' AND u.unit_kind = 'forening' AND u.is_active
            ORDER BY u.email
            """
        ).fetchall()
        create_raw_table(conn)
    if not volunteers:
        raise RuntimeError("the demo has no volunteers")
    volunteers = volunteers[: max(args.clients, args.batch_clients)]
    issuing = [py, __file__, "--issue-tokens", *(v[0] for v in volunteers)]
    tokens = json.loads(run(issuing, env=knacka_env(database_url), timeout=60).stdout)
    users = [(tokens[v[0]], v[1]) for v in volunteers]
    fk_values = [v[2:] for v in volunteers]  # user, district, kommun, förening ids
    print(
        f"database {dbname}: demo loaded, {len(users)} volunteers with tokens "
        f"({time.perf_counter() - started:.1f} s)"
    )

    # The ceilings first, while no server holds connections.
    raw_rate, raw_lat, raw_errors, raw_cpu = raw_single(
        dsn, fk_values, args.clients, args.warmup, args.duration, CpuMeter(dsn, dbname, None)
    )
    bulk_rate = raw_bulk(dsn, fk_values, args.raw_rows)

    server = LiveServer(
        database_url, tmp / "uvicorn.log", app=args.app, workers=args.workers, options=TUNED
    )
    with server:
        base_url = server.base_url
        # Every worker answers /health once before the clock starts.
        for _ in range(4 * args.workers):
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{base_url}/health", timeout=5)
        print(f"uvicorn pid {server.pid} on {base_url}, {args.workers} workers")
        config = {
            "base_url": base_url,
            "users": users,
            "clients": args.clients,
            "batch_clients": args.batch_clients,
            "batch_size": args.batch_size,
            "duration": args.duration,
            "warmup": args.warmup,
            "dsn": dsn,
            "dbname": dbname,
            "server_pid": server.pid,
            "http_client": args.http_client,
        }
        out = run(
            [py, __file__, "--load"],
            input=json.dumps(config),
            timeout=2 * (args.warmup + args.duration) + 60,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
    server_log = server.log().strip()

    single, batch = result["single"], result["batch"]
    print(
        f"single-record API: {single['rate']:,.0f} records/s, p50 {single['p50_ms']:.1f} ms, "
        f"p99 {single['p99_ms']:.1f} ms ({single['errors']} errors) | "
        f"raw single-row INSERT+COMMIT x{args.clients} conns: {raw_rate:,.0f} rows/s | "
        f"ratio {single['rate'] / raw_rate:.2f} (target >= 0.5, p99 < 50 ms)"
    )
    print(_cpu_line(single["cpu"], single["records"], "load generator"))
    print(
        f"    raw INSERT+COMMIT latency: p50 {percentile(raw_lat, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(raw_lat, 0.99) * 1000:.1f} ms ({raw_errors} errors)"
    )
    print(_cpu_line(raw_cpu, len(raw_lat), "psycopg threads"))
    print(
        f"batch API: {batch['rate']:,.0f} records/s ({args.batch_clients} clients x "
        f"{args.batch_size} records, p50 {batch['p50_ms']:.0f} ms per request, "
        f"{batch['errors']} errors) | raw multi-row insert (executemany) in one transaction: "
        f"{bulk_rate:,.0f} rows/s ({args.raw_rows:,} rows) | "
        f"ratio {batch['rate'] / bulk_rate:.2f} (target >= 0.3)"
    )
    print(_cpu_line(batch["cpu"], batch["records"], "load generator"))
    for name, phase in (("single", single), ("batch", batch)):
        if phase["error_sample"]:
            print(f"{name}: first error: {phase['error_sample']}")
    if server_log:
        print(f"uvicorn log (last lines):\n{server_log[-2000:]}")
    print(f"total {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each phase")
    parser.add_argument("--clients", type=int, default=50, help="single-record clients")
    parser.add_argument("--batch-size", type=int, default=500, help="records per batch")
    parser.add_argument("--batch-clients", type=int, default=4, help="batch clients")
    parser.add_argument("--raw-rows", type=int, default=50_000, help="rows of the bulk ceiling")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers")
    parser.add_argument(
        "--app", default="api.main:create_app", help="the app factory uvicorn serves"
    )
    parser.add_argument(
        "--http-client",
        choices=["raw", "httpx"],
        default="raw",
        help="load generator: asyncio streams, one keep-alive connection per client "
        "(default), or one shared httpx.AsyncClient pool",
    )
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--issue-tokens", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        load_main()
        return
    if args.issue_tokens:
        issue_tokens_main(args.issue_tokens)
        return

    with (
        throwaway_database(prefix="knacka_bench") as database_url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        bench(args, database_url, Path(tmp))


if __name__ == "__main__":
    main()
