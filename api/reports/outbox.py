"""The nightly email outbox: at most one email per recipient per day.

States: pending -> sending -> sent | pending (4xx, retried later) | failed (5xx, or too many
tries). A row moves to 'sending' in a committed transaction before any SMTP traffic, so a
crash mid-send leaves it 'sending'; the next run marks such rows 'lost' and never resends
them. That trades a possibly lost email for never sending one twice.
"""

from datetime import date, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from api.models import EmailOutbox

__all__ = ["KIND", "MAX_ATTEMPTS", "claim_next", "enqueue", "mark_lost", "record_result"]

KIND = "nightly_progress"
MAX_ATTEMPTS = 5
RETRY_AFTER = timedelta(minutes=15)


def enqueue(*, session: Session, user_ids: list[int], day: date, now: datetime) -> int:
    """Queue the day's email for each user unless it is already queued; returns new rows."""
    if not user_ids:
        return 0
    dialect = session.get_bind().dialect.name
    stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(EmailOutbox.__table__)
    stmt = stmt.on_conflict_do_nothing(index_elements=["user_id", "day", "kind"])
    connection = session.connection()
    values = {
        "day": day,
        "kind": KIND,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    stmt = stmt.returning(EmailOutbox.__table__.c.id)
    return sum(len(connection.execute(stmt.values(user_id=u, **values)).all()) for u in user_ids)


def mark_lost(*, session: Session) -> int:
    """Rows left 'sending' by a crashed run: never resent."""
    return session.execute(
        update(EmailOutbox)
        .where(EmailOutbox.status == "sending")
        .values(status="lost", last_error="the sender stopped mid-send; not resent")
    ).rowcount


def claim_next(*, session: Session, day: date, now: datetime) -> EmailOutbox | None:
    """Move the next due email of ``day`` to 'sending'; the caller commits before sending."""
    row = session.exec(
        select(EmailOutbox)
        .where(
            EmailOutbox.day == day,
            EmailOutbox.status == "pending",
            EmailOutbox.next_attempt_at <= now,
        )
        .order_by(EmailOutbox.id)
    ).first()
    if row is None:
        return None
    claimed = session.execute(
        update(EmailOutbox)
        .where(col(EmailOutbox.id) == row.id, EmailOutbox.status == "pending")
        .values(status="sending", attempts=EmailOutbox.attempts + 1)
    ).rowcount
    if claimed != 1:
        return None
    session.refresh(row)
    return row


def record_result(
    *,
    session: Session,
    outbox_id: int,
    now: datetime,
    error: str | None = None,
    permanent: bool = False,
    skipped: bool = False,
) -> str:
    """Store how a send ended; returns the new status."""
    row = session.get(EmailOutbox, outbox_id)
    if skipped:
        row.status, row.last_error = "skipped", error
    elif error is None:
        row.status, row.sent_at, row.last_error = "sent", now, None
    elif permanent or row.attempts >= MAX_ATTEMPTS:
        row.status, row.last_error = "failed", error
    else:
        row.status, row.last_error = "pending", error
        row.next_attempt_at = now + RETRY_AFTER * row.attempts
    session.add(row)
    return row.status
