"""Reading logs back: a log is seen by its author and by the leads of its unit."""

from sqlmodel import Session, col, select

from api.auth.scope import Scope
from api.contacts.schemas import ContactRead
from api.errors import NotFound
from api.models import ContactLog, ContactTopic, District, Role, Turf
from api.pagination import PageParams, paginate

__all__ = ["get_contact", "leads_contact", "list_contacts", "to_read"]


def leads_contact(*, scope: Scope, contact: ContactLog) -> bool:
    """Whether the caller leads the unit the contact belongs to (its kommun or förening)."""
    if scope.leads_kommun(contact.kommun_id):
        return True
    return (
        scope.role == Role.forening_lead
        and contact.forening_id is not None
        and contact.forening_id == scope.user.unit_id
    )


def _visible(scope: Scope, contact: ContactLog) -> bool:
    return (
        scope.unrestricted
        or contact.user_id == scope.user.id
        or leads_contact(scope=scope, contact=contact)
    )


def get_contact(*, session: Session, scope: Scope, contact_id: int) -> ContactLog:
    """A contact the caller wrote or leads; others are not found."""
    contact = session.get(ContactLog, contact_id)
    if contact is None or not _visible(scope, contact):
        raise NotFound(f"contact {contact_id} not found")
    return contact


def to_read(*, session: Session, contacts: list[ContactLog]) -> list[ContactRead]:
    """API views of contacts, with their district and turf codes and topics."""
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
    turf_ids = {c.turf_id for c in contacts if c.turf_id is not None}
    turf_codes = (
        dict(session.exec(select(Turf.id, Turf.code).where(col(Turf.id).in_(turf_ids))).all())
        if turf_ids
        else {}
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
            turf=turf_codes.get(c.turf_id),
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
