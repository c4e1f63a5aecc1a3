"""Door-level coverage: door visits synced from phones, each exactly once, and what they
add up to per turf and district.

The privacy rule: a visit holds an address, a turf, a day and a neutral status (answered,
not home, no access) and nothing else: no person, no time of day, no link to a contact
record. Whether a household refused or talked, about what, and whether someone joined
lives only in the contact records, at district grain (they may name the turf, never the
address). So the two cannot be joined back to a door.
"""

import contextlib
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy import case, func
from sqlmodel import Session, col, delete, select

from api.auth.scope import Scope
from api.contacts.records import time_window
from api.contacts.rules import local_day
from api.db import conflict_insert
from api.models import (
    Address,
    ContactLog,
    Turf,
    TurfAddress,
    TurfStat,
    Visit,
    VisitStatus,
    utcnow,
)
from api.settings import Settings
from api.turfs.schemas import Coverage, VisitIn, VisitResult

__all__ = [
    "DONE_VISITS",
    "answered_addresses",
    "coverage_of",
    "district_coverage",
    "log_visits",
    "rebuild_turf_stats",
]

# An address is done once someone answered, or after this many visits without an answer.
DONE_VISITS = 2


def _per_turf(session: Session, turf_ids: set[int]) -> dict[int, dict[str, Any]]:
    """Visit and conversation figures per turf, in two grouped queries."""
    if not turf_ids:
        return {}
    answered = case((Visit.status == VisitStatus.answered.value, 1), else_=0)
    doors = (
        select(
            Visit.turf_id,
            Visit.address_id,
            func.count().label("n"),
            func.max(answered).label("ans"),
            func.max(Visit.day).label("last"),
        )
        .where(col(Visit.turf_id).in_(turf_ids))
        .group_by(Visit.turf_id, Visit.address_id)
        .subquery()
    )
    done = case(((doors.c.ans == 1) | (doors.c.n >= DONE_VISITS), 1), else_=0)
    rows = session.execute(
        select(
            doors.c.turf_id,
            func.count(),
            func.coalesce(func.sum(Address.households), 0),
            func.sum(doors.c.ans),
            func.sum(done),
            func.max(doors.c.last),
        )
        .join(Address, Address.id == doors.c.address_id)
        .group_by(doors.c.turf_id)
    )
    found: dict[int, dict[str, Any]] = {}
    for turf_id, knocked, households, ans, done_n, last in rows:
        found[turf_id] = {
            "doors_knocked": knocked,
            "households_knocked": int(households or 0),
            "answered": int(ans or 0),
            "done": int(done_n or 0),
            "last_visit": last,
            "conversations": 0,
        }
    talks = session.execute(
        select(ContactLog.turf_id, func.sum(ContactLog.conversations))
        .where(col(ContactLog.turf_id).in_(turf_ids), col(ContactLog.withdrawn_at).is_(None))
        .group_by(ContactLog.turf_id)
    )
    for turf_id, conversations in talks:
        row = found.setdefault(
            turf_id,
            {
                "doors_knocked": 0,
                "households_knocked": 0,
                "answered": 0,
                "done": 0,
                "last_visit": None,
            },
        )
        row["conversations"] = int(conversations or 0)
    return found


def _status(knocked: int, done: int, addresses: int) -> str:
    if knocked == 0:
        return "not_started"
    return "done" if addresses > 0 and done >= addresses else "in_progress"


def _share(knocked: int, total: int) -> float | None:
    return None if total <= 0 else round(knocked / total, 4)


def coverage_of(*, session: Session, turfs: list[Turf]) -> dict[int, Coverage]:
    """Live coverage of each turf, by turf id, in a fixed number of queries."""
    figures = _per_turf(session, {t.id for t in turfs})
    result = {}
    for t in turfs:
        f = figures.get(t.id, {})
        knocked, households = f.get("doors_knocked", 0), f.get("households_knocked", 0)
        result[t.id] = Coverage(
            doors_knocked=knocked,
            addresses=t.address_count,
            households_knocked=households,
            households=t.households,
            share=_share(households, t.households),
            answered=f.get("answered", 0),
            conversations=f.get("conversations", 0),
            last_visit=f.get("last_visit"),
            status=_status(knocked, f.get("done", 0), t.address_count),
        )
    return result


def answered_addresses(*, session: Session, turf_id: int) -> set[int]:
    """The addresses of a turf where a visit was answered (the walk list marks them)."""
    return set(
        session.exec(
            select(Visit.address_id)
            .where(Visit.turf_id == turf_id, Visit.status == VisitStatus.answered.value)
            .distinct()
        )
    )


def rebuild_turf_stats(session: Session, since: datetime | None) -> int:
    """Rebuild TurfStat for the turfs whose visits or turf-naming contact records changed
    since ``since`` (None: every turf); returns the number of turfs rebuilt.

    Visits keep no time (by design), so "changed since" is read from their day: a visit
    synced after ``since`` happened at most the longest backdating allowed before it, so
    every turf with a visit on or after that day is rebuilt (a few more than changed)."""
    from api.settings import get_settings

    if since is None:
        ids = set(session.exec(select(Turf.id)))
    else:
        settings = get_settings()
        first_day = local_day(since, settings.timezone) - timedelta(
            days=settings.max_backdate_days + 1
        )
        ids = set(session.exec(select(Visit.turf_id).where(Visit.day >= first_day).distinct()))
        ids |= set(
            session.exec(
                select(ContactLog.turf_id)
                .where(col(ContactLog.turf_id).is_not(None), ContactLog.changed_at >= since)
                .distinct()
            )
        )
    if not ids:
        return 0
    figures = _per_turf(session, ids)
    session.exec(delete(TurfStat).where(col(TurfStat.turf_id).in_(ids)))
    built = utcnow()
    for turf_id in sorted(ids):
        f = figures.get(turf_id, {})
        session.add(
            TurfStat(
                turf_id=turf_id,
                doors_knocked=f.get("doors_knocked", 0),
                households_knocked=f.get("households_knocked", 0),
                answered=f.get("answered", 0),
                conversations=f.get("conversations", 0),
                last_visit=f.get("last_visit"),
                built_at=built,
            )
        )
    session.flush()
    return len(ids)


def district_coverage(
    *, session: Session, district_ids: set[int] | None = None, turf_ids: set[int] | None = None
) -> dict[int, tuple[int, int, float | None]]:
    """(doors knocked, households, share of households knocked) as of the last nightly
    rebuild, per district (``district_ids``) or per turf (``turf_ids``)."""
    key = Turf.district_id if district_ids is not None else Turf.id
    wanted = district_ids if district_ids is not None else turf_ids or set()
    if not wanted:
        return {}
    rows = session.execute(
        select(
            key,
            func.coalesce(func.sum(TurfStat.doors_knocked), 0),
            func.coalesce(func.sum(TurfStat.households_knocked), 0),
            func.sum(Turf.households),
        )
        .select_from(Turf)
        .outerjoin(TurfStat, TurfStat.turf_id == Turf.id)
        .where(col(key).in_(wanted), col(Turf.retired_at).is_(None))
        .group_by(key)
    )
    return {
        unit: (int(doors), int(households or 0), _share(int(knocked), int(households or 0)))
        for unit, doors, knocked, households in rows
    }


# -- syncing visits ---------------------------------------------------------------------------


def _invalid(index: int, uuid: UUID | None, field: str, message: str) -> VisitResult:
    return VisitResult(
        index=index,
        client_uuid=uuid,
        status="invalid",
        errors=[{"field": field, "message": message}],
    )


def _parse(index: int, item: Any) -> VisitIn | VisitResult:
    try:
        return VisitIn.model_validate(item)
    except ValidationError as exc:
        uuid = None
        if isinstance(item, dict):
            with contextlib.suppress(ValueError):
                uuid = UUID(str(item.get("client_uuid")))
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "visit", "message": e["msg"]}
            for e in exc.errors()
        ]
        return VisitResult(index=index, client_uuid=uuid, status="invalid", errors=errors)


def _same(stored: Visit, row: dict[str, Any]) -> bool:
    return (
        stored.address_id == row["address_id"]
        and stored.turf_id == row["turf_id"]
        and str(stored.status) == row["status"]
        and stored.day == row["day"]
    )


def log_visits(
    *, session: Session, scope: Scope, settings: Settings, raw: list[Any], now: datetime
) -> list[VisitResult]:
    """Apply each visit exactly once by its client_uuid; one result per visit, in order.

    A replay with the same body answers ``duplicate``; another body under the same uuid is
    a ``conflict``. A bad visit is reported on its own and stops nothing else."""
    parsed = [_parse(i, item) for i, item in enumerate(raw)]
    valid = [v for v in parsed if isinstance(v, VisitIn)]
    codes = {v.turf for v in valid}
    turfs = (
        {t.code: t for t in session.exec(select(Turf).where(col(Turf.code).in_(codes)))}
        if codes
        else {}
    )
    pairs = set()
    if turfs and valid:
        pairs = set(
            session.execute(
                select(TurfAddress.turf_id, TurfAddress.address_id).where(
                    col(TurfAddress.turf_id).in_([t.id for t in turfs.values()]),
                    col(TurfAddress.address_id).in_({v.address_id for v in valid}),
                )
            ).all()
        )
    earliest, latest = time_window(settings, now)
    results: list[VisitResult | None] = []
    rows: dict[UUID, dict[str, Any]] = {}
    pending: list[tuple[int, UUID, dict[str, Any]]] = []
    for index, visit in enumerate(parsed):
        if isinstance(visit, VisitResult):
            results.append(visit)
            continue
        uuid = visit.client_uuid
        turf = turfs.get(visit.turf)
        if turf is None or not scope.sees(turf):
            # An unseen turf is answered like a missing one.
            results.append(
                VisitResult(
                    index=index,
                    client_uuid=uuid,
                    status="forbidden",
                    errors=[
                        {
                            "field": "turf",
                            "message": f"turf {visit.turf} does not exist or is outside your unit",
                        }
                    ],
                )
            )
            continue
        if (turf.id, visit.address_id) not in pairs:
            results.append(
                _invalid(index, uuid, "address_id", f"address is not in turf {turf.code}")
            )
            continue
        if visit.occurred_at > latest:
            results.append(_invalid(index, uuid, "occurred_at", "is in the future"))
            continue
        if visit.occurred_at < earliest:
            results.append(
                _invalid(
                    index,
                    uuid,
                    "occurred_at",
                    f"is more than {settings.max_backdate_days} days ago",
                )
            )
            continue
        row = {
            "client_uuid": uuid,
            "address_id": visit.address_id,
            "turf_id": turf.id,
            "status": visit.status.value,
            "day": local_day(visit.occurred_at, settings.timezone),
        }
        rows.setdefault(uuid, row)
        pending.append((index, uuid, row))
        results.append(None)

    inserted: dict[UUID, int] = {}
    if rows:
        # One order for every batch: concurrent batches sharing uuids queue, never deadlock.
        ordered = [rows[u] for u in sorted(rows)]
        insert = conflict_insert(session, Visit)
        stmt = insert.on_conflict_do_nothing(index_elements=["client_uuid"]).returning(
            Visit.client_uuid, Visit.id
        )
        inserted = {r.client_uuid: r.id for r in session.execute(stmt, ordered)}
    others = {u for _, u, _ in pending if u not in inserted}
    stored = {}
    if others:
        found = session.exec(select(Visit).where(col(Visit.client_uuid).in_(others)))
        stored = {v.client_uuid: v for v in found}
    first_of: set[UUID] = set()
    for index, uuid, row in pending:
        if uuid in inserted and uuid not in first_of:
            first_of.add(uuid)
            results[index] = VisitResult(
                index=index, client_uuid=uuid, status="created", id=inserted[uuid]
            )
            continue
        original = stored.get(uuid)
        same = _same(original, row) if original is not None else rows[uuid] == row
        original_id = original.id if original is not None else inserted.get(uuid)
        if same:
            results[index] = VisitResult(
                index=index, client_uuid=uuid, status="duplicate", id=original_id
            )
        else:
            results[index] = VisitResult(
                index=index,
                client_uuid=uuid,
                status="conflict",
                errors=[
                    {
                        "field": "client_uuid",
                        "message": "this client_uuid was already used for a different visit",
                    }
                ],
            )
    return results  # type: ignore[return-value]
