"""Call lists ("ring alla medlemmar"): every active member of a förening or kommun, split
among the callers a lead names, do-not-call respected, and the list's progress.

A member already on another running list (a förening's list inside its kommun's, or the
other way round) gets a closed entry marked ``on_other_list`` instead of a second open one:
one campaign calls them, the other counts them as taken care of elsewhere."""

from collections import Counter
from datetime import date, datetime, timedelta

from sqlalchemy import insert
from sqlmodel import Session, col, select

from api.auth.scope import Scope
from api.errors import NotFound, Unprocessable
from api.members.followup import CONTACTED, assign_caller
from api.members.models import (
    CallerAssignment,
    CallList,
    Member,
    MemberStatus,
    MemberTask,
    TaskKind,
)
from api.members.schemas import CallListCreate, CallListProgress
from api.models import Campaign, Forening, Kommun, User, utcnow
from api.org import tree
from api.settings import Settings

__all__ = ["call_list_progress", "create_call_list", "get_call_list"]


def create_call_list(
    *, session: Session, scope: Scope, body: CallListCreate, today: date, settings: Settings
) -> CallList:
    """A call list over the active members of one förening (or kommun) the caller leads,
    one entry per member, split round-robin among ``caller_ids``."""
    if (body.forening_id is None) == (body.kommun_id is None):
        raise Unprocessable("forening_id: give either forening_id or kommun_id")
    if body.forening_id is not None:
        forening = scope.require_unit(
            tree.kind_of(Forening), body.forening_id, "forening_id", lead=True, field="forening_id"
        )
        kommun_id, forening_id = forening.kommun_id, forening.id
    else:
        kommun = scope.require_unit(
            tree.kind_of(Kommun), body.kommun_id, "kommun_id", lead=True, field="kommun_id"
        )
        kommun_id, forening_id = kommun.id, None
    ends_on = body.ends_on
    if body.campaign_id is not None:
        campaign = (
            session.get(Campaign, body.campaign_id) if 0 <= body.campaign_id < 2**63 else None
        )
        if campaign is None or not (
            scope.unrestricted or scope.partidistrikt_id == campaign.partidistrikt_id
        ):
            raise Unprocessable(f"campaign_id: no campaign {body.campaign_id} of yours")
        ends_on = ends_on or campaign.ends_on
    call_list = CallList(
        name=body.name,
        kommun_id=kommun_id,
        forening_id=forening_id,
        campaign_id=body.campaign_id,
        ends_on=ends_on or today + timedelta(days=90),
        cooldown_hours=(
            settings.members_cooldown_hours if body.cooldown_hours is None else body.cooldown_hours
        ),
        created_by_user_id=scope.user.id if scope.user else None,
    )
    session.add(call_list)
    session.flush()
    callers: list[int] = []
    for user_id in dict.fromkeys(body.caller_ids):
        user = session.get(User, user_id) if 0 <= user_id < 2**63 else None
        if user is None or user.unit_kind != tree.kind_of(Forening):
            raise Unprocessable(f"caller_ids: user {user_id} is not a volunteer of a förening")
        assign_caller(
            session=session,
            scope=scope,
            user_id=user_id,
            forening_id=user.unit_id,
            call_list_id=call_list.id,
        )
        callers.append(user_id)
    unit = Member.forening_id == forening_id if forening_id else Member.kommun_id == kommun_id
    members = session.execute(
        select(Member.id, Member.forening_id, Member.do_not_call)
        .where(unit, Member.status == MemberStatus.active)
        .order_by(Member.forening_id, Member.id)
    ).all()
    elsewhere = _on_running_lists(session, unit, call_list.id, today)
    now = utcnow()
    rows = []
    for i, (member_id, f_id, dnc) in enumerate(members):
        skipped = "do_not_call" if dnc else "on_other_list" if member_id in elsewhere else None
        rows.append(
            {
                "kind": TaskKind.call.value,
                "call_list_id": call_list.id,
                "member_id": member_id,
                "forening_id": f_id,
                "kommun_id": kommun_id,
                "assigned_user_id": callers[i % len(callers)] if callers else None,
                "attempts": 0,
                "closed_at": now if skipped else None,
                "skipped": skipped,
                "created_at": now,
            }
        )
    if rows:
        session.execute(insert(MemberTask), rows)
    session.flush()
    return call_list


def _on_running_lists(session: Session, unit, call_list_id: int, today: date) -> set[int]:
    """Members of the unit with an open entry on another list that has not ended."""
    return set(
        session.exec(
            select(MemberTask.member_id)
            .join(CallList, CallList.id == MemberTask.call_list_id)
            .join(Member, Member.id == MemberTask.member_id)
            .where(
                unit,
                MemberTask.kind == TaskKind.call,
                MemberTask.call_list_id != call_list_id,
                col(MemberTask.closed_at).is_(None),
                col(CallList.purged_at).is_(None),
                CallList.ends_on >= today,
            )
        )
    )


def get_call_list(*, session: Session, scope: Scope, call_list_id: int) -> CallList:
    """A call list the caller leads or calls for (404 otherwise)."""
    found = session.get(CallList, call_list_id) if 0 <= call_list_id < 2**63 else None
    if found is not None:
        if found.forening_id is not None:
            ok = scope.leads(found.forening_id, tree.kind_of(Forening))
        else:
            ok = scope.leads(found.kommun_id, tree.kind_of(Kommun))
        if not ok and scope.user is not None:
            ok = (
                session.exec(
                    select(CallerAssignment.id).where(
                        CallerAssignment.user_id == scope.user.id,
                        CallerAssignment.call_list_id == found.id,
                    )
                ).first()
                is not None
            )
        if ok:
            return found
    raise NotFound(f"call list {call_list_id} not found")


def call_list_progress(
    *, session: Session, scope: Scope, call_list_id: int, now: datetime
) -> CallListProgress:
    """How far a call list has come: counts only, no member data."""
    cl = get_call_list(session=session, scope=scope, call_list_id=call_list_id)
    tasks = session.execute(
        select(
            MemberTask.closed_at,
            MemberTask.outcome,
            MemberTask.skipped,
            MemberTask.next_attempt_at,
            MemberTask.assigned_user_id,
        ).where(MemberTask.call_list_id == cl.id)
    ).all()
    outcomes: Counter = Counter()
    by_caller: Counter = Counter()
    done = reached = open_ = waiting = dnc = elsewhere = 0
    for closed_at, outcome, skipped, next_at, assigned in tasks:
        if outcome:
            outcomes[outcome] += 1
        if assigned is not None:
            by_caller[assigned] += 1
        if skipped == "do_not_call":
            dnc += 1
        elif skipped == "on_other_list":
            elsewhere += 1
        elif closed_at is not None:
            done += 1
            reached += outcome in CONTACTED
        elif next_at is not None and next_at > now:
            waiting += 1
        else:
            open_ += 1
    return CallListProgress(
        id=cl.id,
        name=cl.name,
        kommun_id=cl.kommun_id,
        forening_id=cl.forening_id,
        ends_on=cl.ends_on,
        cooldown_hours=cl.cooldown_hours,
        total=len(tasks),
        done=done,
        reached=reached,
        open=open_,
        waiting=waiting,
        do_not_call=dnc,
        on_other_list=elsewhere,
        by_outcome=dict(outcomes),
        by_caller=dict(by_caller),
        purged=cl.purged_at is not None,
    )
