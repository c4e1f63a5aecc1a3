#!/usr/bin/env python3
"""Benchmark: logging contacts through the API on PostgreSQL, against raw psycopg ceilings.

Creates a fresh PostgreSQL database, migrates it, loads the demo and issues a device token
per demo volunteer, then measures in the same run:

- the ceilings, with psycopg straight into ``bench_raw`` (a copy of ``contact_log`` with
  its defaults, checks, indexes and foreign keys): single-row INSERT + COMMIT over as many
  connections as there are clients, and one multi-row insert of ``--raw-rows`` rows in a
  single transaction;
- the API under uvicorn (``--workers`` processes, uvloop + httptools), loaded from a second
  process over 127.0.0.1: ``POST /contacts`` from ``--clients`` concurrent clients, then
  ``POST /contacts/batch`` with ``--batch-size`` records per request from
  ``--batch-clients`` clients, each for ``--duration`` seconds after a short warm-up.

For each phase it also reports the CPU time spent per record by the load generator, the
uvicorn processes and the PostgreSQL backends of the benchmark's database, and how many
PostgreSQL sessions were opened (connection churn).

Usage: python scripts/bench_ingest.py [--duration 10] [--clients 50] [--batch-size 500]
"""

import argparse
import asyncio
import contextlib
import io
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get(
    "KNACKA_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CLK_TCK = os.sysconf("SC_CLK_TCK")
COLUMNS = (
    "client_uuid, body_hash, user_id, district_id, kommun_id, forening_id, kind, outcome, "
    "quantity, conversations, new_member, occurred_at, received_at"
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


class CpuMeter:
    """CPU seconds used between ``start`` and ``stop`` by this process, the server processes
    and the database's backends, plus the PostgreSQL sessions opened meanwhile."""

    def __init__(self, dsn: str, dbname: str, server_pid: int | None) -> None:
        self.dsn, self.dbname, self.server_pid = dsn, dbname, server_pid

    def _sample(self) -> dict[str, float]:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            sessions = conn.execute(
                "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()[0]
            conn.execute("SELECT pg_stat_clear_snapshot()")
        server = self.server_pid
        return {
            "client": _self_cpu(),
            "server": sum(map(_proc_cpu, _tree(server))) if server else 0.0,
            "backends": {pid: _proc_cpu(pid) for pid in _backends(self.dbname)},
            "sessions": sessions,
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
            "sessions": end["sessions"] - self._start["sessions"] - 1,  # the meter's own
        }


def _cpu_line(cpu: dict[str, float], records: int, client_name: str) -> str:
    per = 1000 / max(records, 1)
    busy = (cpu["client"] + cpu["server"] + cpu["postgres"]) / cpu["wall"]
    return (
        f"    CPU ms/record: {client_name} {cpu['client'] * per:.2f}, "
        f"uvicorn {cpu['server'] * per:.2f}, postgres backends {cpu['postgres'] * per:.2f} "
        f"(together {busy:.2f} of {os.cpu_count()} cores); "
        f"{cpu['sessions']:,} new PostgreSQL sessions"
    )


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 1000) - 1]


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


async def _phase(cfg: dict, *, batch: bool) -> dict:
    """Run one phase: clients post until warm-up + duration; count what ends in the window."""
    import httpx

    clients = cfg["batch_clients"] if batch else cfg["clients"]
    size = cfg["batch_size"]
    users = cfg["users"]
    meter = CpuMeter(cfg["dsn"], cfg["dbname"], cfg["server_pid"])
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    latencies: list[float] = []
    state = {"records": 0, "errors": 0, "error_sample": None}
    start = time.perf_counter()
    t0 = start + cfg["warmup"]
    t1 = t0 + cfg["duration"]

    async def client(i: int, http: httpx.AsyncClient) -> None:
        token, code = users[i % len(users)]
        headers = {"Authorization": f"Bearer {token}"}
        if batch:
            headers["Content-Type"] = "application/json"
        while (began := time.perf_counter()) < t1:
            if batch:
                body = json.dumps({"records": [_record(code) for _ in range(size)]})
                request = http.post("/contacts/batch", content=body, headers=headers)
            else:
                request = http.post("/contacts", json=_record(code), headers=headers)
            try:
                response = await request
                if batch:
                    ok = response.status_code == 200 and response.json()["created"] == size
                else:
                    ok = response.status_code == 201
                error = None if ok else f"{response.status_code} {response.text[:300]}"
            except httpx.HTTPError as exc:
                ok, error = False, f"{type(exc).__name__}: {exc}"
            ended = time.perf_counter()
            if t0 <= ended <= t1:
                latencies.append(ended - began)
                if ok:
                    state["records"] += size if batch else 1
                else:
                    state["errors"] += 1
                    state["error_sample"] = state["error_sample"] or error

    async def window() -> None:
        await asyncio.sleep(t0 - time.perf_counter())
        meter.start()
        await asyncio.sleep(t1 - time.perf_counter())
        state["cpu"] = meter.stop()

    async with httpx.AsyncClient(base_url=cfg["base_url"], limits=limits, timeout=60) as http:
        await asyncio.gather(window(), *(client(i, http) for i in range(clients)))
    return {
        "records": state["records"],
        "rate": state["records"] / cfg["duration"],
        "requests": len(latencies),
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
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
    return (u, u.hex * 2, *user, "door", "conversation", 1, 1, False, now, now)


def create_raw_table(conn) -> None:  # noqa: ANN001
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


def raw_single(dsn: str, users: list[tuple], threads: int, warmup: float, duration: float):
    """Rows/s of INSERT + COMMIT per row from ``threads`` connections, the latencies in the
    window, the errors and all rows inserted."""
    import psycopg

    sql = f"INSERT INTO bench_raw ({COLUMNS}) VALUES ({', '.join(['%s'] * N_COLUMNS)})"
    conns = [psycopg.connect(dsn) for _ in range(threads)]
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    counts = [0] * threads  # rows inserted, warm-up included
    t0 = time.perf_counter() + warmup
    t1 = t0 + duration

    def work(i: int) -> None:
        conn, user = conns[i], users[i % len(users)]
        while (began := time.perf_counter()) < t1:
            try:
                conn.execute(sql, _raw_row(user), prepare=True)
                conn.commit()
                counts[i] += 1
            except psycopg.Error:
                conn.rollback()
                errors[i] += 1
            ended = time.perf_counter()
            if t0 <= ended <= t1:
                latencies[i].append(ended - began)

    try:
        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        for conn in conns:
            conn.close()
    flat = [x for lst in latencies for x in lst]
    return len(flat) / duration, flat, sum(errors), sum(counts)


def raw_bulk(dsn: str, users: list[tuple], n: int, per_statement: int = 1000) -> float:
    """Rows/s of one transaction inserting ``n`` rows as multi-row VALUES statements."""
    import psycopg

    rows = [_raw_row(users[i % len(users)]) for i in range(n)]
    one = f"({', '.join(['%s'] * N_COLUMNS)})"
    with psycopg.connect(dsn) as conn:
        start = time.perf_counter()
        with conn.transaction():
            for i in range(0, n, per_statement):
                chunk = rows[i : i + per_statement]
                params = [v for row in chunk for v in row]
                sql = f"INSERT INTO bench_raw ({COLUMNS}) VALUES {', '.join([one] * len(chunk))}"
                conn.execute(sql, params)
        return n / (time.perf_counter() - start)


# -- orchestration --------------------------------------------------------------------------


def _run(args: list[str], env: dict, timeout: float) -> str:
    out = subprocess.run(
        args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args[1:])} failed:\n{out.stderr[-2000:]}")
    return out.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_health(base_url: str, server: subprocess.Popen, log: Path, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {server.returncode}:\n{log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"uvicorn did not answer /health in {timeout:.0f} s:\n{log.read_text()}")


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)


def bench(args: argparse.Namespace, dbname: str, tmp: Path) -> None:
    import httpx
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(PG_ADMIN).set(database=dbname)
    dsn = url.set(drivername="postgresql").render_as_string(False)
    env = {
        **os.environ,
        "DATABASE_URL": url.set(drivername="postgresql+psycopg").render_as_string(False),
    }
    py = sys.executable
    started = time.perf_counter()
    _run([py, "-m", "api.cli", "db", "upgrade"], env, timeout=60)
    _run([py, "-m", "api.cli", "load-demo"], env, timeout=60)

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
    tokens = json.loads(
        _run([py, __file__, "--issue-tokens", *(v[0] for v in volunteers)], env, timeout=60)
    )
    users = [(tokens[v[0]], v[1]) for v in volunteers]
    fk_values = [v[2:] for v in volunteers]  # user, district, kommun, förening ids
    print(
        f"database {dbname}: demo loaded, {len(users)} volunteers with tokens "
        f"({time.perf_counter() - started:.1f} s)"
    )

    # The ceilings first, while no server holds connections.
    meter = CpuMeter(dsn, dbname, None)
    meter.start()
    raw_rate, raw_lat, raw_errors, raw_rows = raw_single(
        dsn, fk_values, args.clients, args.warmup, args.duration
    )
    raw_cpu = meter.stop()
    bulk_rate = raw_bulk(dsn, fk_values, args.raw_rows)

    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = tmp / "uvicorn.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [
                *(py, "-m", "uvicorn", "api.main:create_app", "--factory"),
                *("--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers)),
                *("--loop", "uvloop", "--http", "httptools", "--log-level", "warning"),
            ],
            env=env,
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_health(base_url, server, log, timeout=30)
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
        }
        out = subprocess.run(
            [py, __file__, "--load"],
            input=json.dumps(config),
            capture_output=True,
            text=True,
            timeout=2 * (args.warmup + args.duration) + 60,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"the load generator failed:\n{out.stderr[-3000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        _stop(server)
    server_log = log.read_text().strip()

    single, batch = result["single"], result["batch"]
    print(
        f"single-record API: {single['rate']:,.0f} records/s, p50 {single['p50_ms']:.1f} ms, "
        f"p99 {single['p99_ms']:.1f} ms ({single['errors']} errors) | "
        f"raw single-row INSERT+COMMIT x{args.clients} conns: {raw_rate:,.0f} rows/s | "
        f"ratio {single['rate'] / raw_rate:.2f} (target >= 0.5, p99 < 50 ms)"
    )
    print(_cpu_line(single["cpu"], single["records"], "load generator"))
    print(
        f"    raw INSERT+COMMIT latency: p50 {_percentile(raw_lat, 0.5) * 1000:.1f} ms, "
        f"p99 {_percentile(raw_lat, 0.99) * 1000:.1f} ms ({raw_errors} errors)"
    )
    print(_cpu_line(raw_cpu, raw_rows, "psycopg threads"))
    print(
        f"batch API: {batch['rate']:,.0f} records/s ({args.batch_clients} clients x "
        f"{args.batch_size} records, p50 {batch['p50_ms']:.0f} ms per request, "
        f"{batch['errors']} errors) | raw multi-row insert in one transaction: "
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
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--issue-tokens", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        load_main()
        return
    if args.issue_tokens:
        issue_tokens_main(args.issue_tokens)
        return

    import psycopg
    from sqlalchemy.engine import make_url

    admin_url = make_url(PG_ADMIN).set(drivername="postgresql").render_as_string(False)
    dbname = f"knacka_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    try:
        admin.execute(f'CREATE DATABASE "{dbname}"')
        with tempfile.TemporaryDirectory() as tmp:
            bench(args, dbname, Path(tmp))
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.close()


if __name__ == "__main__":
    main()
