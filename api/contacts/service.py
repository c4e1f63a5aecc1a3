"""Logging contacts exactly once, correcting and withdrawing them, and the topic list."""

import contextlib
import hashlib
import json
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy import insert, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from api.auth.scope import Scope
from api.auth.service import LAST_USED_GRANULARITY, hash_token
from api.contacts.rules import conversations_of, local_day
from api.contacts.schemas import (
    ContactCorrection,
    ContactIn,
    ContactRead,
    ContactResult,
    FieldError,
    TopicCreate,
    TopicUpdate,
)
from api.db import FastDb, save_unique
from api.errors import AppError, Conflict, NotFound, Unprocessable
from api.models import (
    ContactAudit,
    ContactKind,
    ContactLog,
    ContactTopic,
    District,
    Outcome,
    Role,
    Topic,
    UnitKind,
)
from api.pagination import PageParams, paginate
from api.settings import Settings
from geo import first_covering

__all__ = [
    "audit_trail",
    "correct_contact",
    "create_topic",
    "get_contact",
    "list_contacts",
    "list_topics",
    "log_contact_fast",
    "log_contacts",
    "parse_records",
    "to_read",
    "update_topic",
    "withdraw_contact",
]


def _body_hash(record: ContactIn) -> str:
    # The location is left out: a stored hash of an exact point (with the other fields
    # known) could be searched back to the door. The district it resolves to is stored.
    canonical = record.model_dump(mode="json", exclude={"location"})
    canonical["topics"] = sorted(set(canonical["topics"]))
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def parse_records(raw: list[Any]) -> list[ContactIn | ContactResult]:
    """Validate each raw record on its own; a bad one becomes an ``invalid`` result."""
    parsed: list[ContactIn | ContactResult] = []
    for index, item in enumerate(raw):
        try:
            parsed.append(ContactIn.model_validate(item))
        except ValidationError as exc:
            uuid = None
            if isinstance(item, dict):
                with contextlib.suppress(ValueError):
                    uuid = UUID(str(item.get("client_uuid")))
            errors = [
                FieldError(
                    field=".".join(str(p) for p in e["loc"]) or "record",
                    message=e["msg"],
                )
                for e in exc.errors()
            ]
            parsed.append(
                ContactResult(index=index, client_uuid=uuid, status="invalid", errors=errors)
            )
    return parsed


_COLUMNS = {
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

# One array per column: the statement's text is the same for any batch size, so PostgreSQL
# and psycopg parse and plan it once instead of a new 7,500-parameter statement per batch.
_PG_INSERT = text(
    f"INSERT INTO contact_log ({', '.join(_COLUMNS)}) "
    f"SELECT * FROM unnest({', '.join(f'CAST(:{c} AS {t}[])' for c, t in _COLUMNS.items())}) "
    "ON CONFLICT (client_uuid) DO NOTHING RETURNING client_uuid, id"
)
_PG_TOPICS = text(
    "INSERT INTO contact_topic (contact_id, topic) "
    "SELECT * FROM unnest(CAST(:ids AS integer[]), CAST(:topics AS text[]))"
)


def _insert_ignoring_duplicates(session: Session, rows: list[dict[str, Any]]) -> dict[UUID, int]:
    """Insert rows whose client_uuid is new; returns {uuid: id} for those inserted."""
    if not rows:
        return {}
    # Concurrent batches holding the same uuids in different orders would wait on each
    # other's rows and deadlock; in one order they merely queue.
    rows = sorted(rows, key=lambda r: r["client_uuid"])
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        arrays = {c: [r[c] for r in rows] for c in _COLUMNS}
        return {row.client_uuid: row.id for row in session.execute(_PG_INSERT, arrays)}
    stmt = sqlite_insert(ContactLog)
    stmt = stmt.on_conflict_do_nothing(index_elements=["client_uuid"]).returning(
        ContactLog.client_uuid, ContactLog.id
    )
    return {row.client_uuid: row.id for row in session.execute(stmt, rows)}


def _resolve_districts(
    session: Session, records: list[ContactIn]
) -> tuple[dict[str, District], dict[int, District | None]]:
    """Districts by code, and the district found for each record given as a point."""
    codes = {r.district_code for r in records if r.district_code is not None}
    by_code: dict[str, District] = {}
    if codes:
        # Only the columns logging needs: the geometry would be most of the bytes.
        found = session.exec(
            select(District.id, District.code, District.kommun_id).where(
                col(District.code).in_(codes)
            )
        )
        by_code = {d.code: d for d in found}
    by_point: dict[int, District | None] = {}
    for i, record in enumerate(records):
        if record.location is None:
            continue
        lon, lat = record.location.lon, record.location.lat
        candidates = list(
            session.exec(
                select(District)
                .where(
                    District.min_lon <= lon,
                    District.max_lon >= lon,
                    District.min_lat <= lat,
                    District.max_lat >= lat,
                )
                .order_by(District.code)
            )
        )
        hit = first_covering(lon, lat, [d.geom_wkb for d in candidates])
        by_point[i] = None if hit is None else candidates[hit]
    return by_code, by_point


def _active_topics(session: Session) -> set[str]:
    return set(session.exec(select(Topic.code).where(col(Topic.active))))


def _applied(session: Session, uuids: set[UUID]) -> dict[UUID, tuple[int, int, str]]:
    """For uuids already applied: (id, user_id, body_hash) of the record that applied them."""
    if not uuids:
        return {}
    query = select(
        ContactLog.client_uuid, ContactLog.id, ContactLog.user_id, ContactLog.body_hash
    ).where(col(ContactLog.client_uuid).in_(uuids))
    return {row.client_uuid: (row.id, row.user_id, row.body_hash) for row in session.exec(query)}


def _replay(
    index: int,
    record: ContactIn,
    first: tuple[int, int, str],
    user_id: int,
    body_hash: str | None = None,
) -> ContactResult:
    """The answer to a uuid that was applied before: the original, or a conflict."""
    first_id, first_user, first_hash = first
    body_hash = body_hash or _body_hash(record)
    if first_user == user_id and first_hash == body_hash:
        return ContactResult(
            index=index, client_uuid=record.client_uuid, status="duplicate", id=first_id
        )
    message = (
        "this client_uuid was already used for a different record"
        if first_user == user_id
        else "this client_uuid is already taken; generate a new one"
    )
    return ContactResult(
        index=index,
        client_uuid=record.client_uuid,
        status="conflict",
        errors=[FieldError(field="client_uuid", message=message)],
    )


def _time_window(settings: Settings, now: datetime) -> tuple[datetime, datetime]:
    """The earliest and latest occurred_at a new record may have."""
    return (
        now - timedelta(days=settings.max_backdate_days),
        now + timedelta(minutes=settings.clock_skew_minutes),
    )


def _fields(
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


def log_contacts(
    *,
    session: Session,
    scope: Scope,
    settings: Settings,
    records: list[ContactIn | ContactResult],
    now: datetime,
) -> list[ContactResult]:
    """Apply each record exactly once and return one result per record, in order.

    A record whose client_uuid was already applied returns the original's id when its
    body is the same (``duplicate``), and ``conflict`` when it differs or when the uuid
    belongs to another user, whose record is neither shown nor changed.
    """
    user = scope.user
    valid = [r for r in records if isinstance(r, ContactIn)]
    by_code, by_point = _resolve_districts(session, valid)
    topics = _active_topics(session)
    forening_id = scope.own_forening.id if scope.own_forening else None
    earliest, latest = _time_window(settings, now)

    results: list[ContactResult | None] = []
    # Records refused below are checked for being replays before the refusal stands: a
    # record that was applied stays applied even when its topic was retired or its day has
    # since fallen out of the window. (Valid replays are caught by the insert itself.)
    refused: list[tuple[int, ContactIn]] = []
    pending: list[tuple[int, ContactIn, str]] = []
    rows: list[dict[str, Any]] = []
    topic_rows: dict[UUID, list[str]] = {}
    valid_index = 0
    for index, record in enumerate(records):
        if isinstance(record, ContactResult):
            record.index = index
            results.append(record)
            continue
        point_index, valid_index = valid_index, valid_index + 1
        errors: list[FieldError] = []
        if record.location is not None:
            district = by_point.get(point_index)
            if district is None:
                errors.append(FieldError(field="location", message="the point is in no district"))
        else:
            district = by_code.get(record.district_code)
            if district is None:
                errors.append(
                    FieldError(field="district_code", message=f"no district {record.district_code}")
                )
        if record.occurred_at > latest:
            errors.append(FieldError(field="occurred_at", message="is in the future"))
        elif record.occurred_at < earliest:
            errors.append(
                FieldError(
                    field="occurred_at",
                    message=f"is more than {settings.max_backdate_days} days ago",
                )
            )
        unknown = sorted(set(record.topics) - topics)
        if unknown:
            errors.append(FieldError(field="topics", message=f"unknown: {', '.join(unknown)}"))
        if errors:
            results.append(
                ContactResult(
                    index=index, client_uuid=record.client_uuid, status="invalid", errors=errors
                )
            )
            refused.append((index, record))
            continue
        if not scope.sees_district(district):
            results.append(
                ContactResult(
                    index=index,
                    client_uuid=record.client_uuid,
                    status="forbidden",
                    errors=[
                        FieldError(
                            field="district_code", message="the district is outside your unit"
                        )
                    ],
                )
            )
            refused.append((index, record))
            continue
        body_hash = _body_hash(record)
        rows.append(
            {
                **_fields(record, body_hash=body_hash, settings=settings, now=now),
                "user_id": user.id,
                "district_id": district.id,
                "kommun_id": district.kommun_id,
                "forening_id": forening_id,
            }
        )
        topic_rows.setdefault(record.client_uuid, sorted(set(record.topics)))
        pending.append((index, record, body_hash))
        results.append(None)

    inserted = _insert_ignoring_duplicates(session, rows)
    links = [
        {"contact_id": inserted[u], "topic": t}
        for u, ts in topic_rows.items()
        if u in inserted
        for t in ts
    ]
    if links and session.get_bind().dialect.name == "postgresql":
        ids, names = [x["contact_id"] for x in links], [x["topic"] for x in links]
        session.execute(_PG_TOPICS, {"ids": ids, "topics": names})
    elif links:
        session.execute(insert(ContactTopic), links)

    others = {rec.client_uuid for _, rec, _ in pending if rec.client_uuid not in inserted}
    others |= {rec.client_uuid for _, rec in refused if rec.client_uuid not in inserted}
    applied = _applied(session, others)  # replays, and inserts of a concurrent request
    for index, record, body_hash in pending:
        uuid = record.client_uuid
        if uuid in inserted and uuid not in applied:
            applied[uuid] = (inserted[uuid], user.id, body_hash)
            results[index] = ContactResult(
                index=index, client_uuid=uuid, status="created", id=inserted[uuid]
            )
        else:
            results[index] = _replay(index, record, applied[uuid], user.id, body_hash)
    for index, record in refused:
        if record.client_uuid in applied:
            results[index] = _replay(index, record, applied[record.client_uuid], user.id)
    return results  # type: ignore[return-value]


# The common case of POST /contacts as one statement over arrays of records, on PostgreSQL:
# a volunteer or förening lead with a live token logs a new record by district code, in
# their förening's kommun (the reach Scope.sees_district gives them), with active topics.
# Any other record inserts nothing and takes the general path, which also gives every
# refusal its message.
_FAST_INPUT = {
    # The row's own columns; the statement finds the author's and the district's ids.
    **{c: t for c, t in _COLUMNS.items() if not c.endswith("_id")},
    "token_hash": "text",
    "idle_since": "timestamptz",
    "touch_before": "timestamptz",
    "district_code": "text",
    "topics": "text",  # comma-separated: one array element per record
}
_FAST_LOG = f"""
WITH input AS (
    SELECT * FROM unnest({", ".join(f"%({c})s::{t}[]" for c, t in _FAST_INPUT.items())})
        AS i({", ".join(_FAST_INPUT)})
), fit AS (
    SELECT i.*, t.id AS device_id, t.last_used_at, u.id AS user_id, f.id AS forening_id,
           d.id AS district_id, d.kommun_id
    FROM input i
    JOIN device_token t ON t.token_hash = i.token_hash
    JOIN app_user u ON u.id = t.user_id
    JOIN forening f ON f.id = u.unit_id
    JOIN district d ON d.code = i.district_code AND d.kommun_id = f.kommun_id
    WHERE t.revoked_at IS NULL AND t.last_used_at >= i.idle_since AND u.is_active
      AND u.unit_kind = '{UnitKind.forening.value}'
      AND u.role IN ('{Role.volunteer.value}', '{Role.forening_lead.value}')
      AND (SELECT count(*) FROM topic
           WHERE code = ANY(string_to_array(i.topics, ',')) AND active)
          = cardinality(string_to_array(i.topics, ','))
), added AS (
    INSERT INTO contact_log ({", ".join(_COLUMNS)})
    SELECT {", ".join(_COLUMNS)} FROM fit ORDER BY client_uuid
    ON CONFLICT (client_uuid) DO NOTHING
    RETURNING client_uuid, id
), linked AS (
    INSERT INTO contact_topic (contact_id, topic)
    SELECT added.id, topic FROM added JOIN input USING (client_uuid)
    CROSS JOIN unnest(string_to_array(input.topics, ',')) AS topic
), used AS (
    SELECT device_id, max(received_at) AS at, min(touch_before) AS stale_before
    FROM fit GROUP BY device_id
), touched AS (
    -- As in the general path: a device row that another request is writing is skipped, and
    -- the staleness is checked again on the row as it is when locked.
    UPDATE device_token SET last_used_at = used.at FROM used
    WHERE device_token.id = used.device_id AND device_token.last_used_at < used.stale_before
      AND device_token.id IN (
        SELECT id FROM device_token WHERE id IN (SELECT device_id FROM used)
        FOR UPDATE SKIP LOCKED
      )
)
SELECT client_uuid, id FROM added
"""


async def log_contact_fast(
    *, db: FastDb, settings: Settings, raw_token: str, record: ContactIn, now: datetime
) -> ContactResult | None:
    """Log a plain new record in a statement shared with others, or None for the general path."""
    earliest, latest = _time_window(settings, now)
    if record.location is not None or not earliest <= record.occurred_at <= latest:
        return None
    row = _fields(record, body_hash=_body_hash(record), settings=settings, now=now)
    row.update(
        token_hash=hash_token(raw_token),
        idle_since=now - timedelta(days=settings.device_token_idle_days),
        touch_before=now - LAST_USED_GRANULARITY,
        district_code=record.district_code,
        # Safe: a topic code has no commas (TopicCode in schemas).
        topics=",".join(sorted(set(record.topics))),
    )
    found = await db.fetch_grouped(_FAST_LOG, row, key="client_uuid")
    if found is None:
        return None
    return ContactResult(index=0, client_uuid=record.client_uuid, status="created", id=found[1])


def _leads(scope: Scope, contact: ContactLog) -> bool:
    """Whether the caller leads the unit the contact belongs to (its kommun or förening)."""
    if scope.leads_kommun(contact.kommun_id):
        return True
    return (
        scope.role == Role.forening_lead
        and contact.forening_id is not None
        and contact.forening_id == scope.user.unit_id
    )


def _visible(scope: Scope, contact: ContactLog) -> bool:
    return scope.unrestricted or contact.user_id == scope.user.id or _leads(scope, contact)


def get_contact(*, session: Session, scope: Scope, contact_id: int) -> ContactLog:
    """A contact the caller wrote or leads; others are not found."""
    contact = session.get(ContactLog, contact_id)
    if contact is None or not _visible(scope, contact):
        raise NotFound(f"contact {contact_id} not found")
    return contact


def to_read(*, session: Session, contacts: list[ContactLog]) -> list[ContactRead]:
    """API views of contacts, with their district codes and topics."""
    if not contacts:
        return []
    ids = [c.id for c in contacts]
    topics: dict[int, list[str]] = {}
    for link in session.exec(select(ContactTopic).where(col(ContactTopic.contact_id).in_(ids))):
        topics.setdefault(link.contact_id, []).append(link.topic)
    codes = dict(
        session.exec(
            select(District.id, District.code).where(
                col(District.id).in_({c.district_id for c in contacts})
            )
        ).all()
    )
    return [
        ContactRead(
            id=c.id,
            client_uuid=c.client_uuid,
            user_id=c.user_id,
            district_code=codes[c.district_id],
            kind=c.kind,
            outcome=c.outcome,
            count=c.quantity,
            conversations=c.conversations,
            topics=sorted(topics.get(c.id, [])),
            new_member=c.new_member,
            occurred_at=c.occurred_at,
            received_at=c.received_at,
            withdrawn_at=c.withdrawn_at,
        )
        for c in contacts
    ]


def list_contacts(
    *,
    session: Session,
    scope: Scope,
    page: PageParams,
    mine: bool = False,
    district_code: str | None = None,
    include_withdrawn: bool = False,
) -> tuple[list[ContactLog], int]:
    """Contacts the caller wrote or leads, newest first."""
    query = select(ContactLog).order_by(
        col(ContactLog.occurred_at).desc(), col(ContactLog.id).desc()
    )
    if mine or scope.role == Role.volunteer:
        query = query.where(ContactLog.user_id == scope.user.id)
    elif not scope.unrestricted:
        led = col(ContactLog.kommun_id).in_(scope.led_kommun_ids)
        own = ContactLog.user_id == scope.user.id
        if scope.role == Role.forening_lead:
            query = query.where(led | own | (ContactLog.forening_id == scope.user.unit_id))
        else:
            query = query.where(led | own)
    if district_code is not None:
        query = query.join(District, District.id == ContactLog.district_id).where(
            District.code == district_code
        )
    if not include_withdrawn:
        query = query.where(col(ContactLog.withdrawn_at).is_(None))
    return paginate(session, query, page)


def _audit(session: Session, contact: ContactLog, user_id: int, action: str, changes: dict) -> None:
    session.add(
        ContactAudit(
            contact_id=contact.id,
            user_id=user_id,
            action=action,
            changes=json.dumps(changes, ensure_ascii=False, sort_keys=True, default=str),
        )
    )


def _within_window(settings: Settings, contact: ContactLog, now: datetime) -> bool:
    return now - contact.received_at <= timedelta(hours=settings.correction_window_hours)


def correct_contact(
    *,
    session: Session,
    scope: Scope,
    settings: Settings,
    contact_id: int,
    data: ContactCorrection,
    now: datetime,
) -> ContactLog:
    """The author corrects their own log within the correction window."""
    contact = get_contact(session=session, scope=scope, contact_id=contact_id)
    if contact.user_id != scope.user.id:
        raise AppError("contact: only its author can correct a log; leads may withdraw it", 403)
    if contact.withdrawn_at is not None:
        raise Conflict(f"contact {contact_id} is withdrawn")
    if not _within_window(settings, contact, now):
        raise AppError(
            f"contact: logs can be corrected for {settings.correction_window_hours} hours", 403
        )
    changes: dict[str, list[Any]] = {}
    kind = data.kind or ContactKind(contact.kind)
    outcome = data.outcome or Outcome(contact.outcome)
    quantity = data.count if data.count is not None else contact.quantity
    if kind != ContactKind.stall:
        if data.count is not None and data.count != 1:
            raise Unprocessable("count: only for kind 'stall'")
        quantity = 1
    if data.district_code is not None:
        district = session.exec(select(District).where(District.code == data.district_code)).first()
        if district is None:
            raise Unprocessable(f"district_code: no district {data.district_code}")
        scope.require(scope.sees_district(district), f"district {data.district_code}")
        if district.id != contact.district_id:
            changes["district_id"] = [contact.district_id, district.id]
            contact.district_id, contact.kommun_id = district.id, district.kommun_id
    for field, new in (
        ("kind", kind.value),
        ("outcome", outcome.value),
        ("quantity", quantity),
        ("conversations", conversations_of(kind, outcome, quantity)),
        ("new_member", contact.new_member if data.new_member is None else data.new_member),
    ):
        if getattr(contact, field) != new:
            changes[field] = [getattr(contact, field), new]
            setattr(contact, field, new)
    if data.topics is not None:
        new_topics = sorted(set(data.topics))
        active = _active_topics(session)
        unknown = sorted(set(new_topics) - active)
        if unknown:
            raise Unprocessable(f"topics: unknown: {', '.join(unknown)}")
        links = session.exec(select(ContactTopic).where(ContactTopic.contact_id == contact.id))
        old_links = list(links)
        old_topics = sorted(link.topic for link in old_links)
        if old_topics != new_topics:
            changes["topics"] = [old_topics, new_topics]
            for link in old_links:
                session.delete(link)
            session.flush()
            for topic in new_topics:
                session.add(ContactTopic(contact_id=contact.id, topic=topic))
    if changes:
        contact.changed_at = now
        session.add(contact)
        _audit(session, contact, scope.user.id, "corrected", changes)
        session.flush()
    return contact


def withdraw_contact(
    *, session: Session, scope: Scope, settings: Settings, contact_id: int, now: datetime
) -> ContactLog:
    """The author (within the window) or a lead of the unit withdraws a log; it stops counting."""
    contact = get_contact(session=session, scope=scope, contact_id=contact_id)
    is_author = contact.user_id == scope.user.id
    if not _leads(scope, contact) and not (is_author and _within_window(settings, contact, now)):
        raise AppError(
            f"contact: its author may withdraw it within {settings.correction_window_hours} "
            "hours; after that a lead of the unit can",
            403,
        )
    if contact.withdrawn_at is not None:
        raise Conflict(f"contact {contact_id} is already withdrawn")
    contact.withdrawn_at, contact.withdrawn_by_user_id = now, scope.user.id
    contact.changed_at = now
    session.add(contact)
    _audit(session, contact, scope.user.id, "withdrawn", {"withdrawn_at": [None, now.isoformat()]})
    session.flush()
    return contact


def audit_trail(*, session: Session, scope: Scope, contact_id: int) -> list[ContactAudit]:
    """Corrections and withdrawals of a contact, oldest first."""
    contact = get_contact(session=session, scope=scope, contact_id=contact_id)
    return list(
        session.exec(
            select(ContactAudit)
            .where(ContactAudit.contact_id == contact.id)
            .order_by(ContactAudit.at, ContactAudit.id)
        )
    )


def list_topics(*, session: Session, include_inactive: bool = False) -> list[Topic]:
    """The topic list, in code order."""
    query = select(Topic).order_by(Topic.code)
    if not include_inactive:
        query = query.where(col(Topic.active))
    return list(session.exec(query))


def _require_operator(scope: Scope) -> None:
    if not scope.unrestricted:
        raise AppError(
            "topics: the topic list is shared by every partidistrikt; an operator changes it "
            "with `knacka topic`",
            403,
        )


def create_topic(*, session: Session, scope: Scope, data: TopicCreate) -> Topic:
    """Add a topic. The list is shared by every partidistrikt, so only operators change it."""
    _require_operator(scope)
    if session.get(Topic, data.code) is not None:
        raise Conflict(f"code: topic {data.code} exists")
    topic = Topic(code=data.code, label=data.label, active=True)
    save_unique(session, topic, f"code: topic {data.code} exists")
    return topic


def update_topic(*, session: Session, scope: Scope, code: str, data: TopicUpdate) -> Topic:
    """Relabel or retire a topic (operators); logs keep the topics they had."""
    _require_operator(scope)
    topic = session.get(Topic, code)
    if topic is None:
        raise NotFound(f"topic {code} not found")
    if data.label is not None:
        topic.label = data.label
    if data.active is not None:
        topic.active = data.active
    session.add(topic)
    return topic
