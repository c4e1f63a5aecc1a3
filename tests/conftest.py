"""Test databases: every test runs once on SQLite and once on PostgreSQL, inside a
transaction that is rolled back afterwards. The PostgreSQL database is created for this run
and dropped at its end; no other database is touched."""

import email
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from email import policy

import psycopg
import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from api import db
from api.db import make_engine, session_factory
from api.deps import request_time
from api.deps import settings as settings_dep
from api.fastdb import fast_db
from api.main import create_app
from api.migrate import upgrade
from api.models import Role, User
from api.settings import Settings
from api.testing import PG_ADMIN_URL, free_port, throwaway_database

REQUIRE_POSTGRES = os.environ.get("KNACKA_REQUIRE_POSTGRES") == "1"
BACKENDS = os.environ.get("KNACKA_TEST_BACKENDS", "sqlite,postgresql").split(",")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL database's URL; the test is skipped (an error with
    KNACKA_REQUIRE_POSTGRES=1) when PostgreSQL is not reachable."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(throwaway_database())
        except psycopg.OperationalError as exc:
            message = f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}"
            if REQUIRE_POSTGRES:
                pytest.fail(message, pytrace=False)
            pytest.skip(message + " (set KNACKA_REQUIRE_POSTGRES=1 to make this an error)")
        yield url


@contextmanager
def request_scope(session: Session) -> Iterator[Session]:
    """A request's unit of work inside the test's transaction: a savepoint that is released
    on success and rolled back on error, so that what the test set up beforehand survives."""
    nested = session.begin_nested()
    try:
        yield session
        nested.commit()
    except BaseException:
        nested.rollback()
        raise


class SessionFastDb:
    """The hot path's statements run inside the test's transaction, as a request would."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @classmethod
    def of(cls, session: Session) -> "SessionFastDb | None":
        return cls(session) if session.get_bind().dialect.name == "postgresql" else None

    async def fetch_grouped(self, sql: str, row: dict, *, key: str) -> tuple | None:
        params = {name: [value] for name, value in row.items()}
        with request_scope(self.session):
            return self.session.connection().exec_driver_sql(sql, params).fetchone()


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request, tmp_path_factory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'knacka.sqlite3'}"
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    upgrade(database_url)
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session whose commits only release savepoints; everything is rolled back at the end."""
    connection = engine.connect()
    outer = connection.begin()
    s = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield s
    finally:
        s.close()
        outer.rollback()
        connection.close()


class Clock:
    """The server's clock as the app sees it; tests move it."""

    def __init__(self) -> None:
        self.now = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None)


@pytest.fixture
def anon_client(session: Session, clock: Clock, settings: Settings) -> Iterator[TestClient]:
    """A client that is not signed in; every request shares the test's transaction."""
    app = create_app()

    app.dependency_overrides[session_factory] = lambda: lambda: request_scope(session)
    app.dependency_overrides[fast_db] = lambda: SessionFastDb.of(session)
    app.dependency_overrides[request_time] = lambda: clock.now
    app.dependency_overrides[settings_dep] = lambda: settings
    with TestClient(app) as c:
        yield c


@pytest.fixture
def admin(session: Session) -> User:
    """The district admin of Jämtlands län (partidistrikt 23)."""
    from tests import factories

    return factories.user(session, Role.district_admin, factories.partidistrikt(session))


@pytest.fixture
def client(anon_client: TestClient, session: Session, admin: User, clock: Clock) -> TestClient:
    """A client signed in as the district admin of partidistrikt 23."""
    from tests import factories

    anon_client.headers.update(factories.auth_headers(session, admin, clock.now))
    return anon_client


@pytest.fixture
def cli_session(session: Session, monkeypatch: pytest.MonkeyPatch) -> Session:
    """Route the knacka command's unit of work into the test's transaction."""
    monkeypatch.setattr(db, "session_scope", lambda: request_scope(session))
    return session


class Inbox:
    """Collects messages; RCPT replies can be scripted per address."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.raw: list[bytes] = []  # as received, for what the parser cannot show
        self.replies: dict[str, list[str]] = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        scripted = self.replies.get(address)
        if scripted:
            return scripted.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.raw.append(envelope.content)
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


@pytest.fixture
def inbox(settings):
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.smtp_host, settings.smtp_port = "127.0.0.1", controller.port
    yield handler
    controller.stop()
