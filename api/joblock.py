"""Locks that make a scheduled job run in one process at a time and die with that process.

A lease row with an expiry would keep a killed job's successor waiting for the expiry; these
locks are released by the operating system or the database server the moment the holder's
process (or its connection) goes away. On PostgreSQL it is a session-level advisory lock
held on a connection of its own; on SQLite, whose database is a local file, an exclusive
``flock`` (on Windows, ``msvcrt.locking``) on a file next to it.
"""

import hashlib
import os
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

try:
    import fcntl
except ImportError:  # Windows, for development
    fcntl = None
    import msvcrt

__all__ = ["GRACE_SECONDS", "job_lock"]

# A killed holder's PostgreSQL backend ends a moment after the process does, not at once;
# waiting this long before giving up lets a rerun started right after the kill proceed.
GRACE_SECONDS = 5.0
_POLL_SECONDS = 0.1
# The first key of PostgreSQL's two-key advisory locks: ours, apart from any other user's.
_PG_NAMESPACE = 0x4B4E4143  # "KNAC"


def _pg_key(name: str) -> int:
    return zlib.crc32(name.encode()) - 2**31  # a signed 32-bit integer


def _lock_path(engine: Engine, name: str) -> Path:
    database = engine.url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        return Path(f"{database}.{name}.lock")
    digest = hashlib.sha256(engine.url.render_as_string().encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"knacka-{digest}.{name}.lock"


def _poll(try_once, grace: float) -> bool:
    deadline = time.monotonic() + grace
    while not try_once():
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_SECONDS)
    return True


@contextmanager
def _pg_lock(engine: Engine, name: str, grace: float) -> Iterator[bool]:
    params = {"ns": _PG_NAMESPACE, "key": _pg_key(name)}
    conn = engine.connect()
    taken = False
    try:

        def try_once() -> bool:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:ns, :key)"), params).scalar()
            conn.commit()  # the lock outlives the transaction; no snapshot is kept open
            return bool(got)

        taken = _poll(try_once, grace)
        yield taken
    finally:
        try:
            if taken:
                conn.execute(text("SELECT pg_advisory_unlock(:ns, :key)"), params)
                conn.commit()
        except BaseException:
            conn.invalidate()  # closing the connection is what releases the lock then
            raise
        finally:
            conn.close()


@contextmanager
def _file_lock(path: Path, grace: float) -> Iterator[bool]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:

        def try_once() -> bool:
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                else:
                    msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            except (BlockingIOError, PermissionError):  # held by another process
                return False
            return True

        yield _poll(try_once, grace)
    finally:
        os.close(fd)  # releases the lock; the file stays, deleting it would race


@contextmanager
def job_lock(engine: Engine, name: str, grace: float = GRACE_SECONDS) -> Iterator[bool]:
    """Hold ``name``'s lock for the block if no live process holds it; yields whether it was
    taken (waiting up to ``grace`` seconds for a holder that is going away)."""
    if engine.dialect.name == "postgresql":
        with _pg_lock(engine, name, grace) as taken:
            yield taken
    else:
        with _file_lock(_lock_path(engine, name), grace) as taken:
            yield taken
