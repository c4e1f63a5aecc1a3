"""The hot path's connections: autocommit psycopg connections on the event loop that run
one statement over the rows of many concurrent callers (see ``PgPool``)."""

import asyncio
import itertools
import logging
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from sqlalchemy.engine import make_url

from api import db

__all__ = ["FastDb", "FastDbDep", "PgPool", "close_fast_db", "fast_db"]

_log = logging.getLogger("knacka.db")


class FastDb(Protocol):
    """Runs a statement over arrays: each caller gives one row of values and gets back the
    result row whose first column is the row's ``key`` value (None when there is none)."""

    async def fetch_grouped(self, sql: str, row: dict[str, Any], *, key: str) -> tuple | None: ...


class _Group:
    """The rows waiting for one statement, by key, and the tasks running it."""

    def __init__(self) -> None:
        self.waiting: dict[Any, tuple[dict[str, Any], asyncio.Future]] = {}
        self.running = 0


class PgPool:
    """Autocommit psycopg connections on the event loop, for routes whose whole work is one
    statement over arrays of rows.

    Rows that callers submit while the statement is running go together in its next run, a
    group commit in the application: per request the general path costs a worker thread,
    the ORM and several round trips and commits, and a lone statement still one round trip
    and one commit (see ``scripts/bench_ingest.py``). A lone caller waits for nothing. Any
    failure here answers None, and each caller falls back to its general path: that may
    find a record that a statement committed just before its connection broke, and answer
    it as a replay.
    """

    def __init__(self, url: str, *, in_flight: int = 2, max_rows: int = 200) -> None:
        from psycopg_pool import AsyncConnectionPool

        conninfo = make_url(url).set(drivername="postgresql").render_as_string(False)
        # A row locked by another transaction (the same record in a batch not yet committed)
        # would hold up every caller of the group: after a moment they fall back instead.
        options = "-c lock_timeout=1000 -c statement_timeout=10000"
        self._pool = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=in_flight,
            open=False,
            timeout=5,
            kwargs={"autocommit": True, "options": options},
        )
        self._opening: asyncio.Task | None = None
        self._in_flight, self._max_rows = in_flight, max_rows
        self._groups: dict[tuple[str, str], _Group] = {}
        self._tasks: set[asyncio.Task] = set()

    async def _open(self) -> bool:
        """Whether the pool is open; the first callers of a burst share one opening."""
        if self._opening is None or (
            self._opening.done() and (self._opening.cancelled() or self._opening.exception())
        ):
            self._opening = asyncio.ensure_future(self._pool.open())
        try:
            # Shielded: a caller that gives up must not cancel the opening for the others.
            await asyncio.shield(self._opening)
        except Exception:
            _log.warning("the grouped-statement pool did not open", exc_info=True)
            return False
        return True

    async def fetch_grouped(self, sql: str, row: dict[str, Any], *, key: str) -> tuple | None:
        """The result row of ``row`` in the next run of ``sql``, or None."""
        if not await self._open():
            return None
        group = self._groups.setdefault((sql, key), _Group())
        if row[key] in group.waiting:
            # Both copies in one run would both get the one inserted row back.
            return None
        future = asyncio.get_running_loop().create_future()
        group.waiting[row[key]] = (row, future)
        if group.running < self._in_flight:
            group.running += 1
            task = asyncio.create_task(self._drain(sql, key, group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self, sql: str, key: str, group: _Group) -> None:
        """Run ``sql`` over the waiting rows until none are left."""
        import psycopg

        try:
            while group.waiting:
                taken = list(itertools.islice(group.waiting, self._max_rows))
                # One lock order for every run: concurrent runs then queue, never deadlock.
                batch = sorted((group.waiting.pop(k) for k in taken), key=lambda x: x[0][key])
                params = {name: [r[name] for r, _ in batch] for name in batch[0][0]}
                found: dict[Any, tuple] = {}
                try:
                    async with self._pool.connection() as conn:
                        cursor = await conn.execute(sql, params)
                        found = {r[0]: r for r in await cursor.fetchall()}
                except psycopg.Error:
                    # Say, a dropped connection or a lock wait that timed out.
                    _log.warning("a grouped statement failed; its callers fall back", exc_info=True)
                except Exception:
                    _log.exception("a grouped statement failed; its callers fall back")
                finally:
                    _settle(batch, found, key)
        finally:
            group.running -= 1
            if group.running == 0:  # cancelled: nobody is left to run what still waits
                _settle(list(group.waiting.values()), {}, key)
                group.waiting.clear()

    async def close(self) -> None:
        """Close the connections (at shutdown)."""
        if self._opening is not None:
            await self._pool.close()


def _settle(batch: list[tuple[dict[str, Any], asyncio.Future]], found: dict, key: str) -> None:
    for row, future in batch:
        if not future.done():
            future.set_result(found.get(row[key]))


async def fast_db(request: Request) -> FastDb | None:
    """The process's hot-path pool on PostgreSQL, opened on first use; None on SQLite."""
    state = request.app.state
    if not hasattr(state, "fast_db"):
        engine = db.get_engine()  # through the module: tests replace it
        state.fast_db = (
            PgPool(engine.url.render_as_string(False))
            if engine.dialect.name == "postgresql"
            else None
        )
    return state.fast_db


async def close_fast_db(app: Any) -> None:
    """Close the hot-path pool of ``app``, if it opened one (at shutdown)."""
    pool = getattr(app.state, "fast_db", None)
    if pool is not None:
        del app.state.fast_db  # a later start of the same app opens a new one
        await pool.close()


FastDbDep = Annotated[FastDb | None, Depends(fast_db)]
