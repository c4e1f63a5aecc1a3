"""Member tasks (new-member follow-ups and call-list entries): who sees them, claiming one
exclusively, logging outcomes with a cool-down, and the callers leads designate.

A claim is one conditional UPDATE: it succeeds only while nobody else holds a live claim
and the task is neither closed nor cooling down, so of two callers claiming at once one
gets the row and the other a 409, on SQLite and PostgreSQL alike. A member may have more
than one open task (a follow-up and a call-list entry, or entries of two lists), and the
claim is exclusive per member: the member's row is locked first (SELECT ... FOR UPDATE on
PostgreSQL; SQLite's BEGIN IMMEDIATE serializes writers anyway), so of two callers claiming
two tasks of one member at once the second sees the first's claim and gets the 409."""

from datetime import date, datetime, timedelta

from sqlalchemy import and_, false, func, or_, update
from sqlmodel import Session, col, select

from api.auth.scope import Forbidden, Scope
from api.errors import Conflict, NotFound, Unprocessable
from api.members.models import (
    CallerAssignment,
    CallList,
    Member,
    MemberAttempt,
    MemberTask,
    TaskKind,
    TaskOutcome,
)
from api.members.schemas import TaskRead
from api.members.service import audit, audit_shown, listed_unit
from api.models import Forening, Role, User
from api.org import tree
from api.pagination import PageParams
from api.settings import Settings

__all__ = [
    "CONTACTED",
    "assign_caller",
    "claim_task",
    "list_callers",
    "list_tasks",
    "log_outcome",
    "task_filter",
    "task_reads",
    "unassign_caller",
]

# Outcomes that mean the member was personally reached.
CONTACTED = frozenset(
    {TaskOutcome.reached, TaskOutcome.wants_to_be_active, TaskOutcome.wants_course}
)


def task_filter(session: Session, scope: Scope):
    """A WHERE clause on MemberTask keeping the tasks the caller may see: all tasks of the
    föreningar they lead, and as a caller the follow-ups of the föreningar and the call-list
    entries they were assigned."""
    if scope.unrestricted:
        return col(MemberTask.id).is_not(None)
    clauses = [scope.led_filter(tree.kind_of(Forening), MemberTask.forening_id)]
    rows = session.exec(
        select(CallerAssignment.forening_id, CallerAssignment.call_list_id).where(
            CallerAssignment.user_id == scope.user.id
        )
    ).all()
    followup_foreningar = [f for f, lst in rows if lst is None]
    lists = [lst for _, lst in rows if lst is not None]
    if followup_foreningar:
        clauses.append(
            and_(
                MemberTask.kind == TaskKind.followup,
                col(MemberTask.forening_id).in_(followup_foreningar),
            )
        )
    if lists:
        clauses.append(
            and_(
                col(MemberTask.call_list_id).in_(lists),
                or_(
                    MemberTask.assigned_user_id == scope.user.id,
                    col(MemberTask.assigned_user_id).is_(None),
                ),
            )
        )
    return or_(*clauses) if clauses else false()


def task_reads(session: Session, tasks: list[MemberTask], today: date) -> list[TaskRead]:
    """Tasks with the name and phone of their members (one query)."""
    ids = {t.member_id for t in tasks if t.member_id is not None}
    people = {}
    if ids:
        people = {
            mid: (name, phone)
            for mid, name, phone in session.execute(
                select(Member.id, Member.name, Member.phone).where(col(Member.id).in_(ids))
            ).all()
        }
    out = []
    for t in tasks:
        name, phone = people.get(t.member_id, (None, None))
        out.append(
            TaskRead(
                id=t.id,
                kind=t.kind,
                call_list_id=t.call_list_id,
                member_id=t.member_id,
                member_name=name,
                member_phone=phone,
                forening_id=t.forening_id,
                joined_on=t.joined_on,
                due_on=t.due_on,
                overdue=t.due_on is not None and t.closed_at is None and t.due_on < today,
                assigned_user_id=t.assigned_user_id,
                claimed_by_user_id=t.claimed_by_user_id,
                claim_expires_at=t.claim_expires_at,
                next_attempt_at=t.next_attempt_at,
                attempts=t.attempts,
                outcome=t.outcome,
                contacted_on=t.contacted_on,
                closed=t.closed_at is not None,
                skipped=t.skipped,
            )
        )
    return out


def list_tasks(
    *,
    session: Session,
    scope: Scope,
    page: PageParams,
    kind: TaskKind,
    today: date,
    forening_id: int | None = None,
    kommun_id: int | None = None,
    call_list_id: int | None = None,
    open_only: bool = True,
    route: str,
) -> tuple[list[TaskRead], int]:
    """The tasks the caller sees, soonest due first; audited with each member shown."""
    _require_task_unit(session, scope, forening_id=forening_id, kommun_id=kommun_id)
    query = select(MemberTask).where(MemberTask.kind == kind, task_filter(session, scope))
    if forening_id is not None:
        query = query.where(MemberTask.forening_id == forening_id)
    if kommun_id is not None:
        query = query.where(MemberTask.kommun_id == kommun_id)
    if call_list_id is not None:
        query = query.where(MemberTask.call_list_id == call_list_id)
    if open_only:
        query = query.where(col(MemberTask.closed_at).is_(None))
    total = session.exec(query.with_only_columns(func.count(MemberTask.id))).one()
    tasks = list(
        session.exec(
            query.order_by(MemberTask.due_on, MemberTask.id).limit(page.limit).offset(page.offset)
        )
    )
    if call_list_id is not None and forening_id is None and kommun_id is None:
        call_list = session.get(CallList, call_list_id)
        if call_list is not None:
            forening_id, kommun_id = call_list.forening_id, call_list.kommun_id
    audit_shown(
        session,
        scope,
        "list",
        route=route,
        shown=[(t.member_id, t.forening_id, t.kommun_id) for t in tasks],
        unit=listed_unit(session, scope, forening_id=forening_id, kommun_id=kommun_id),
    )
    return task_reads(session, tasks, today), total


def _require_task_unit(
    session: Session, scope: Scope, *, forening_id: int | None, kommun_id: int | None
) -> None:
    """Refuse a filter naming a unit whose tasks the caller may not see (rather than answer
    it empty): they must lead it, or be a caller in it (or in one of its föreningar)."""
    if scope.unrestricted or (forening_id is None and kommun_id is None):
        return
    assigned = select(CallerAssignment.forening_id).where(CallerAssignment.user_id == scope.user.id)
    if forening_id is not None and not (
        scope.leads(forening_id, tree.kind_of(Forening))
        or session.exec(assigned.where(CallerAssignment.forening_id == forening_id)).first()
    ):
        raise Forbidden("forening_id: it does not exist or is outside your unit")
    if kommun_id is not None and not (
        scope.leads_kommun(kommun_id)
        or session.exec(
            assigned.join(Forening, Forening.id == CallerAssignment.forening_id).where(
                Forening.kommun_id == kommun_id
            )
        ).first()
    ):
        raise Forbidden("kommun_id: it does not exist or is outside your unit")


def _visible_task(session: Session, scope: Scope, task_id: int) -> MemberTask:
    task = (
        session.exec(
            select(MemberTask).where(MemberTask.id == task_id, task_filter(session, scope))
        ).first()
        if 0 <= task_id < 2**63
        else None
    )
    if task is None:
        raise NotFound(f"task {task_id} not found among your tasks")
    return task


def claim_task(
    *,
    session: Session,
    scope: Scope,
    task_id: int,
    now: datetime,
    settings: Settings,
    route: str,
) -> TaskRead:
    """Claim a task for ``settings.members_claim_minutes``: 409 if another caller holds it,
    it is cooling down after an unanswered call, or it is done."""
    task = _visible_task(session, scope, task_id)
    if task.member_id is None:
        raise Conflict(f"task {task_id}: its member was erased")
    user_id = scope.user.id if scope.user else None
    if user_id is None:
        raise Forbidden("role: claims are made by signed-in callers")
    # Lock the member before looking at their other tasks: without it two callers could
    # each claim a different task of one member, neither seeing the other's claim yet.
    session.execute(select(Member.id).where(Member.id == task.member_id).with_for_update())
    elsewhere = session.exec(
        select(MemberTask.claim_expires_at).where(
            MemberTask.member_id == task.member_id,
            MemberTask.id != task.id,
            col(MemberTask.closed_at).is_(None),
            col(MemberTask.claimed_by_user_id).is_not(None),
            MemberTask.claimed_by_user_id != user_id,
            MemberTask.claim_expires_at > now,
        )
    ).first()
    if elsewhere is not None:
        # Which caller, and on which list, is not the asker's business: only that the
        # member is taken, and until when.
        raise Conflict(
            f"task {task_id}: another caller is working with this member until "
            f"{elsewhere.isoformat()}"
        )
    expires = now + timedelta(minutes=settings.members_claim_minutes)
    taken = session.execute(
        update(MemberTask)
        .where(
            MemberTask.id == task.id,
            col(MemberTask.closed_at).is_(None),
            or_(col(MemberTask.next_attempt_at).is_(None), MemberTask.next_attempt_at <= now),
            or_(
                col(MemberTask.claimed_by_user_id).is_(None),
                MemberTask.claimed_by_user_id == user_id,
                MemberTask.claim_expires_at <= now,
            ),
        )
        .values(claimed_by_user_id=user_id, claim_expires_at=expires)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.refresh(task)
    if taken != 1:
        if task.closed_at is not None:
            raise Conflict(f"task {task_id}: already done")
        if task.next_attempt_at is not None and task.next_attempt_at > now:
            raise Conflict(
                f"task {task_id}: cooling down after an unanswered call until "
                f"{task.next_attempt_at.isoformat()}"
            )
        raise Conflict(
            f"task {task_id}: another caller holds it until {task.claim_expires_at.isoformat()}"
        )
    audit(
        session,
        scope,
        "claim",
        route=route,
        member_id=task.member_id,
        forening_id=task.forening_id,
        kommun_id=task.kommun_id,
    )
    return task_reads(session, [task], now.date())[0]


def log_outcome(
    *,
    session: Session,
    scope: Scope,
    task_id: int,
    outcome: TaskOutcome,
    now: datetime,
    today: date,
    settings: Settings,
    route: str,
) -> TaskRead:
    """Log a call's outcome on a task the caller holds: reached (or wants to be active,
    wants a course) and wrong number close it; no answer releases it for a cool-down."""
    task = _visible_task(session, scope, task_id)
    user_id = scope.user.id if scope.user else None
    held = (
        user_id is not None
        and task.claimed_by_user_id == user_id
        and task.claim_expires_at is not None
        and task.claim_expires_at > now
    )
    if not held:
        raise Conflict(f"task {task_id}: claim it first (or your claim has expired)")
    cooldown = settings.members_cooldown_hours
    if task.kind == TaskKind.call and task.call_list_id is not None:
        cooldown = session.get(CallList, task.call_list_id).cooldown_hours
    session.add(
        MemberAttempt(
            task_id=task.id,
            member_id=task.member_id,
            forening_id=task.forening_id,
            user_id=user_id,
            outcome=outcome.value,
            day=today,
            at=now,
        )
    )
    task.attempts += 1
    task.outcome = outcome.value
    task.claimed_by_user_id, task.claim_expires_at = None, None
    if outcome in CONTACTED:
        task.contacted_on = task.contacted_on or today
        task.closed_at = now
    elif outcome == TaskOutcome.wrong_number:
        task.closed_at = now
    else:
        task.next_attempt_at = now + timedelta(hours=cooldown)
    session.add(task)
    audit(
        session,
        scope,
        "outcome",
        route=route,
        member_id=task.member_id,
        forening_id=task.forening_id,
        kommun_id=task.kommun_id,
    )
    session.flush()
    return task_reads(session, [task], today)[0]


# -- callers ----------------------------------------------------------------------------------


def assign_caller(
    *,
    session: Session,
    scope: Scope,
    user_id: int,
    forening_id: int,
    call_list_id: int | None,
) -> CallerAssignment:
    """Designate a volunteer of the förening as a caller (for its follow-ups, or a list)."""
    forening = scope.require_unit(
        tree.kind_of(Forening), forening_id, "forening_id", lead=True, field="forening_id"
    )
    user = session.get(User, user_id) if 0 <= user_id < 2**63 else None
    if user is None or not (
        user.unit_kind == tree.kind_of(Forening) and user.unit_id == forening.id and user.is_active
    ):
        raise Unprocessable(
            f"user_id: user {user_id} is not an active member of förening {forening.id}"
        )
    if call_list_id is not None:
        call_list = session.get(CallList, call_list_id) if 0 <= call_list_id < 2**63 else None
        if call_list is None or not _list_covers(call_list, forening):
            raise Unprocessable(
                f"call_list_id: no call list {call_list_id} over förening {forening.id}"
            )
    found = session.exec(
        select(CallerAssignment).where(
            CallerAssignment.user_id == user_id,
            CallerAssignment.forening_id == forening.id,
            CallerAssignment.call_list_id == call_list_id
            if call_list_id is not None
            else col(CallerAssignment.call_list_id).is_(None),
        )
    ).first()
    if found is not None:
        return found
    row = CallerAssignment(
        user_id=user_id,
        forening_id=forening.id,
        call_list_id=call_list_id,
        assigned_by_user_id=scope.user.id if scope.user else None,
    )
    session.add(row)
    session.flush()
    return row


def _list_covers(call_list: CallList, forening: Forening) -> bool:
    if call_list.forening_id is not None:
        return call_list.forening_id == forening.id
    return call_list.kommun_id == forening.kommun_id


def list_callers(
    *, session: Session, scope: Scope, forening_id: int | None
) -> list[CallerAssignment]:
    """Caller assignments in the föreningar the caller leads."""
    if not scope.is_lead:
        raise Forbidden("role: only leads designate callers")
    query = select(CallerAssignment).where(
        scope.led_filter(tree.kind_of(Forening), CallerAssignment.forening_id)
    )
    if forening_id is not None:
        scope.require_unit(
            tree.kind_of(Forening), forening_id, "forening_id", lead=True, field="forening_id"
        )
        query = query.where(CallerAssignment.forening_id == forening_id)
    return list(session.exec(query.order_by(CallerAssignment.id)))


def unassign_caller(*, session: Session, scope: Scope, assignment_id: int) -> None:
    """Withdraw a caller assignment; their open claims lapse with it."""
    row = session.get(CallerAssignment, assignment_id) if 0 <= assignment_id < 2**63 else None
    if row is None or not scope.leads(row.forening_id, tree.kind_of(Forening)):
        raise NotFound(f"caller assignment {assignment_id} not found")
    session.execute(
        update(MemberTask)
        .where(
            MemberTask.claimed_by_user_id == row.user_id, MemberTask.forening_id == row.forening_id
        )
        .values(claimed_by_user_id=None, claim_expires_at=None)
    )
    session.delete(row)
    session.flush()


def is_caller(session: Session, user: User) -> bool:
    return (
        user.role == Role.volunteer
        and session.exec(
            select(CallerAssignment.id).where(CallerAssignment.user_id == user.id)
        ).first()
        is not None
    )
