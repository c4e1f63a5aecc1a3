"""Engine and sessions. Services never commit: the request (or command) that owns the
session commits once at the end, or rolls back on any error."""

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session, create_engine

from api.settings import get_settings

__all__ = [
    "SessionDep",
    "SessionFactoryDep",
    "conflict_insert",
    "get_engine",
    "get_session",
    "make_engine",
    "save_unique",
    "session_factory",
    "session_scope",
    "unit_of_work",
]


_PLAN_FOR_THE_VALUES = "SET plan_cache_mode = force_custom_plan"
_log = logging.getLogger(__name__)


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets foreign keys, WAL and real transactions."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True
        )
        _configure_sqlite(engine)
        return engine
    if parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    # As many pooled connections as request threads may want at once, so that a busy
    # worker does not open and close overflow connections on every request.
    # hide_parameters: a failed statement's message (logged with a 500) never carries the
    # values it was sent, such as a member's name or phone number.
    engine = create_engine(
        url, pool_pre_ping=True, pool_size=20, max_overflow=10, hide_parameters=True
    )
    _configure_postgresql(engine)
    return engine


def _configure_postgresql(engine: Engine) -> None:
    # psycopg prepares a statement on its fifth run, and PostgreSQL may then keep one
    # generic plan for any values: for the progress statements, whose cost hangs on how
    # many units, days and logs their values select, that generic plan ran four times
    # slower than the one made for the values at hand (29 ms against 7). Planning each run
    # costs far less.
    # Set on each new connection, not as a startup option, which would replace PGOPTIONS
    # and which connection poolers refuse.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        try:
            dbapi_connection.execute(_PLAN_FOR_THE_VALUES)
        except dbapi_connection.Error:
            # A server without the setting (before PostgreSQL 12) plans as it always has.
            dbapi_connection.rollback()
            _log.warning("could not set plan_cache_mode; generic plans stay possible")
        else:
            dbapi_connection.commit()


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; take it over so
    # that SQLite behaves like PostgreSQL for rollbacks and nested transactions.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Deleted rows are overwritten with zeros, not left in free pages: an erased
        # member's name must not survive in the file (GDPR Art. 17).
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # IMMEDIATE takes the write lock up front, so concurrent writers queue on busy_timeout
        # instead of failing with "database is locked" when a reader upgrades.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@lru_cache
def get_engine() -> Engine:
    return make_engine(get_settings().database_url)


def conflict_insert(session: Session, table: Any) -> Any:
    """An INSERT into ``table`` in the session's dialect, which knows ON CONFLICT (the
    generic one does not): PostgreSQL's or SQLite's."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    dialect = session.get_bind().dialect.name
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)


def save_unique(session: Session, obj: object, conflict: str) -> None:
    """Add and flush ``obj``; a unique-constraint violation becomes a 409 with ``conflict``.

    The savepoint keeps the request's transaction usable when a concurrent insert that no
    earlier check could see wins the race."""
    from sqlalchemy.exc import IntegrityError

    from api.errors import Conflict

    try:
        with session.begin_nested():
            session.add(obj)
    except IntegrityError:
        raise Conflict(conflict) from None


@contextmanager
def unit_of_work(session: Session) -> Iterator[Session]:
    """Commit ``session`` when the block succeeds, roll it back otherwise."""
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


@contextmanager
def session_scope() -> Iterator[Session]:
    """A new session as one unit of work."""
    with Session(get_engine(), expire_on_commit=False) as session, unit_of_work(session):
        yield session


async def session_factory() -> Callable[[], AbstractContextManager[Session]]:
    """How a request opens its unit of work; tests override this to share their transaction."""
    return session_scope


SessionFactoryDep = Annotated[
    Callable[[], AbstractContextManager[Session]], Depends(session_factory)
]


def get_session(open_session: SessionFactoryDep) -> Iterator[Session]:
    """FastAPI dependency: one unit of work per request."""
    with open_session() as session:
        yield session


# scope="function" commits before the response is sent: a client never sees 200 for a
# write that then failed to commit.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
