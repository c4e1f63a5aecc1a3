"""The demo's members: per förening some long-standing and some new members, new members
contacted on time, late or not yet, a grundkurs with offers and attendance, and a call
list in Ragunda split between two callers. Deterministic and idempotent like the rest of
the demo (api.demo)."""

from datetime import date, timedelta

from sqlmodel import Session, select

from api.auth.scope import Scope
from api.members.calls import create_call_list
from api.members.courses import offer_course, record_attendance
from api.members.followup import assign_caller
from api.members.models import CallList, Course, Member, MemberTask, TaskKind
from api.members.schemas import CallListCreate, MemberImportOptions
from api.members.service import import_members
from api.models import Forening, Kommun, Role, User
from api.settings import get_settings

__all__ = ["load_demo_members"]

OLD_PER_FORENING = 8
# Days since joining of each förening's new members, and when (days after joining) the
# first ones were reached: on time, late, and not at all yet.
NEW_JOINED_DAYS_AGO = (3, 12, 25, 40, 70)
CONTACTED_AFTER = {25: 2, 40: 11, 70: 5}


def _register(session: Session, today: date) -> str:
    lines = ["member_number,name,phone,email,forening,joined_on,status"]
    foreningar = session.exec(select(Forening).order_by(Forening.id)).all()
    for fi, forening in enumerate(foreningar):
        for i in range(OLD_PER_FORENING):
            joined = today - timedelta(days=700 + 37 * i)
            status = "left" if i == OLD_PER_FORENING - 1 else "active"
            lines.append(
                f"D{fi:02d}{i:03d},Demomedlem {fi}-{i},070-{fi:03d}{i:04d},,{forening.id},"
                f"{joined.isoformat()},{status}"
            )
        for i, ago in enumerate(NEW_JOINED_DAYS_AGO):
            lines.append(
                f"D{fi:02d}N{i:02d},Ny demomedlem {fi}-{i},073-{fi:03d}{i:04d},,{forening.id},"
                f"{(today - timedelta(days=ago)).isoformat()},active"
            )
    return "\n".join(lines) + "\n"


def load_demo_members(*, session: Session, today: date, campaign_id: int) -> dict[str, int]:
    """Add the demo's members, follow-ups, course and call list (idempotent)."""
    settings = get_settings()
    operator = Scope.operator(session)
    summary = import_members(
        session=session,
        scope=operator,
        text=_register(session, today),
        options=MemberImportOptions(),
        settings=settings,
        today=today,
        route="demo",
    )
    # Some new members were reached in time, some late; the newest not yet.
    for task in session.exec(
        select(MemberTask).where(
            MemberTask.kind == TaskKind.followup, MemberTask.contacted_on.is_(None)
        )
    ):
        after = CONTACTED_AFTER.get((today - task.joined_on).days)
        if after is not None:
            task.contacted_on = task.joined_on + timedelta(days=after)
            task.outcome, task.attempts = "reached", 1
            task.closed_at = task.created_at
            session.add(task)
    ostersund = session.exec(select(Kommun).where(Kommun.code == "2380")).one()
    course = session.exec(select(Course).where(Course.kommun_id == ostersund.id)).first()
    if course is None:
        course = Course(
            kind="grundkurs_1",
            name="Grundkurs steg 1",
            starts_on=today - timedelta(days=5),
            place="Folkets hus, Östersund",
            kommun_id=ostersund.id,
        )
        session.add(course)
        session.flush()
        new = session.exec(
            select(Member.id)
            .where(Member.kommun_id == ostersund.id, Member.member_number.contains("N"))
            .order_by(Member.id)
        ).all()
        offer_course(
            session=session,
            scope=operator,
            course_id=course.id,
            member_ids=list(new),
            today=today - timedelta(days=20),
            settings=settings,
            route="demo",
        )
        record_attendance(
            session=session,
            scope=operator,
            course_id=course.id,
            member_ids=list(new[::4]),
            settings=settings,
            route="demo",
        )
    ragunda = session.exec(
        select(Forening).join(Kommun).where(Kommun.code == "2303").order_by(Forening.id)
    ).first()
    if session.exec(select(CallList).where(CallList.forening_id == ragunda.id)).first() is None:
        callers = session.exec(
            select(User.id)
            .where(
                User.role == Role.volunteer,
                User.unit_id == ragunda.id,
                User.unit_kind == "forening",
            )
            .order_by(User.id)
            .limit(2)
        ).all()
        for user_id in callers:
            assign_caller(
                session=session,
                scope=operator,
                user_id=user_id,
                forening_id=ragunda.id,
                call_list_id=None,
            )
        create_call_list(
            session=session,
            scope=operator,
            body=CallListCreate(
                name="Ring alla medlemmar",
                forening_id=ragunda.id,
                campaign_id=campaign_id,
                caller_ids=list(callers),
            ),
            today=today,
            settings=settings,
        )
    session.flush()
    return {"members_created": summary.created}
