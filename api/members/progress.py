"""New-member metrics per unit: contacted within 7 days (target: all), a basic course
(grundkurs steg 1) offered within 3 months, and its attendance (target: 25 %), as shares of
the campaign's new members: the campaign is the plans' year (its election year), and a new
member is one who joined between its start and its election day (or today, if sooner).
Set-based: one grouped query per table by förening, then the föreningar are mapped up to
the level asked for with one lookup in the organisation tree.

The targets are campaign targets like any other (``PUT /campaigns/{id}/targets``, metric
``new_members_contacted_7d`` or ``new_members_attended_course``, value in percent); a
unit without one has its nearest parent's, and without any the plans' 100 % and 25 %."""

from collections import defaultdict
from datetime import date

from sqlalchemy import and_, case, func, or_
from sqlmodel import Session, col, select

from api.auth.scope import Scope
from api.campaigns.service import get_campaign
from api.errors import Unprocessable
from api.members.models import CourseOffer, MemberTask, TaskKind
from api.members.schemas import MembersProgress, UnitMembers
from api.models import Campaign, Forening, Kommun, Partidistrikt, Target, UnitKind
from api.org import tree

__all__ = [
    "DEFAULT_TARGETS",
    "METRICS",
    "export_rows",
    "members_progress",
    "members_progress_of_units",
]

# The plans' targets, in percent, where no campaign target says otherwise.
DEFAULT_TARGETS = {"new_members_contacted_7d": 100, "new_members_attended_course": 25}
METRICS = (
    "new_members_contacted_7d",
    "new_members_offered_course_3m",
    "new_members_attended_course",
)
_KINDS = (tree.kind_of(Partidistrikt), tree.kind_of(Kommun), tree.kind_of(Forening))


def _share(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def _targets(
    session: Session, campaign: Campaign, kind: UnitKind, ids: list[int]
) -> dict[int, dict[str, float]]:
    """Each unit's share targets: its own campaign target, else its nearest parent's, else
    the default."""
    rows = session.execute(
        select(Target.unit_kind, Target.unit_id, Target.metric, Target.value).where(
            Target.campaign_id == campaign.id, col(Target.metric).in_(list(DEFAULT_TARGETS))
        )
    ).all()
    given = {(UnitKind(k), u, m): v for k, u, m, v in rows}
    # The unit itself first, then each level above it, nearest first.
    chain = [{i: i for i in ids}]
    above = list(reversed(_KINDS[: _KINDS.index(kind)]))
    for parent in above:
        if any(k == parent for k, _, _ in given):
            chain.append(tree.ancestor_ids(session, kind, ids, parent))
        else:
            chain.append({})
    kinds = [kind, *above]
    out = {}
    for i in ids:
        out[i] = {}
        for metric, default in DEFAULT_TARGETS.items():
            value = next(
                (
                    given[(k, level[i], metric)]
                    for k, level in zip(kinds, chain, strict=True)
                    if (k, level.get(i), metric) in given
                ),
                default,
            )
            out[i][metric] = value / 100
    return out


def members_progress_of_units(
    *, session: Session, campaign: Campaign, kind: UnitKind, ids: list[int], today: date
) -> dict[int, UnitMembers]:
    """The new-member figures of every unit of ``kind`` in ``ids`` (a fixed number of
    queries, whatever the number of units)."""
    kind = UnitKind(kind)
    if kind not in _KINDS:
        raise Unprocessable(f"unit_kind: member figures exist for {', '.join(_KINDS)}")
    start, end = campaign.starts_on, min(campaign.ends_on, today)
    forening_ids = tree.ids_under(tree.kind_of(Forening), kind, ids)
    task = (
        select(
            MemberTask.forening_id,
            func.count(),
            func.sum(
                case(
                    (or_(MemberTask.due_on < today, col(MemberTask.contacted_on).is_not(None)), 1),
                    else_=0,
                )
            ),
            func.sum(case((MemberTask.contacted_on <= MemberTask.due_on, 1), else_=0)),
            func.sum(case((MemberTask.contacted_on > MemberTask.due_on, 1), else_=0)),
        )
        .where(
            MemberTask.kind == TaskKind.followup,
            MemberTask.joined_on >= start,
            MemberTask.joined_on <= end,
            col(MemberTask.forening_id).in_(forening_ids),
        )
        .group_by(MemberTask.forening_id)
    )
    offer = (
        select(
            CourseOffer.forening_id,
            func.sum(
                case(
                    (or_(CourseOffer.due_on < today, col(CourseOffer.offered_on).is_not(None)), 1),
                    else_=0,
                )
            ),
            func.sum(case((CourseOffer.offered_on <= CourseOffer.due_on, 1), else_=0)),
            func.sum(
                case(
                    (
                        and_(
                            col(CourseOffer.attended_on).is_not(None),
                            CourseOffer.attended_on <= today,
                        ),
                        1,
                    ),
                    else_=0,
                )
            ),
        )
        .where(
            CourseOffer.joined_on >= start,
            CourseOffer.joined_on <= end,
            col(CourseOffer.forening_id).in_(forening_ids),
        )
        .group_by(CourseOffer.forening_id)
    )
    per_forening: dict[int, list[int]] = defaultdict(lambda: [0] * 7)
    for f_id, *values in session.execute(task).all():
        per_forening[f_id][0:4] = [int(v or 0) for v in values]
    for f_id, *values in session.execute(offer).all():
        per_forening[f_id][4:7] = [int(v or 0) for v in values]
    up = tree.ancestor_ids(session, tree.kind_of(Forening), per_forening.keys(), kind)
    totals: dict[int, list[int]] = {i: [0] * 7 for i in ids}
    for f_id, values in per_forening.items():
        unit_id = up.get(f_id)
        if unit_id in totals:
            totals[unit_id] = [a + b for a, b in zip(totals[unit_id], values, strict=True)]
    names = tree.names(session, kind, ids)
    targets = _targets(session, campaign, kind, ids)
    out = {}
    for unit_id, (new, due, on_time, late, course_due, offered, attended) in totals.items():
        out[unit_id] = UnitMembers(
            unit_kind=kind.value,
            unit_id=unit_id,
            unit_name=names.get(unit_id, ""),
            new_members=new,
            due=due,
            contacted_7d=on_time,
            contacted_late=late,
            new_members_contacted_7d=_share(on_time, due),
            contacted_target=targets[unit_id]["new_members_contacted_7d"],
            course_due=course_due,
            offered_3m=offered,
            new_members_offered_course_3m=_share(offered, course_due),
            attended=attended,
            new_members_attended_course=_share(attended, new),
            attended_target=targets[unit_id]["new_members_attended_course"],
        )
    return out


def members_progress(
    *, session: Session, scope: Scope, campaign_id: int, unit: object, today: date
) -> MembersProgress:
    """One unit's figures and its children's (those the caller sees)."""
    campaign = get_campaign(session=session, scope=scope, campaign_id=campaign_id)
    kind = tree.kind_of(unit)
    if (
        tree.ancestor_ids(session, kind, [unit.id], tree.LEVELS[0].kind)[unit.id]
        != campaign.partidistrikt_id
    ):
        raise Unprocessable(f"unit: {kind.value} {unit.id} is not in the campaign's partidistrikt")
    own = members_progress_of_units(
        session=session, campaign=campaign, kind=kind, ids=[unit.id], today=today
    )[unit.id]
    child = tree.child_kind(kind)
    children: list[UnitMembers] = []
    if child in _KINDS:
        model = tree.level(child).model
        units = tree.units_under(
            session, child, kind, [unit.id], where=scope.seen_filter(child, model.id)
        )
        found = members_progress_of_units(
            session=session, campaign=campaign, kind=child, ids=[u.id for u in units], today=today
        )
        children = [found[u.id] for u in units]
    return MembersProgress(
        unit=own, children_kind=child.value if child in _KINDS else None, children=children
    )


EXPORT_HEADER = [
    "enhet_typ",
    "enhet_id",
    "enhet",
    "nya_medlemmar",
    "förfallna",
    "kontaktade_7d",
    "kontaktade_sent",
    "andel_kontaktade_7d",
    "mål_kontaktade",
    "erbjudna_kurs_3m",
    "andel_erbjudna_kurs_3m",
    "deltagit_kurs",
    "andel_deltagit",
    "mål_deltagit",
]


def export_rows(
    *, session: Session, scope: Scope, campaign_id: int, level: UnitKind, today: date
) -> list[list[object]]:
    """One row per unit of ``level`` the caller sees: counts only, no member data."""
    campaign = get_campaign(session=session, scope=scope, campaign_id=campaign_id)
    model = tree.level(level).model
    units = tree.units_under(
        session,
        level,
        tree.LEVELS[0].kind,
        [campaign.partidistrikt_id],
        where=scope.seen_filter(level, model.id),
    )
    found = members_progress_of_units(
        session=session, campaign=campaign, kind=level, ids=[u.id for u in units], today=today
    )
    rows: list[list[object]] = [list(EXPORT_HEADER)]
    r = lambda v: None if v is None else round(v, 4)  # noqa: E731
    for u in units:
        m = found[u.id]
        rows.append(
            [
                level.value,
                u.id,
                m.unit_name,
                m.new_members,
                m.due,
                m.contacted_7d,
                m.contacted_late,
                r(m.new_members_contacted_7d),
                m.contacted_target,
                m.offered_3m,
                r(m.new_members_offered_course_3m),
                m.attended,
                r(m.new_members_attended_course),
                m.attended_target,
            ]
        )
    return rows
