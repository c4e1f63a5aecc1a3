"""Building the nightly snapshots from the contact logs.

One GROUP BY pass over ``contact_log`` fills ``daily_grain`` (day x district x volunteer),
which is also the districts' daily snapshot; ``daily_stat`` (day x kommun and day x förening)
is rolled up from that much smaller table, and ``unit_people`` (each volunteer's last day
per kommun and förening) from it too.
The first two are rebuilt per day as delete + insert inside the caller's transaction, so
re-running a day yields identical rows; unit_people is recomputed for the volunteers whose
days changed. Every rebuild deletes the precomputed unit_window rows, which it makes stale
(the nightly job computes them again: api/progress/windows.py). Rebuilding every day at
once on PostgreSQL truncates these tables, groups the logs in parallel into a temporary
table, loads daily_grain without its indexes and builds them again afterwards.
"""

from datetime import date, datetime

from sqlalchemy import Date, bindparam, text
from sqlmodel import Session

from api.models import UTCDateTime

__all__ = ["rebuild_changed", "rebuild_days"]

_GRAIN_COLUMNS = (
    "day, district_id, user_id, kommun_id, forening_id, contacts, conversations, doors, new_members"
)
# Named as daily_grain's columns, so that a table made from it has them too.
_GRAIN_SELECT = """
SELECT day, district_id, user_id, MIN(kommun_id) AS kommun_id,
       MIN(forening_id) AS forening_id, COUNT(*) AS contacts,
       SUM(conversations) AS conversations,
       SUM(CASE WHEN kind = 'door' THEN 1 ELSE 0 END) AS doors,
       SUM(CASE WHEN new_member THEN 1 ELSE 0 END) AS new_members
FROM contact_log
WHERE withdrawn_at IS NULL {days}
GROUP BY day, district_id, user_id
"""
_GRAIN = (
    f"INSERT INTO daily_grain ({_GRAIN_COLUMNS}) {_GRAIN_SELECT} ORDER BY day, district_id, user_id"
)

# Only the (day, volunteer) pairs with a change since the watermark: a correction may move
# a log to another district but never to another day or author, so recomputing the pair
# also clears the row the log left. The pairs go into a small analysed temporary table so
# that the planner looks their logs up by index instead of scanning the whole log.
_PAIRS_TABLE = "CREATE TEMPORARY TABLE changed_pairs (day DATE NOT NULL, user_id INTEGER NOT NULL)"
_PAIRS_FILL = (
    "INSERT INTO changed_pairs (day, user_id) "
    "SELECT DISTINCT day, user_id FROM contact_log WHERE changed_at > :since"
)
_GRAIN_CHANGED = f"""
INSERT INTO daily_grain ({_GRAIN_COLUMNS})
SELECT c.day, c.district_id, c.user_id, MIN(c.kommun_id), MIN(c.forening_id), COUNT(*),
       SUM(c.conversations), SUM(CASE WHEN c.kind = 'door' THEN 1 ELSE 0 END),
       SUM(CASE WHEN c.new_member THEN 1 ELSE 0 END)
FROM changed_pairs AS p
JOIN contact_log AS c ON c.day = p.day AND c.user_id = p.user_id
WHERE c.withdrawn_at IS NULL
GROUP BY c.day, c.district_id, c.user_id
"""
_DELETE_CHANGED = """
DELETE FROM daily_grain
WHERE EXISTS (SELECT 1 FROM changed_pairs AS p
              WHERE p.day = daily_grain.day AND p.user_id = daily_grain.user_id)
"""

_STAT = """
INSERT INTO daily_stat
    (day, unit_kind, unit_id, contacts, conversations, doors, new_members, volunteers)
SELECT day, '{kind}', {column}, SUM(contacts), SUM(conversations), SUM(doors),
       SUM(new_members), COUNT(DISTINCT user_id)
FROM daily_grain
WHERE {nonnull} {days}
GROUP BY {column}, day
"""

# Districts have no rows here: a district's day is the sum of its few daily_grain rows, and
# leaving them out spares the rebuild most of daily_stat's rows.
_UNITS = (("forening", "forening_id"), ("kommun", "kommun_id"))
# Only forening_id can be NULL; a needless "IS NOT NULL" on the others leads the planner to
# walk a whole (unit, day) index instead of the primary key's day range.
_NONNULL = {"forening_id": "forening_id IS NOT NULL"}


# Each volunteer's last day of work per kommun and förening, for the volunteers whose days
# changed (or everyone): the count of a unit's active people reads one row per person.
_PEOPLE = """
INSERT INTO unit_people (unit_kind, unit_id, user_id, last_day)
SELECT '{kind}', {column}, user_id, MAX(day)
FROM daily_grain
WHERE {nonnull} {users}
GROUP BY {column}, user_id
"""


_DELETE_WINDOWS = "DELETE FROM unit_window"


def _people(session: Session, users: str | None) -> None:
    """Recompute unit_people for the volunteers ``users`` (a SELECT of ids; None: all)."""
    only = "" if users is None else f"WHERE user_id IN ({users})"
    session.execute(text(f"DELETE FROM unit_people {only}"))
    for kind, column in _UNITS:
        nonnull = _NONNULL.get(column, "1 = 1")
        also = "" if users is None else f"AND user_id IN ({users})"
        session.execute(text(_PEOPLE.format(kind=kind, column=column, nonnull=nonnull, users=also)))


def _stats(session: Session, days: list[date] | None) -> int:
    where = "" if days is None else "AND day IN :days"
    rows = 0
    for kind, column in _UNITS:
        nonnull = _NONNULL.get(column, "1 = 1")
        stmt = text(_STAT.format(kind=kind, column=column, nonnull=nonnull, days=where))
        if days is not None:
            stmt = stmt.bindparams(bindparam("days", expanding=True))
        rows += session.execute(stmt, {} if days is None else {"days": days}).rowcount
    return rows


def rebuild_changed(session: Session, since: datetime, also: date) -> int:
    """Recompute what changed after ``since`` (and the day ``also``); returns the
    daily_grain and daily_stat rows written (unit_people is kept too)."""
    session.execute(text(_DELETE_WINDOWS))
    session.execute(text("DROP TABLE IF EXISTS changed_pairs"))
    session.execute(text(_PAIRS_TABLE))
    fill = text(_PAIRS_FILL).bindparams(bindparam("since", type_=UTCDateTime))
    session.execute(fill, {"since": since})
    session.execute(text("ANALYZE changed_pairs"))
    changed = text("SELECT DISTINCT day FROM changed_pairs").columns(day=Date)
    days = sorted({*session.execute(changed).scalars(), also})
    session.execute(text(_DELETE_CHANGED))
    rows = session.execute(text(_GRAIN_CHANGED)).rowcount
    _people(session, "SELECT user_id FROM changed_pairs")
    session.execute(text("DROP TABLE changed_pairs"))
    stmt = text("DELETE FROM daily_stat WHERE day IN :days")
    session.execute(stmt.bindparams(bindparam("days", expanding=True)), {"days": days})
    return rows + _stats(session, days)


# PostgreSQL runs no INSERT ... SELECT in parallel, but it does run CREATE TABLE ... AS so.
_GRAIN_STAGE = "CREATE TEMPORARY TABLE grain_build ON COMMIT DROP AS " + _GRAIN_SELECT.format(
    days=""
)
# How to drop and how to re-create each index of daily_grain: those behind a constraint
# (its primary key) with the constraint, the others on their own.
_GRAIN_INDEXES = """
SELECT 'ALTER TABLE daily_grain DROP CONSTRAINT ' || quote_ident(c.conname),
       'ALTER TABLE daily_grain ADD CONSTRAINT ' || quote_ident(c.conname) || ' '
       || pg_get_constraintdef(c.oid)
FROM pg_constraint c
WHERE c.conrelid = 'daily_grain'::regclass AND c.contype IN ('p', 'u', 'x')
UNION ALL
SELECT 'DROP INDEX ' || i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
FROM pg_index i
WHERE i.indrelid = 'daily_grain'::regclass
  AND i.indexrelid NOT IN (SELECT conindid FROM pg_constraint
                           WHERE conrelid = 'daily_grain'::regclass)
"""
_GRAIN_LOAD = f"INSERT INTO daily_grain ({_GRAIN_COLUMNS}) SELECT {_GRAIN_COLUMNS} FROM grain_build"


def _rebuild_all_postgresql(session: Session) -> int:
    """Every day's snapshots, rebuilt the fast way PostgreSQL allows."""
    session.flush()  # the driver-level statements below would not flush the session
    conn = session.connection()

    def run(sql: str) -> int:
        # Straight to the driver: definitions read from the catalog are not SQLAlchemy text.
        return conn.exec_driver_sql(sql).rowcount

    # The GROUP BY gets the memory to stay off disk and runs in parallel, before the
    # snapshot tables are locked.
    run("SET LOCAL work_mem = '64MB'")
    run("SET LOCAL parallel_setup_cost = 0")
    run("SET LOCAL parallel_tuple_cost = 0")
    run(_GRAIN_STAGE)
    run("SET LOCAL parallel_setup_cost TO DEFAULT")
    run("SET LOCAL parallel_tuple_cost TO DEFAULT")
    # From here readers wait for this transaction (TRUNCATE locks the tables), so the
    # indexes can go for the load and be built again at the end: building one from the
    # finished table costs a quarter of keeping it up to date row by row.
    run("TRUNCATE daily_stat, daily_grain, unit_people, unit_window")
    indexes = conn.exec_driver_sql(_GRAIN_INDEXES).all()
    for drop, _ in indexes:
        run(drop)
    rows = run(_GRAIN_LOAD)
    run("DROP TABLE grain_build")
    for _, definition in indexes:
        run(definition)
    # The table was just written and is in memory: reading it in a unit index's order (no
    # sort for the GROUP BY) is cheaper than the default page costs make it look.
    run("SET LOCAL random_page_cost = 1.1")
    rows += _stats(session, None)
    _people(session, None)
    run("SET LOCAL random_page_cost TO DEFAULT")
    run("SET LOCAL work_mem TO DEFAULT")
    return rows


def rebuild_days(session: Session, days: list[date] | None) -> int:
    """Recompute the snapshots of ``days`` (None: every day); returns the daily_grain and
    daily_stat rows written (unit_people is kept too)."""
    if days is not None and not days:
        return 0
    if days is None and session.get_bind().dialect.name == "postgresql":
        return _rebuild_all_postgresql(session)
    where = "" if days is None else "AND day IN :days"
    params = {} if days is None else {"days": sorted(set(days))}

    def run(sql: str) -> int:
        stmt = text(sql)
        if days is not None:
            stmt = stmt.bindparams(bindparam("days", expanding=True))
        return session.execute(stmt, params).rowcount

    session.execute(text(_DELETE_WINDOWS))
    delete_where = "" if days is None else "WHERE day IN :days"
    run(f"DELETE FROM daily_stat {delete_where}")
    run(f"DELETE FROM daily_grain {delete_where}")
    rows = run(_GRAIN.format(days=where))
    rows += _stats(session, params.get("days"))
    # A day's rebuild can end a volunteer's last day anywhere: everyone's is recomputed.
    _people(session, None)
    return rows
