"""Course occasions (grundkurs steg 1 and others), offers to new members and attendance.

Every offer and attendance is recorded for its occasion (``course_participant``); only
those of the basic course (``BASIC_COURSE``, grundkurs steg 1: the plans' "offered within 3
months" and "25 % attend a basic course") also fill in the member's course offer, which
the metrics count. A valarbetarkurs is no basic course."""

from datetime import date, timedelta

from sqlmodel import Session, col, select

from api.auth.scope import Forbidden, Scope
from api.errors import NotFound, Unprocessable
from api.members.models import Course, CourseOffer, CourseParticipant, Member
from api.members.schemas import CourseCreate
from api.members.service import audit
from api.models import Forening, Kommun
from api.org import tree
from api.settings import Settings

__all__ = ["BASIC_COURSE", "create_course", "list_courses", "offer_course", "record_attendance"]

BASIC_COURSE = "grundkurs_1"


def create_course(*, session: Session, scope: Scope, body: CourseCreate) -> Course:
    """A course occasion of a kommun (or one of its föreningar) that the caller leads."""
    if body.forening_id is not None:
        forening = scope.require_unit(
            tree.kind_of(Forening), body.forening_id, "forening_id", lead=True, field="forening_id"
        )
        if forening.kommun_id != body.kommun_id:
            raise Unprocessable(
                f"forening_id: förening {forening.id} is not in kommun {body.kommun_id}"
            )
    else:
        scope.require_unit(
            tree.kind_of(Kommun), body.kommun_id, "kommun_id", lead=True, field="kommun_id"
        )
    course = Course(**body.model_dump())
    session.add(course)
    session.flush()
    return course


def list_courses(*, session: Session, scope: Scope, kommun_id: int | None) -> list[Course]:
    """Course occasions in the kommuner the caller sees (a course is no personal data)."""
    query = select(Course).where(scope.kommun_filter(Course.kommun_id))
    if kommun_id is not None:
        query = query.where(Course.kommun_id == kommun_id)
    return list(session.exec(query.order_by(Course.starts_on, Course.id)))


def _course(session: Session, scope: Scope, course_id: int) -> Course:
    course = session.get(Course, course_id) if 0 <= course_id < 2**63 else None
    if not scope.is_lead:
        raise Forbidden("role: only leads offer courses and record attendance")
    if course is None or not (scope.unrestricted or course.kommun_id in scope.home_kommun_ids):
        raise NotFound(f"course {course_id} not found")
    return course


def _offers(
    session: Session, scope: Scope, course: Course, member_ids: list[int], settings: Settings
) -> list[tuple[Member, CourseParticipant, CourseOffer | None]]:
    """Each member's record of this occasion and, for the basic course, their course offer
    (both created when missing); the caller must lead every member, and every member must
    belong to the course's kommun."""
    ids = sorted(set(member_ids))
    members = {m.id: m for m in session.exec(select(Member).where(col(Member.id).in_(ids)))}
    bad = [
        i
        for i in ids
        if i not in members or not scope.leads(members[i].forening_id, tree.kind_of(Forening))
    ]
    if bad:
        raise Forbidden(f"member_ids: {bad[:20]} do not exist or are outside your unit")
    elsewhere = [i for i in ids if members[i].kommun_id != course.kommun_id]
    if elsewhere:
        raise Unprocessable(
            f"member_ids: {elsewhere[:20]} belong to another kommun than the course"
        )
    participants = {
        p.member_id: p
        for p in session.exec(
            select(CourseParticipant).where(
                CourseParticipant.course_id == course.id, col(CourseParticipant.member_id).in_(ids)
            )
        )
    }
    offers: dict[int | None, CourseOffer] = {}
    if course.kind == BASIC_COURSE:
        offers = {
            o.member_id: o
            for o in session.exec(select(CourseOffer).where(col(CourseOffer.member_id).in_(ids)))
        }
    out = []
    for i in ids:
        m = members[i]
        participant = participants.get(i) or CourseParticipant(
            course_id=course.id, member_id=m.id, forening_id=m.forening_id
        )
        offer = None
        if course.kind == BASIC_COURSE:
            offer = offers.get(i) or CourseOffer(
                member_id=m.id,
                forening_id=m.forening_id,
                kommun_id=m.kommun_id,
                joined_on=m.joined_on,
                due_on=m.joined_on + timedelta(days=settings.members_course_days),
            )
        out.append((m, participant, offer))
    return out


def offer_course(
    *,
    session: Session,
    scope: Scope,
    course_id: int,
    member_ids: list[int],
    today: date,
    settings: Settings,
    route: str,
) -> int:
    """Record that the members were offered this course today; returns how many."""
    course = _course(session, scope, course_id)
    rows = _offers(session, scope, course, member_ids, settings)
    for m, participant, offer in rows:
        participant.offered_on = participant.offered_on or today
        session.add(participant)
        if offer is not None:
            offer.offered_on = offer.offered_on or today
            offer.course_id = course.id
            session.add(offer)
        audit(
            session,
            scope,
            "offer",
            route=route,
            member_id=m.id,
            forening_id=m.forening_id,
            kommun_id=m.kommun_id,
        )
    session.flush()
    return len(rows)


def record_attendance(
    *,
    session: Session,
    scope: Scope,
    course_id: int,
    member_ids: list[int],
    settings: Settings,
    route: str,
) -> int:
    """Record that the members attended this course (on its date); returns how many."""
    course = _course(session, scope, course_id)
    rows = _offers(session, scope, course, member_ids, settings)
    for m, participant, offer in rows:
        participant.offered_on = participant.offered_on or course.starts_on
        participant.attended_on = course.starts_on
        session.add(participant)
        if offer is not None:
            offer.offered_on = offer.offered_on or course.starts_on
            offer.course_id = course.id
            offer.attended_on = course.starts_on
            session.add(offer)
        audit(
            session,
            scope,
            "attended",
            route=route,
            member_id=m.id,
            forening_id=m.forening_id,
            kommun_id=m.kommun_id,
        )
    session.flush()
    return len(rows)
