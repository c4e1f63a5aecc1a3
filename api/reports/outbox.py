"""The nightly email outbox: at most one email per recipient per day.

States (OutboxStatus): pending -> sending -> sent | pending (4xx, retried later) | failed
(5xx, or too many tries). A row moves to 'sending' in a committed transaction right before
its SMTP conversation, so a crash mid-send leaves it 'sending'; the next run marks such rows
'lost' and never resends them. That trades a possibly lost email for never sending one twice.
Only one process sends at a time (the outbox's job lock), so a pending row read in a batch is
still pending when its turn comes.
"""

from datetime import date, datetime, timedelta

from sqlalchemy import Date, Integer, Select, String, literal, update
from sqlmodel import Session, col, select

from api.db import conflict_insert
from api.models import EmailOutbox, OutboxStatus, UTCDateTime

__all__ = [
    "KIND",
    "MAX_ATTEMPTS",
    "claim",
    "due_batch",
    "enqueue",
    "mark_lost",
    "record_result",
]

KIND = "nightly_progress"
MAX_ATTEMPTS = 5
RETRY_AFTER = timedelta(minutes=15)


def enqueue(*, session: Session, user_ids: Select, day: date, now: datetime) -> int:
    """Queue the day's email for each user ``user_ids`` selects unless it is already queued,
    in one INSERT ... SELECT; returns the number of new rows."""
    table = EmailOutbox.__table__
    constants = {
        "day": literal(day, Date()),
        "kind": literal(KIND, String()),
        "status": literal(OutboxStatus.pending.value, String()),
        "attempts": literal(0, Integer()),
        "next_attempt_at": literal(now, UTCDateTime()),
        "created_at": literal(now, UTCDateTime()),
    }
    # Added to the recipients' own query, so that it keeps its WHERE: SQLite needs one
    # between an INSERT's SELECT and its ON CONFLICT.
    rows = user_ids.add_columns(*constants.values())
    stmt = conflict_insert(session, table)
    stmt = stmt.from_select(["user_id", *constants], rows).on_conflict_do_nothing(
        index_elements=["user_id", "day", "kind"]
    )
    # An INSERT's row count is only kept when asked for.
    return session.execute(stmt.execution_options(preserve_rowcount=True)).rowcount


def mark_lost(*, session: Session) -> int:
    """Rows left 'sending' by a crashed run: never resent."""
    return session.execute(
        update(EmailOutbox)
        .where(EmailOutbox.status == OutboxStatus.sending)
        .values(status=OutboxStatus.lost, last_error="the sender stopped mid-send; not resent")
    ).rowcount


def due_batch(
    *, session: Session, day: date, now: datetime, after: int, limit: int
) -> list[tuple[int, int]]:
    """(outbox id, user id) of the next ``limit`` due emails of ``day`` past id ``after``."""
    rows = session.exec(
        select(EmailOutbox.id, EmailOutbox.user_id)
        .where(
            EmailOutbox.day == day,
            EmailOutbox.status == OutboxStatus.pending,
            EmailOutbox.next_attempt_at <= now,
            col(EmailOutbox.id) > after,
        )
        .order_by(EmailOutbox.id)
        .limit(limit)
    ).all()
    return [(outbox_id, user_id) for outbox_id, user_id in rows]


def claim(*, session: Session, outbox_id: int) -> bool:
    """Move a pending email to 'sending'; the caller commits before sending it."""
    return (
        session.execute(
            update(EmailOutbox)
            .where(col(EmailOutbox.id) == outbox_id, EmailOutbox.status == OutboxStatus.pending)
            .values(status=OutboxStatus.sending, attempts=EmailOutbox.attempts + 1)
        ).rowcount
        == 1
    )


def record_result(
    *,
    session: Session,
    outbox_id: int,
    now: datetime,
    error: str | None = None,
    permanent: bool = False,
    skipped: bool = False,
    lost: bool = False,
) -> OutboxStatus:
    """Store how a send ended; returns the new status."""
    if skipped:
        status = OutboxStatus.skipped
    elif error is None:
        status = OutboxStatus.sent
    elif lost:  # the server may have it; sending it again could deliver it twice
        status = OutboxStatus.lost
    elif permanent:
        status = OutboxStatus.failed
    else:
        return _record_failure(session=session, outbox_id=outbox_id, now=now, error=error)
    # One UPDATE, without reading the row first: every email but a passing failure.
    session.execute(
        update(EmailOutbox)
        .where(col(EmailOutbox.id) == outbox_id)
        .values(
            status=status,
            last_error=error,
            sent_at=now if status == OutboxStatus.sent else EmailOutbox.sent_at,
        )
    )
    return status


def _record_failure(*, session: Session, outbox_id: int, now: datetime, error: str) -> OutboxStatus:
    """A passing failure: tried again later, unless this was the last try."""
    row = session.get(EmailOutbox, outbox_id)
    if row.attempts >= MAX_ATTEMPTS:
        status = OutboxStatus.failed
    else:
        status = OutboxStatus.pending
        row.next_attempt_at = now + RETRY_AFTER * max(row.attempts, 1)
    row.status, row.last_error = status, error
    session.add(row)
    return status
