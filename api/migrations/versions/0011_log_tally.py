"""log_tally: the contact logs that count, tallied per (day, district, volunteer, kommun,
förening, turf) by triggers on contact_log, so that progress reads a live day's few hundred
tallies instead of its thousands of logs

The triggers run in the writing transaction, whichever path wrote: the general logging
path, PostgreSQL's one-statement path, corrections, withdrawals, a bulk insert or COPY (not
one with triggers off, such as a load under session_replication_role = replica, which must
sum the tally itself with ``BACKFILL``). On PostgreSQL they are statement-level
with transition tables: one upsert per statement, its rows in key order so that concurrent
writers lock them in one order; SQLite has row-level triggers only.

Revision ID: 0011_log_tally
Revises: 0010_unit_window
Create Date: 2026-12-04 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_log_tally"
down_revision: str | None = "0010_unit_window"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = "day, district_id, user_id, kommun_id, forening_id, turf_id"
_FIGURES = ("logs", "conversations", "doors", "new_members")


def _signed(rows: str, sign: int) -> str:
    """(key, figures × ``sign``) of each row of ``rows`` that counts."""
    return (
        f"SELECT day, district_id, user_id, kommun_id, coalesce(forening_id, 0) AS forening_id,"
        f" coalesce(turf_id, 0) AS turf_id, {sign} AS logs, {sign} * conversations AS"
        f" conversations, CASE WHEN kind = 'door' THEN {sign} ELSE 0 END AS doors,"
        f" CASE WHEN new_member THEN {sign} ELSE 0 END AS new_members"
        f" FROM {rows} WHERE withdrawn_at IS NULL"
    )


def _upsert(source: str, *, having: bool) -> str:
    """Add the summed figures of ``source``'s rows to their tallies."""
    sums = ", ".join(f"sum({f})" for f in _FIGURES)
    # An update that changes no figure (only a log's change time, say) nets out: nothing to
    # write.
    nonzero = " OR ".join(f"sum({f}) <> 0" for f in _FIGURES)
    added = ", ".join(f"{f} = t.{f} + excluded.{f}" for f in _FIGURES)
    return (
        f"INSERT INTO log_tally AS t ({_KEY}, {', '.join(_FIGURES)}) "
        f"SELECT {_KEY}, {sums} FROM ({source}) AS signed GROUP BY {_KEY} "
        + (f"HAVING {nonzero} " if having else "")
        + f"ORDER BY {_KEY} ON CONFLICT ({_KEY}) DO UPDATE SET {added}"
    )


_PG_FUNCTION = f"""
CREATE FUNCTION log_tally_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_upsert(_signed("added", 1), having=False)};
    ELSIF TG_OP = 'UPDATE' THEN
        {_upsert(f"{_signed('added', 1)} UNION ALL {_signed('removed', -1)}", having=True)};
    ELSIF TG_OP = 'DELETE' THEN
        {_upsert(_signed("removed", -1), having=False)};
    ELSE
        TRUNCATE log_tally;
    END IF;
    RETURN NULL;
END
$$
"""

_PG_TRIGGERS = {
    "log_tally_insert": "AFTER INSERT ON contact_log REFERENCING NEW TABLE AS added",
    "log_tally_update": (
        "AFTER UPDATE ON contact_log REFERENCING OLD TABLE AS removed NEW TABLE AS added"
    ),
    "log_tally_delete": "AFTER DELETE ON contact_log REFERENCING OLD TABLE AS removed",
    "log_tally_truncate": "AFTER TRUNCATE ON contact_log",
}


def _sqlite_row(row: str, sign: int) -> str:
    """The upsert of one row (NEW or OLD) into its tally."""
    added = ", ".join(f"{f} = {f} + excluded.{f}" for f in _FIGURES)
    return (
        f"INSERT INTO log_tally ({_KEY}, {', '.join(_FIGURES)}) VALUES ({row}.day,"
        f" {row}.district_id, {row}.user_id, {row}.kommun_id, coalesce({row}.forening_id, 0),"
        f" coalesce({row}.turf_id, 0), {sign}, {sign} * {row}.conversations,"
        f" CASE WHEN {row}.kind = 'door' THEN {sign} ELSE 0 END,"
        f" CASE WHEN {row}.new_member THEN {sign} ELSE 0 END)"
        f" ON CONFLICT ({_KEY}) DO UPDATE SET {added};"
    )


# The tallies of the logs already there, on an empty log_tally (the benchmarks' bulk load,
# which runs with triggers off, sums them with this too).
BACKFILL = (
    f"INSERT INTO log_tally ({_KEY}, {', '.join(_FIGURES)}) "
    f"SELECT {_KEY}, {', '.join(f'sum({f})' for f in _FIGURES)} "
    f"FROM ({_signed('contact_log', 1)}) AS signed GROUP BY {_KEY}"
)

_SQLITE_TRIGGERS = {
    "log_tally_insert": ("AFTER INSERT", "NEW", _sqlite_row("NEW", 1)),
    "log_tally_update_old": ("AFTER UPDATE", "OLD", _sqlite_row("OLD", -1)),
    "log_tally_update_new": ("AFTER UPDATE", "NEW", _sqlite_row("NEW", 1)),
    "log_tally_delete": ("AFTER DELETE", "OLD", _sqlite_row("OLD", -1)),
}


def upgrade() -> None:
    op.create_table(
        "log_tally",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kommun_id", sa.Integer(), nullable=False),
        sa.Column("forening_id", sa.Integer(), nullable=False),
        sa.Column("turf_id", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in _FIGURES),
        sa.PrimaryKeyConstraint(*_KEY.split(", ")),
    )
    op.create_index("ix_log_tally_kommun_day", "log_tally", ["kommun_id", "day"])
    op.create_index("ix_log_tally_forening_day", "log_tally", ["forening_id", "day"])
    op.create_index("ix_log_tally_turf_day", "log_tally", ["turf_id", "day"])
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        # No log written between the tally's backfill and its triggers: writers wait for
        # this transaction (phones sync again; a record is applied once).
        op.execute("LOCK TABLE contact_log IN SHARE ROW EXCLUSIVE MODE")
        # A day's tallies are updated with every log: room on their page keeps those
        # updates off the indexes (HOT), whose columns they never change.
        op.execute("ALTER TABLE log_tally SET (fillfactor = 70)")
    op.execute(BACKFILL)
    if postgresql:
        op.execute("ANALYZE log_tally")
        op.execute(_PG_FUNCTION)
        for name, when in _PG_TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {name} {when} FOR EACH STATEMENT "
                "EXECUTE FUNCTION log_tally_apply()"
            )
    else:
        for name, (when, row, upsert) in _SQLITE_TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {name} {when} ON contact_log "
                f"WHEN {row}.withdrawn_at IS NULL BEGIN {upsert} END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in _PG_TRIGGERS:
            op.execute(f"DROP TRIGGER {name} ON contact_log")
        op.execute("DROP FUNCTION log_tally_apply()")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("log_tally")
