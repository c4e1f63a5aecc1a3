"""Corrections and withdrawals: the author corrects or withdraws a log within the correction
window, a lead of its unit withdraws it at any time; every change is audited."""

import json
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from api.auth.scope import Scope
from api.contacts.reading import get_contact, leads_contact
from api.contacts.rules import conversations_of
from api.contacts.schemas import ContactCorrection
from api.errors import AppError, Conflict, Unprocessable
from api.models import ContactAudit, ContactKind, ContactLog, ContactTopic, District, Outcome
from api.settings import Settings
from api.topics.service import active_codes

__all__ = ["audit_trail", "correct_contact", "withdraw_contact"]


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
        if district.id != contact.district_id and contact.turf_id is not None:
            # The turf lies in the old district; moving the log would leave it naming one
            # elsewhere (and the old turf's coverage counting it).
            raise Unprocessable(
                "district_code: this log names a turf of its district; withdraw it and log "
                "it again instead"
            )
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
        active = active_codes(session=session)
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
    in_time = is_author and _within_window(settings, contact, now)
    if not (in_time or leads_contact(scope=scope, contact=contact)):
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
