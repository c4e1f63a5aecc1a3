"""PostgreSQL restarted under load: client threads log contacts (single records and batches)
against a uvicorn server, and the test's own PostgreSQL instance is restarted in the middle
(``pg_ctl restart -m fast``). The phones' rule holds: a record that was not acknowledged is
sent again under the same client_uuid until it is.

What must hold: every acknowledged record is stored exactly once, every record is eventually
acknowledged, and the same server process answers again once the database is back (it is not
restarted). The failed requests during the restart are counted and printed (see with ``-s``).

The PostgreSQL instance is a throwaway of this module's own (initdb into a temporary folder,
its own port and socket folder); the machine's shared server is never touched.
"""

import glob
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from api.auth.service import issue_device_token
from api.db import make_engine, unit_of_work
from api.demo import load_demo
from api.migrate import upgrade
from api.models import ContactLog, User, utcnow
from api.settings import Settings
from api.testing import LiveServer, free_port
from tests.conftest import REQUIRE_POSTGRES

VOLUNTEER = "volontar001@example.org"  # a volunteer of S-föreningen Hammarstrand, kommun 2303
DISTRICTS = ["23030101", "23030102", "23030103", "23030104"]
THREADS = 4
ROUNDS = 40  # per thread: every other round one record, else a batch
BATCH = 10
PAUSE_SECONDS = 0.05  # between rounds, so that the load spans the restart
RETRY_SECONDS = 0.2
REQUEST_TIMEOUT = httpx.Timeout(10.0, connect=2.0)
RUN_SECONDS = 60.0  # hard bound for the client threads
PG_COMMAND_TIMEOUT = 60.0


# -- a PostgreSQL instance of the test's own --------------------------------------------------


def _pg_bindir() -> Path | None:
    """The newest installed PostgreSQL server binaries that include initdb and pg_ctl."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).resolve().parent if which else None


@dataclass
class PgInstance:
    bindir: Path
    folder: Path  # data, socket folder and log
    port: int
    as_user: list[str]  # runuser prefix when we are root: initdb and postgres refuse root

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "postgres.log"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [*self.as_user, *args],
            capture_output=True,
            text=True,
            timeout=PG_COMMAND_TIMEOUT,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}\n"
                f"{self.log_tail()}"
            )
        return done.stdout

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def pg_ctl(self, *args: str) -> str:
        # Loopback only, a socket folder of our own; fsync off because nothing here survives
        # an OS crash anyway, and a fast shutdown writes a checkpoint whatever fsync says.
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=100"
        )
        return self.run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "30",
            *args,
        )


@pytest.fixture(scope="module")
def pg() -> Iterator[PgInstance]:
    """initdb, start on a free port, yield; stopped and deleted at the end."""
    bindir = _pg_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        message = "initdb/pg_ctl not installed (PostgreSQL server binaries)"
        if REQUIRE_POSTGRES:
            pytest.fail(message + " and KNACKA_REQUIRE_POSTGRES=1", pytrace=False)
        pytest.skip(message)
    # Not under pytest's tmp_path: its folders are private to root, and the server runs as
    # the postgres user when we are root.
    folder = Path(tempfile.mkdtemp(prefix="knacka-pg-restart-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, user="postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    instance = PgInstance(bindir=bindir, folder=folder, port=free_port(), as_user=as_user)
    try:
        instance.run(
            str(bindir / "initdb"),
            "-D",
            str(instance.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )
        instance.pg_ctl("start")
        with psycopg.connect(
            f"host=127.0.0.1 port={instance.port} user=postgres dbname=postgres",
            autocommit=True,
        ) as conn:
            conn.execute("CREATE DATABASE knacka")
        yield instance
    finally:
        if (instance.data / "postmaster.pid").exists():
            subprocess.run(
                [
                    *as_user,
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(instance.data),
                    "stop",
                    "-m",
                    "immediate",
                ],
                capture_output=True,
                timeout=PG_COMMAND_TIMEOUT,
            )
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Org:
    url: str
    tokens: list[str]  # one device of VOLUNTEER per client thread


@pytest.fixture(scope="module")
def org(pg: PgInstance) -> Org:
    """Migrations and the demo in the instance's database; a device token per thread."""
    url = pg.url("knacka")
    upgrade(url)
    engine = make_engine(url)
    try:
        with Session(engine, expire_on_commit=False) as session, unit_of_work(session):
            load_demo(session=session, districts_path=Settings(_env_file=None).demo_districts_path)
            session.flush()
            user = session.execute(select(User).where(User.email == VOLUNTEER)).scalar_one()
            tokens = [
                issue_device_token(session=session, user=user, name=f"phone {i}", now=utcnow())[0]
                for i in range(THREADS)
            ]
    finally:
        engine.dispose()
    return Org(url=url, tokens=tokens)


# -- the phones -------------------------------------------------------------------------------


def record(n: int) -> dict:
    return {
        "client_uuid": str(uuid.uuid4()),
        "kind": "door",
        "outcome": "conversation" if n % 3 else "not_home",
        "district_code": DISTRICTS[n % len(DISTRICTS)],
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=n % 50)).isoformat(),
        "topics": ["jobs"] if n % 2 else [],
    }


@dataclass
class Phone:
    """One client thread's log of what it sent and what it was told."""

    acked: dict[str, int] = field(default_factory=dict)  # client_uuid -> id in the answer
    sent: set[str] = field(default_factory=set)
    failures: Counter = field(default_factory=Counter)  # "503", "ReadTimeout", ... -> count
    failure_times: list[float] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # answers that are no failure to retry
    requests: int = 0


def run_phone(base_url: str, token: str, phone: Phone, stop_at: float, seed: int) -> None:
    """ROUNDS rounds, each retried under the same uuids until acknowledged or out of time."""
    with httpx.Client(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=REQUEST_TIMEOUT,
    ) as client:
        for round_no in range(ROUNDS):
            single = round_no % 2 == 0
            records = [
                record(seed * 10_000 + round_no * 100 + i) for i in range(1 if single else BATCH)
            ]
            phone.sent.update(r["client_uuid"] for r in records)
            while time.monotonic() < stop_at:
                phone.requests += 1
                try:
                    if single:
                        response = client.post("/contacts", json=records[0])
                    else:
                        response = client.post("/contacts/batch", json={"records": records})
                except httpx.TransportError as exc:
                    phone.failures[type(exc).__name__] += 1
                    phone.failure_times.append(time.monotonic())
                    time.sleep(RETRY_SECONDS)
                    continue
                if response.status_code >= 500:
                    phone.failures[str(response.status_code)] += 1
                    phone.failure_times.append(time.monotonic())
                    time.sleep(RETRY_SECONDS)
                    continue
                if single and response.status_code in (200, 201):
                    body = response.json()
                    phone.acked[body["client_uuid"]] = body["id"]
                    break
                if not single and response.status_code == 200:
                    results = response.json()["results"]
                    bad = [r for r in results if r["status"] not in ("created", "duplicate")]
                    if bad:
                        phone.unexpected.append(f"batch: {bad[:3]}")
                        return
                    phone.acked.update((r["client_uuid"], r["id"]) for r in results)
                    break
                phone.unexpected.append(f"{response.status_code}: {response.text[:300]}")
                return
            else:
                return  # out of time; what is not acknowledged is reported by the test
            time.sleep(PAUSE_SECONDS)


def stored_counts(url: str, uuids: set[str]) -> dict[str, list[int]]:
    """The contact_log ids stored under each client_uuid, read directly."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(ContactLog.client_uuid, ContactLog.id)).all()
            total, distinct = conn.execute(
                select(func.count(), func.count(func.distinct(ContactLog.client_uuid)))
            ).one()
    finally:
        engine.dispose()
    assert total == distinct, "a client_uuid is stored more than once"
    found: dict[str, list[int]] = {}
    for u, i in rows:
        if str(u) in uuids:
            found.setdefault(str(u), []).append(i)
    return found


def test_postgres_restart_under_load_loses_and_doubles_nothing(
    pg: PgInstance, org: Org, tmp_path: Path
):
    server = LiveServer(org.url, tmp_path / "server.log")
    server.start()
    pid = server.pid
    phones = [Phone() for _ in range(THREADS)]
    restart: dict[str, float] = {}
    try:
        stop_at = time.monotonic() + RUN_SECONDS
        threads = [
            threading.Thread(
                target=run_phone,
                args=(server.base_url, org.tokens[i], phones[i], stop_at, i + 1),
                daemon=True,
            )
            for i in range(THREADS)
        ]
        for t in threads:
            t.start()
        # The restart comes once about a third of the records are acknowledged.
        total = THREADS * (ROUNDS // 2) * (1 + BATCH)
        deadline = time.monotonic() + RUN_SECONDS / 2
        while sum(len(p.acked) for p in phones) < total // 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        acked_before = sum(len(p.acked) for p in phones)
        restart["start"] = time.monotonic()
        pg.pg_ctl("restart", "-m", "fast")
        restart["end"] = time.monotonic()
        for t in threads:
            t.join(timeout=RUN_SECONDS + 15)
        assert not any(t.is_alive() for t in threads), "a client thread did not stop"

        failures = sum((p.failures for p in phones), Counter())
        requests = sum(p.requests for p in phones)
        # A request may fail a moment after pg_ctl returns: its connection broke during the
        # restart and the error surfaces when it is next used.
        window = (restart["start"], restart["end"] + 2.0)
        during = sum(window[0] <= t <= window[1] for p in phones for t in p.failure_times)
        print(
            f"\nPostgreSQL restart took {restart['end'] - restart['start']:.2f}s with "
            f"{acked_before} of {total} records acknowledged before it; {requests} requests "
            f"in all, {during} failed during the restart (up to 2 s after), "
            f"{sum(failures.values()) - during} at other times; by kind: "
            f"{dict(failures) or 'none'}"
        )
        # A database that is away is a 503 (retry), never a 500 (a bug).
        assert not failures.get("500"), f"500s during the restart: {dict(failures)}"
        unexpected = [u for p in phones for u in p.unexpected]
        assert not unexpected, (
            f"answers that are neither an acknowledgement nor a 5xx: {unexpected}"
        )
        assert acked_before < total, "the restart came after the load; nothing was tested"

        acked = {u: i for p in phones for u, i in p.acked.items()}
        sent = set().union(*(p.sent for p in phones))
        stored = stored_counts(org.url, sent)
        doubled = {u: ids for u, ids in stored.items() if len(ids) != 1}
        assert not doubled, f"records stored more than once: {doubled}"
        lost = sorted(set(acked) - set(stored))
        assert not lost, f"{len(lost)} acknowledged records are not stored: {lost[:5]}"
        wrong = {u: (i, stored[u]) for u, i in acked.items() if stored[u] != [i]}
        assert not wrong, f"acknowledgements naming another id than the stored row: {wrong}"
        unacked = sent - set(acked)
        assert not unacked, (
            f"{len(unacked)} of {len(sent)} records were never acknowledged within "
            f"{RUN_SECONDS:.0f}s after the restart; failures: {dict(failures)}"
        )
        assert len(acked) == total

        # The same process serves again: no restart of the server was needed.
        assert server.alive() and server.pid == pid
        with httpx.Client(
            base_url=server.base_url,
            headers={"Authorization": f"Bearer {org.tokens[0]}"},
            timeout=REQUEST_TIMEOUT,
        ) as client:
            assert client.get("/health").status_code == 200
            after = record(999_999)
            response = client.post("/contacts", json=after)
            assert response.status_code == 201, response.text
            response = client.post("/contacts/batch", json={"records": [record(999_998)]})
            assert response.status_code == 200, response.text
            assert response.json()["created"] == 1
    finally:
        server.stop()
        print(f"server log ({server.log_path}):\n{server.log()}")
        print(f"postgres log:\n{pg.log_tail()}")
