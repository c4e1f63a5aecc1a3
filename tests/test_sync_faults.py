"""Exactly-once sync under faults, against real server processes (uvicorn, one or more per
test) and a real database of this module's own: a SQLite file, and a PostgreSQL database
created and dropped for the module. Each test counts what it added to the database.

The client here behaves like the phone app: every record carries a client_uuid, and every
record that is not acknowledged (``created`` or ``duplicate``) is sent again in a later batch,
until all are. What must hold whatever goes wrong on the way: each record is stored exactly
once, every acknowledged record is stored, and every answer names the stored row's id.

- many identical requests at once (batch and single record);
- responses lost after the server applied the request (an httpx transport that drops them);
- the server SIGKILLed between requests, and while a request is inside its transaction.
"""

import random
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url

from api.auth.service import hash_token
from api.db import make_engine
from api.models import ContactLog, ContactTopic, DeviceToken
from api.testing import LiveServer, issue_token, load_demo_database
from tests.conftest import BACKENDS, postgres_database

VOLUNTEER = "volontar001@example.org"  # a volunteer of S-föreningen Hammarstrand, kommun 2303
DISTRICTS = ["23030101", "23030102", "23030103", "23030104"]
ACKNOWLEDGED = {"created", "duplicate"}
BATCH = 500
REQUEST_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
WAIT_SECONDS = 30.0


# -- the server and its database ---------------------------------------------------------------


@dataclass
class Stored:
    """What the database holds, read directly (not through the API)."""

    ids: dict[str, int]  # client_uuid -> contact_log.id
    rows: int
    distinct_uuids: int
    topic_links: int


def stored(url: str) -> Stored:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            pairs = conn.execute(select(ContactLog.client_uuid, ContactLog.id)).all()
            distinct = conn.execute(
                select(func.count(func.distinct(ContactLog.client_uuid)))
            ).scalar_one()
            links = conn.execute(select(func.count()).select_from(ContactTopic)).scalar_one()
    finally:
        engine.dispose()
    return Stored(
        ids={str(u): i for u, i in pairs},
        rows=len(pairs),
        distinct_uuids=distinct,
        topic_links=links,
    )


@dataclass
class Database:
    backend: str
    url: str
    token: str  # a bearer token of VOLUNTEER


@pytest.fixture(scope="module", params=BACKENDS)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    """A new database for this module (a SQLite file, or a PostgreSQL database that is
    dropped afterwards), set up with the knacka command: migrations, the demo, a token."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sync-faults") / "live.sqlite3"
        context = nullcontext(f"sqlite:///{path}")
    else:
        context = postgres_database()
    with context as url:
        load_demo_database(url)
        token = issue_token(url, VOLUNTEER)
        yield Database(backend=request.param, url=url, token=token)


@dataclass
class Live:
    """A server process of the test's own on the module's database, and what the database
    held when the test began (tests count what they added)."""

    backend: str
    url: str
    token: str
    server: LiveServer
    before: Stored

    def client(self, transport: httpx.BaseTransport | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.base_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=REQUEST_TIMEOUT,
            transport=transport,
        )

    def added(self, records: list[dict]) -> Stored:
        """The database now, after checking that it holds each of ``records`` exactly once
        and nothing else that is new."""
        now = stored(self.url)
        sent = {r["client_uuid"] for r in records}
        assert len(sent) == len(records)
        assert now.distinct_uuids == now.rows, "a client_uuid is stored twice"
        assert now.rows - self.before.rows == len(records)
        assert set(now.ids) - set(self.before.ids) == sent
        links = sum(len(r["topics"]) for r in records)
        assert now.topic_links - self.before.topic_links == links
        return now


@pytest.fixture
def live(database: Database, tmp_path: Path) -> Iterator[Live]:
    """A uvicorn process serving the app on the module's database; stopped at the end."""
    server = LiveServer(database.url, tmp_path / "server.log")
    try:
        server.start()
        yield Live(
            backend=database.backend,
            url=database.url,
            token=database.token,
            server=server,
            before=stored(database.url),
        )
    finally:
        server.stop()
        print(f"server log ({server.log_path}):\n{server.log()}")  # shown if the test failed


def assert_stored_exactly(live: Live, records: list[dict], acked: dict[str, int]) -> Stored:
    """Every sent record is stored once, nothing else was added, and every acknowledgement
    named the stored row."""
    db = live.added(records)
    assert len(acked) == len(records)
    stored_ids = {u: db.ids.get(u) for u in acked}
    assert acked == stored_ids, "an acknowledgement named another id than the stored row's"
    return db


# -- records and the phone's sync loop ---------------------------------------------------------


def make_records(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    topic_sets = [["jobs"], ["jobs", "healthcare"], [], ["climate"]]
    return [
        {
            "client_uuid": str(uuid.uuid4()),
            "kind": "door",
            "outcome": rng.choice(["conversation", "conversation", "not_home", "refused"]),
            "district_code": DISTRICTS[i % len(DISTRICTS)],
            "occurred_at": (now - timedelta(seconds=rng.randrange(0, 86_400))).isoformat(),
            "topics": topic_sets[i % len(topic_sets)],
            "new_member": i % 97 == 0,
        }
        for i in range(n)
    ]


@dataclass
class SyncReport:
    acked: dict[str, int] = field(default_factory=dict)  # client_uuid -> id in the answer
    status: dict[str, str] = field(default_factory=dict)  # client_uuid -> status when acked
    unanswered_sends: Counter = field(default_factory=Counter)  # client_uuid -> sends
    requests: int = 0
    errors: list[str] = field(default_factory=list)  # transport errors, by type
    mixed_batches: int = 0  # answered batches with both created and duplicate records


def sync(
    client: httpx.Client,
    records: list[dict],
    *,
    max_requests: int,
    batch_size: Callable[[], int] = lambda: BATCH,
    before_request: Callable[[int, SyncReport], None] | None = None,
    on_transport_error: Callable[[httpx.TransportError], None] | None = None,
) -> SyncReport:
    """Send ``records`` in batches until every one is acknowledged, as the phone does.

    A batch without an answer goes to the back of the queue, so its records are sent again
    in later batches (mixed with records not sent before when batch sizes vary). Any answer
    but 200 with every record acknowledged fails the test: the records here are all valid."""
    report = SyncReport()
    pending = {r["client_uuid"]: r for r in records}  # insertion-ordered: the queue
    while pending:
        assert report.requests < max_requests, (
            f"{len(pending)} records still unacknowledged after {report.requests} requests; "
            f"transport errors: {Counter(report.errors)}"
        )
        batch = [pending[u] for u in list(pending)[: batch_size()]]
        report.requests += 1
        if before_request is not None:
            before_request(report.requests, report)
        try:
            response = client.post("/contacts/batch", json={"records": batch})
        except httpx.TransportError as exc:
            report.errors.append(type(exc).__name__)
            for record in batch:
                report.unanswered_sends[record["client_uuid"]] += 1
                pending[record["client_uuid"]] = pending.pop(record["client_uuid"])
            if on_transport_error is not None:
                on_transport_error(exc)
            continue
        assert response.status_code == 200, response.text
        body = response.json()
        results = body["results"]
        assert [r["client_uuid"] for r in results] == [r["client_uuid"] for r in batch]
        assert body["rejected"] == 0, [r for r in results if r["status"] not in ACKNOWLEDGED]
        for result in results:
            u = result["client_uuid"]
            assert result["status"] in ACKNOWLEDGED and isinstance(result["id"], int), result
            # A duplicate of a record whose every earlier send was answered is impossible.
            assert result["status"] == "created" or report.unanswered_sends[u] > 0, result
            report.acked[u] = result["id"]
            report.status[u] = result["status"]
            del pending[u]
        report.mixed_batches += {r["status"] for r in results} == ACKNOWLEDGED
    return report


class _SignalWhenSent(httpx.SyncByteStream):
    """A request body that sets an event once its last byte was handed to the socket."""

    def __init__(self, inner: httpx.SyncByteStream, sent: threading.Event) -> None:
        self.inner = inner
        self.sent = sent

    def __iter__(self) -> Iterator[bytes]:
        yield from self.inner
        self.sent.set()

    def close(self) -> None:
        self.inner.close()


class FaultTransport(httpx.BaseTransport):
    """A real HTTP transport that can lose responses: for a share of the requests (drawn
    from a seeded random.Random) it lets the server apply the request, reads the whole
    response, and then raises ReadError instead of returning it."""

    def __init__(self, *, loss_rate: float = 0.0, seed: int = 0) -> None:
        self.inner = httpx.HTTPTransport()
        self.rng = random.Random(seed)
        self.loss_rate = loss_rate
        self.requests = 0
        self.lost: list[httpx.Response] = []
        self.body_sent: threading.Event | None = None  # armed by a test for one request

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.body_sent is not None:
            request.stream = _SignalWhenSent(request.stream, self.body_sent)
        response = self.inner.handle_request(request)
        if self.loss_rate and self.rng.random() < self.loss_rate:
            response.read()
            response.close()
            self.lost.append(response)
            raise httpx.ReadError("response lost on the way back", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


# -- 1. identical requests at once -------------------------------------------------------------

PARALLEL = 20


def _all_at_once(send: Callable[[httpx.Client], httpx.Response], live: Live) -> list:
    """Send PARALLEL requests, each from its own client, released together by a barrier."""
    barrier = threading.Barrier(PARALLEL, timeout=WAIT_SECONDS)

    def one(_: int) -> httpx.Response:
        with live.client() as client:
            client.get("/health")  # connect first, so that the posts start together
            barrier.wait()
            return send(client)

    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(one, range(PARALLEL)))


def _token_used_now(live: Live) -> None:
    """Mark the token as used this moment. Its requests then do not write the device row
    (its last use is written at most once a minute), which would queue them one behind the
    other on PostgreSQL's row lock: the requests meet in the contact_log insert instead."""
    engine = make_engine(live.url)
    try:
        with engine.begin() as conn:
            done = conn.execute(
                update(DeviceToken)
                .where(DeviceToken.token_hash == hash_token(live.token))
                .values(last_used_at=datetime.now(UTC))
            )
            assert done.rowcount == 1
    finally:
        engine.dispose()


def test_parallel_identical_batches_store_each_record_once(live: Live):
    records = make_records(50, seed=1)
    uuids = [r["client_uuid"] for r in records]
    _token_used_now(live)
    responses = _all_at_once(lambda c: c.post("/contacts/batch", json={"records": records}), live)

    assert [r.status_code for r in responses] == [200] * PARALLEL, [r.text for r in responses]
    created: Counter = Counter()
    answered_ids: dict[str, set[int]] = {u: set() for u in uuids}
    for response in responses:
        body = response.json()
        assert [r["client_uuid"] for r in body["results"]] == uuids
        assert (body["created"] + body["duplicate"], body["rejected"]) == (len(records), 0)
        for result in body["results"]:
            assert result["status"] in ACKNOWLEDGED, result
            created[result["client_uuid"]] += result["status"] == "created"
            answered_ids[result["client_uuid"]].add(result["id"])
    assert created == dict.fromkeys(uuids, 1), "not exactly one 'created' per record"
    db = live.added(records)
    assert answered_ids == {u: {db.ids[u]} for u in uuids}


def test_parallel_identical_single_records_store_one_row(live: Live):
    (record,) = make_records(1, seed=2)
    record["topics"] = ["jobs", "climate"]
    _token_used_now(live)
    responses = _all_at_once(lambda c: c.post("/contacts", json=record), live)

    assert sorted(r.status_code for r in responses) == [200] * (PARALLEL - 1) + [201], [
        r.text for r in responses
    ]
    bodies = [r.json() for r in responses]
    assert {b["client_uuid"] for b in bodies} == {record["client_uuid"]}
    assert sorted(b["status"] for b in bodies) == ["created"] + ["duplicate"] * (PARALLEL - 1)
    db = live.added([record])
    assert {b["id"] for b in bodies} == {db.ids[record["client_uuid"]]}


def test_many_single_records_at_once_each_get_their_own_answer(live: Live):
    # On PostgreSQL, records that arrive together are inserted by one shared statement; each
    # request must still get its own record's answer, and a bad or replayed record its own.
    records = make_records(400, seed=5)
    bad = {
        r["client_uuid"]: r | {"district_code": "99999999"} for r in records[::13]
    }  # never stored
    good = [r for r in records if r["client_uuid"] not in bad]
    sends = [("first", r) for r in good] + [("bad", r) for r in bad.values()]
    sends += [("replay", r) for r in good[::7]]
    replayed = {r["client_uuid"] for r in good[::7]}
    changed = {
        r["client_uuid"]: r | {"outcome": "moved"}
        for r in good[1::11]
        if r["client_uuid"] not in replayed
    }  # a different body under the same uuid: one of the two is stored, the other is 409
    sends += [("changed", r) for r in changed.values()]
    random.Random(6).shuffle(sends)
    answers: dict[str, list[tuple[str, int, dict]]] = {}
    lock = threading.Lock()

    def worker(part: list[tuple[str, dict]]) -> None:
        with live.client() as client:
            for what, record in part:
                response = client.post("/contacts", json=record)
                with lock:
                    answers.setdefault(record["client_uuid"], []).append(
                        (what, response.status_code, response.json())
                    )

    with ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(worker, [sends[i::PARALLEL] for i in range(PARALLEL)]))

    db = live.added(good)
    for record in good:
        u = record["client_uuid"]
        got = answers[u]
        assert all(body["client_uuid"] == u for _, _, body in got)
        if u in changed:
            (won, _, body), (_, lost, lost_body) = sorted(got, key=lambda a: a[1])
            assert (body["id"], lost, lost_body["id"]) == (db.ids[u], 409, None)
            with live.client() as client:
                outcome = client.get(f"/contacts/{db.ids[u]}").json()["outcome"]
            assert outcome == ("moved" if won == "changed" else record["outcome"])
            continue
        assert sorted(code for _, code, _ in got) == ([200, 201] if len(got) == 2 else [201])
        assert {body["id"] for _, _, body in got} == {db.ids[u]}
    for u in bad:
        ((_, code, body),) = answers[u]
        assert code == 422 and body["errors"][0]["field"] == "district_code", body


# -- 2. responses lost after the server applied the request ------------------------------------


def test_lost_responses_are_retried_and_each_record_stored_once(live: Live):
    records = make_records(10_000, seed=3)
    transport = FaultTransport(loss_rate=0.3, seed=20260504)
    sizes = random.Random(5)  # phones send what their queue holds: batch sizes vary
    with live.client(transport) as client:
        report = sync(
            client, records, max_requests=200, batch_size=lambda: sizes.randint(BATCH // 2, BATCH)
        )

    # The faults were real: a share of requests near the rate, each applied by the server.
    assert 0.15 <= len(transport.lost) / transport.requests <= 0.45, (
        len(transport.lost),
        transport.requests,
    )
    assert report.errors == ["ReadError"] * len(transport.lost)
    created_unseen: dict[str, int] = {}  # created by a request whose answer was lost
    for response in transport.lost:
        assert response.status_code == 200, response.text
        for result in response.json()["results"]:
            assert result["status"] in ACKNOWLEDGED, result
            if result["status"] == "created":
                created_unseen[result["client_uuid"]] = result["id"]
    assert created_unseen, "no response that created records was lost"
    # Exactly those records came back as duplicates, with the id the lost answer carried.
    assert report.mixed_batches > 0, "no batch mixed records sent before with new ones"
    duplicates = {u for u, s in report.status.items() if s == "duplicate"}
    assert duplicates == set(created_unseen)
    assert {u: report.acked[u] for u in duplicates} == created_unseen
    assert_stored_exactly(live, records, report.acked)


# -- 3. the server killed between requests and during one --------------------------------------


class _Lock:
    """Holds a lock in the database so that the server's next write waits for it.

    PostgreSQL: a row lock on topic 'jobs'. The server's batch then inserts its contact_log
    rows and waits in the foreign-key check of its contact_topic insert, inside its
    transaction. SQLite: the write lock, so the server waits before writing anything."""

    def __init__(self, live: Live) -> None:
        self.backend = live.backend
        if live.backend == "postgresql":
            self.pg = psycopg.connect(_conninfo(live.url))
            self.pg.execute("SELECT code FROM topic WHERE code = 'jobs' FOR UPDATE")
        else:
            path = make_url(live.url).database
            self.sqlite = sqlite3.connect(
                path, timeout=WAIT_SECONDS, isolation_level=None, check_same_thread=False
            )
            self.sqlite.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self.backend == "postgresql":
            self.pg.rollback()
            self.pg.close()
        else:
            self.sqlite.rollback()
            self.sqlite.close()


def _conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _wait_for_blocked_insert(url: str) -> bool:
    """Whether, within WAIT_SECONDS, a session of this database waits for a lock while
    inserting into contact_topic (the server inside its transaction)."""
    deadline = time.monotonic() + WAIT_SECONDS
    with psycopg.connect(_conninfo(url), autocommit=True) as conn:
        while time.monotonic() < deadline:
            (waiting,) = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query ILIKE '%contact_topic%'"
            ).fetchone()
            if waiting:
                return True
            time.sleep(0.02)
    return False


def test_server_killed_between_and_during_requests_loses_nothing(live: Live):
    records = make_records(10_000, seed=4)
    batches = len(records) // BATCH
    idle_kill_at, busy_kill_at = batches // 3 + 1, 2 * batches // 3 + 1
    server = live.server
    transport = FaultTransport()
    acked_before: dict[int, dict[str, int]] = {}  # request number -> acknowledged by then
    in_flight: dict[str, object] = {}

    def killer(lock: _Lock, body_sent: threading.Event) -> None:
        # Kill only once the request is in the server's hands, holding a transaction open.
        try:
            in_flight["body_sent"] = body_sent.wait(WAIT_SECONDS)
            if live.backend == "postgresql":
                in_flight["inside_transaction"] = _wait_for_blocked_insert(live.url)
            in_flight["exit"] = server.kill()
        finally:
            lock.release()

    def before_request(number: int, report: SyncReport) -> None:
        if number == idle_kill_at:
            acked_before[number] = dict(report.acked)
            assert server.kill() == -9
        elif number == busy_kill_at:
            acked_before[number] = dict(report.acked)
            transport.body_sent = threading.Event()
            thread = threading.Thread(target=killer, args=(_Lock(live), transport.body_sent))
            in_flight["thread"] = thread
            thread.start()

    def on_transport_error(exc: httpx.TransportError) -> None:
        if "thread" in in_flight:
            in_flight["thread"].join(WAIT_SECONDS + 5)
            transport.body_sent = None
        assert not server.alive(), f"a request failed ({exc!r}) but the server was not killed"
        server.start()  # the same port and database

    with live.client(transport) as client:
        report = sync(
            client,
            records,
            max_requests=batches + 10,
            before_request=before_request,
            on_transport_error=on_transport_error,
        )

    assert server.starts == 3, "the server was not killed and restarted twice"
    assert in_flight.get("body_sent") is True and in_flight.get("exit") == -9, in_flight
    if live.backend == "postgresql":
        assert in_flight.get("inside_transaction") is True, "the kill hit no transaction"
    # The two requests hit by the kills are the only ones without an answer.
    assert len(report.errors) == 2, report.errors
    assert report.requests == batches + 2
    # What was acknowledged before each kill is stored, under the id the answer named.
    assert len(acked_before[idle_kill_at]) == (idle_kill_at - 1) * BATCH
    assert len(acked_before[busy_kill_at]) == (busy_kill_at - 2) * BATCH
    ids = stored(live.url).ids
    for number, acked in acked_before.items():
        lost = {u for u in acked if ids.get(u) != acked[u]}
        assert not lost, f"{len(lost)} records acknowledged before kill {number} are not stored"
    assert_stored_exactly(live, records, report.acked)
    # Nothing the killed requests did survived: every record was created by its answered send.
    assert set(report.status.values()) == {"created"}
