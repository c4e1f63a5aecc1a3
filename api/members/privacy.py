"""GDPR: a member's own data (Art. 15), erasure (Art. 17), the audit log's review, and the
nightly retention purge.

Erasure deletes the member's row, the one place of the register that holds their name,
phone and email; their tasks, attempts and course records stay for the counts (förening,
days, outcomes) but lose the link to them, and a tombstone (a keyed hash of the member
number) keeps a later import from bringing them back. Every total is the same after it.
An erasure asked for (Art. 17) also takes the person's volunteer account with it, since it
holds the same email; the retention purge leaves accounts alone (see ``_erase``)."""

from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import delete, func, or_, update
from sqlmodel import Session, col, select

from api import db
from api.auth.scope import Forbidden, Scope
from api.contacts.rules import local_day
from api.members.models import (
    CallerAssignment,
    CallList,
    CourseOffer,
    CourseParticipant,
    Member,
    MemberAttempt,
    MemberAudit,
    MemberErasure,
    MemberStatus,
    MemberTask,
    TaskKind,
)
from api.members.service import audit, get_member, number_hash, to_read
from api.models import DeviceToken, Forening, Kommun, LoginCode, Role, TurfLease, User, utcnow
from api.org import tree
from api.pagination import PageParams
from api.settings import Settings, get_settings

__all__ = ["erase_member", "export_member", "list_audit", "purge", "purge_trigger", "run_purge"]


def _months_before(day: date, months: int) -> date:
    """The same day ``months`` calendar months earlier (the month's last day if shorter)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    month += 1
    for d in (day.day, 30, 29, 28):
        try:
            return date(year, month, d)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def export_member(*, session: Session, scope: Scope, member_id: int, route: str) -> dict[str, Any]:
    """Everything Knacka holds about one member (GDPR Art. 15), as JSON."""
    member = get_member(session=session, scope=scope, member_id=member_id, route=route)
    tasks = session.exec(select(MemberTask).where(MemberTask.member_id == member.id)).all()
    attempts = session.exec(select(MemberAttempt).where(MemberAttempt.member_id == member.id)).all()
    offer = session.exec(select(CourseOffer).where(CourseOffer.member_id == member.id)).first()
    courses = session.exec(
        select(CourseParticipant).where(CourseParticipant.member_id == member.id)
    ).all()
    accesses = session.exec(
        select(MemberAudit).where(MemberAudit.member_id == member.id).order_by(MemberAudit.id)
    ).all()
    audit(
        session,
        scope,
        "export",
        route=route,
        member_id=member.id,
        forening_id=member.forening_id,
        kommun_id=member.kommun_id,
    )
    dump = lambda rows: [r.model_dump(mode="json") for r in rows]  # noqa: E731
    return {
        "member": to_read(member).model_dump(mode="json"),
        "tasks": dump(tasks),
        "call_attempts": dump(attempts),
        "course_offer": None if offer is None else offer.model_dump(mode="json"),
        "courses": dump(courses),
        "accesses": [
            {"at": a.at.isoformat(), "user_id": a.user_id, "action": a.action} for a in accesses
        ],
    }


def _erase(session: Session, member_ids: list[int], *, settings: Settings, today: date) -> None:
    """Unlink and delete members, leaving a tombstone of each (no scope check: the caller
    did that)."""
    if not member_ids:
        return
    numbers = list(session.exec(select(Member.member_number).where(col(Member.id).in_(member_ids))))
    hashes = [number_hash(session=session, settings=settings, number=n) for n in numbers]
    # A member erased before, imported again as a new membership: the newer day wins.
    session.execute(delete(MemberErasure).where(col(MemberErasure.number_hash).in_(hashes)))
    session.add_all(MemberErasure(number_hash=h, erased_on=today) for h in hashes)
    for model in (MemberTask, MemberAttempt, CourseOffer, CourseParticipant):
        values: dict[str, Any] = {"member_id": None}
        if model is MemberTask:
            values |= {"claimed_by_user_id": None, "claim_expires_at": None}
        session.execute(update(model).where(col(model.member_id).in_(member_ids)).values(**values))
    session.execute(delete(Member).where(col(Member.id).in_(member_ids)))


def _erase_account(session: Session, scope: Scope, member: Member) -> int:
    """Pseudonymise and deactivate the volunteer account of an erased member: the one
    linked to them, and any other with their email, among the volunteers of föreningar the
    eraser leads. Its row stays (with its id) so that the conversations and doors it logged
    still count; what named the person goes, and what it held (turf leases, member-task
    claims) is released."""
    match = [User.id == member.user_id] if member.user_id is not None else []
    if member.email:
        match.append(func.lower(User.email) == member.email.casefold())
    if not match:
        return 0
    # Only volunteers the eraser leads: a member's email must never reach a lead's or
    # another kommun's account (a made-up member with someone else's email, or two people
    # sharing one).
    ids = list(
        session.exec(
            select(User.id).where(
                or_(*match),
                User.role == Role.volunteer,
                User.unit_kind == tree.MEMBER_KIND,
                scope.led_filter(tree.MEMBER_KIND, User.unit_id),
            )
        )
    )
    for user_id in ids:
        session.execute(
            update(User)
            .where(User.id == user_id)
            .values(
                # Unique and undeliverable (RFC 2606): nobody can sign in as it again.
                email=f"raderad-{user_id}@raderad.invalid",
                display_name="Raderad",
                phone=None,
                is_active=False,
                nightly_email=False,
            )
        )
    if ids:
        now = utcnow()
        # A device name is often the owner's ("Annas telefon").
        session.execute(
            update(DeviceToken)
            .where(col(DeviceToken.user_id).in_(ids))
            .values(name="raderad", revoked_at=func.coalesce(DeviceToken.revoked_at, now))
        )
        session.execute(delete(LoginCode).where(col(LoginCode.user_id).in_(ids)))
        session.execute(
            update(TurfLease)
            .where(col(TurfLease.user_id).in_(ids), col(TurfLease.released_at).is_(None))
            .values(released_at=now)
        )
        session.execute(
            update(MemberTask)
            .where(col(MemberTask.claimed_by_user_id).in_(ids))
            .values(claimed_by_user_id=None, claim_expires_at=None)
        )
    return len(ids)


def erase_member(
    *,
    session: Session,
    scope: Scope,
    member_id: int,
    settings: Settings,
    today: date,
    route: str,
) -> int:
    """Erase a member (GDPR Art. 17): kommun leads and district admins of their units.
    Returns how many volunteer accounts of the person were erased with them."""
    if not scope.unrestricted and scope.role not in (Role.kommun_lead, Role.district_admin):
        raise Forbidden("role: only kommun leads and district admins erase members")
    member = get_member(session=session, scope=scope, member_id=member_id, route=route)
    forening_id, kommun_id = member.forening_id, member.kommun_id
    session.expunge(member)
    accounts = _erase_account(session, scope, member)
    _erase(session, [member_id], settings=settings, today=today)
    audit(
        session,
        scope,
        "erase",
        route=route,
        member_id=member_id,
        forening_id=forening_id,
        kommun_id=kommun_id,
    )
    session.flush()
    return accounts


def list_audit(
    *,
    session: Session,
    scope: Scope,
    page: PageParams,
    member_id: int | None,
    forening_id: int | None = None,
    kommun_id: int | None = None,
) -> tuple[list[MemberAudit], int]:
    """Audit entries about the units the caller leads, newest first: a förening lead sees
    their förening's, a kommun lead also the kommun's own (imports, its leads' lists), a
    district admin every kommun's of the partidistrikt."""
    if not scope.is_lead:
        raise Forbidden("role: only leads review the member audit log")
    clauses = [scope.led_filter(tree.kind_of(Forening), MemberAudit.forening_id)]
    if scope.unrestricted or scope.role in (Role.kommun_lead, Role.district_admin):
        clauses.append(scope.led_filter(tree.kind_of(Kommun), MemberAudit.kommun_id))
    query = select(MemberAudit).where(or_(*clauses))
    if forening_id is not None:
        scope.require_unit(
            tree.kind_of(Forening), forening_id, "forening_id", lead=True, field="forening_id"
        )
        query = query.where(MemberAudit.forening_id == forening_id)
    if kommun_id is not None:
        scope.require_unit(
            tree.kind_of(Kommun), kommun_id, "kommun_id", lead=True, field="kommun_id"
        )
        query = query.where(MemberAudit.kommun_id == kommun_id)
    if member_id is not None:
        query = query.where(MemberAudit.member_id == member_id)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    items = list(
        session.exec(
            query.order_by(col(MemberAudit.id).desc()).limit(page.limit).offset(page.offset)
        )
    )
    return items, total


def purge(*, session: Session, settings: Settings, today: date) -> dict[str, int]:
    """The retention rules: call outcomes of lists that ended, and the attempts of
    follow-ups that closed, more than ``members_call_retention_months`` ago; members who
    left more than ``members_left_retention_months`` ago (erased as in Art. 17, but their
    volunteer accounts, which they did not ask to close, stay)."""
    list_cutoff = _months_before(today, settings.members_call_retention_months)
    lists = list(
        session.exec(
            select(CallList.id).where(
                CallList.ends_on < list_cutoff, col(CallList.purged_at).is_(None)
            )
        )
    )
    attempts = tasks = 0
    if lists:
        task_ids = select(MemberTask.id).where(
            MemberTask.kind == TaskKind.call, col(MemberTask.call_list_id).in_(lists)
        )
        attempts = session.execute(
            delete(MemberAttempt).where(col(MemberAttempt.task_id).in_(task_ids))
        ).rowcount
        tasks = session.execute(
            delete(MemberTask).where(
                MemberTask.kind == TaskKind.call, col(MemberTask.call_list_id).in_(lists)
            )
        ).rowcount
        session.execute(
            delete(CallerAssignment).where(col(CallerAssignment.call_list_id).in_(lists))
        )
        session.execute(
            update(CallList).where(col(CallList.id).in_(lists)).values(purged_at=utcnow())
        )
    # A follow-up's attempts (who called, each outcome) are its call history: gone after
    # the same months. The task keeps the day the member was reached, which the counts use.
    closed_before = datetime.combine(list_cutoff, time(), tzinfo=UTC)
    followup_attempts = session.execute(
        delete(MemberAttempt).where(
            col(MemberAttempt.task_id).in_(
                select(MemberTask.id).where(
                    MemberTask.kind == TaskKind.followup, MemberTask.closed_at < closed_before
                )
            )
        )
    ).rowcount
    left_cutoff = _months_before(today, settings.members_left_retention_months)
    gone = list(
        session.exec(
            select(Member.id).where(
                Member.status == MemberStatus.left,
                col(Member.left_on).is_not(None),
                Member.left_on < left_cutoff,
            )
        )
    )
    _erase(session, gone, settings=settings, today=today)
    for member_id in gone:
        session.add(MemberAudit(action="purge", member_id=member_id, route="job:members_purge"))
    session.flush()
    return {
        "call_lists": len(lists),
        "call_tasks": tasks,
        "call_attempts": attempts,
        "followup_attempts": followup_attempts,
        "members_erased": len(gone),
    }


def run_purge(*, settings: Settings | None = None, now: datetime | None = None) -> dict:
    """The nightly retention job (api.jobs.JOBS: ``members_purge``)."""
    settings = settings or get_settings()
    today = local_day(now or utcnow(), settings.timezone)
    with db.session_scope() as session:
        return purge(session=session, settings=settings, today=today)


def purge_trigger(settings: Settings) -> dict:
    """The purge's schedule: nightly, half an hour after the snapshots and emails."""
    minutes = settings.nightly_hour * 60 + settings.nightly_minute + 30
    return {"trigger": "cron", "hour": minutes // 60 % 24, "minute": minutes % 60}
