"""Logging contacts exactly once: the general path, which takes every record (a phone's
offline batch, a point to place, any caller) and gives every refusal its message.
``api.contacts.fast`` takes the common single record in one statement first."""

import contextlib
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy import insert, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from api.auth.scope import Scope
from api.contacts.records import COLUMNS, body_hash, new_row, time_window
from api.contacts.schemas import ContactIn, ContactResult, FieldError
from api.models import ContactLog, ContactTopic, District, Turf
from api.settings import Settings
from api.topics.service import active_codes
from geo import first_covering

__all__ = ["log_contacts", "parse_records"]


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


# One array per column: the statement's text is the same for any batch size, so PostgreSQL
# and psycopg parse and plan it once instead of a new 7,500-parameter statement per batch.
# The general path also writes the turf a record names (the one-statement path takes none).
_COLUMNS = {**COLUMNS, "turf_id": "integer"}
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


def _resolve_turfs(session: Session, records: list[ContactIn]) -> dict[str, tuple[int, int]]:
    """(turf id, district id) of the turfs the records name, by code."""
    codes = {r.turf for r in records if r.turf is not None}
    if not codes:
        return {}
    found = session.exec(
        select(Turf.code, Turf.id, Turf.district_id).where(col(Turf.code).in_(codes))
    )
    return {code: (turf_id, district_id) for code, turf_id, district_id in found}


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
    hashed: str | None = None,
) -> ContactResult:
    """The answer to a uuid that was applied before: the original, or a conflict."""
    first_id, first_user, first_hash = first
    hashed = hashed or body_hash(record)
    if first_user == user_id and first_hash == hashed:
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
    turfs = _resolve_turfs(session, valid)
    topics = active_codes(session=session)
    forening_id = scope.own_forening.id if scope.own_forening else None
    earliest, latest = time_window(settings, now)

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
        turf_id = None
        if record.turf is not None and district is not None:
            turf_id, turf_district = turfs.get(record.turf, (None, None))
            if turf_id is None:
                errors.append(FieldError(field="turf", message=f"no turf {record.turf}"))
            elif turf_district != district.id:
                errors.append(
                    FieldError(field="turf", message=f"turf {record.turf} is not in the district")
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
        hashed = body_hash(record)
        rows.append(
            {
                **new_row(record, body_hash=hashed, settings=settings, now=now),
                "user_id": user.id,
                "district_id": district.id,
                "kommun_id": district.kommun_id,
                "forening_id": forening_id,
                "turf_id": turf_id,
            }
        )
        topic_rows.setdefault(record.client_uuid, sorted(set(record.topics)))
        pending.append((index, record, hashed))
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
    for index, record, hashed in pending:
        uuid = record.client_uuid
        if uuid in inserted and uuid not in applied:
            applied[uuid] = (inserted[uuid], user.id, hashed)
            results[index] = ContactResult(
                index=index, client_uuid=uuid, status="created", id=inserted[uuid]
            )
        else:
            results[index] = _replay(index, record, applied[uuid], user.id, hashed)
    for index, record in refused:
        if record.client_uuid in applied:
            results[index] = _replay(index, record, applied[record.client_uuid], user.id)
    return results  # type: ignore[return-value]
