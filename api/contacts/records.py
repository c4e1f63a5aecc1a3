"""What the general logging path (api.contacts.service) and the one-statement path
(api.contacts.fast) share, so that both store the same row for the same record and hold it
to the same time window: the columns, the body hash, the row and the window."""

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from api.contacts.rules import conversations_of, local_day
from api.contacts.schemas import ContactIn
from api.settings import Settings

__all__ = ["COLUMNS", "body_hash", "new_row", "time_window"]

# A contact_log row's columns as written by logging, with their PostgreSQL array types.
COLUMNS = {
    "client_uuid": "uuid",
    "body_hash": "text",
    "user_id": "integer",
    "district_id": "integer",
    "kommun_id": "integer",
    "forening_id": "integer",
    "kind": "text",
    "outcome": "text",
    "quantity": "integer",
    "conversations": "integer",
    "new_member": "boolean",
    "occurred_at": "timestamptz",
    "day": "date",
    "received_at": "timestamptz",
    "changed_at": "timestamptz",
}


def body_hash(record: ContactIn) -> str:
    """What tells a replay of a record from another record under the same client_uuid."""
    # The location is left out: a stored hash of an exact point (with the other fields
    # known) could be searched back to the door. The district it resolves to is stored.
    canonical = record.model_dump(mode="json", exclude={"location"})
    # Left out when absent, so that a record's hash is what it was before turfs existed.
    if canonical.get("turf") is None:
        canonical.pop("turf", None)
    canonical["topics"] = sorted(set(canonical["topics"]))
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def time_window(settings: Settings, now: datetime) -> tuple[datetime, datetime]:
    """The earliest and latest occurred_at a new record may have."""
    return (
        now - timedelta(days=settings.max_backdate_days),
        now + timedelta(minutes=settings.clock_skew_minutes),
    )


def new_row(
    record: ContactIn, *, body_hash: str, settings: Settings, now: datetime
) -> dict[str, Any]:
    """The columns of a new contact_log row that come from the record and the clock."""
    quantity = record.count or 1
    return {
        "client_uuid": record.client_uuid,
        "body_hash": body_hash,
        "kind": record.kind.value,
        "outcome": record.outcome.value,
        "quantity": quantity,
        "conversations": conversations_of(record.kind, record.outcome, quantity),
        "new_member": record.new_member,
        "occurred_at": record.occurred_at,
        "day": local_day(record.occurred_at, settings.timezone),
        "received_at": now,
        "changed_at": now,
    }
