"""Progress of any unit against its targets: snapshots up to the last nightly run plus the
live contact logs after it."""

from collections import defaultdict
from datetime import date, timedelta

from sqlalchemy import case, func
from sqlmodel import Session, col, select

from api.auth.scope import Scope
from api.campaigns.service import METRICS, get_campaign
from api.models import (
    Campaign,
    ContactLog,
    DailyGrain,
    DailyStat,
    District,
    Forening,
    JobRun,
    Kommun,
    Target,
    UnitKind,
)
from api.org.service import unit_name
from api.progress.schemas import DayFigures, MetricProgress, UnitProgress

__all__ = [
    "NIGHTLY_JOB",
    "RECENT_DAYS",
    "covered_through",
    "expected_share",
    "export_rows",
    "unit_progress",
]

NIGHTLY_JOB = "nightly"
RECENT_DAYS = 14  # the daily rate a projection extrapolates is the mean of these days
_SUMMED = ("contacts", "conversations", "doors", "new_members")


def expected_share(campaign: Campaign, day: date) -> float:
    """The share of a target the pace expects done by the end of ``day``."""
    start, end = campaign.starts_on, campaign.ends_on
    if day < start:
        return 0.0
    if day >= end:
        return 1.0
    if campaign.pace_curve == "final_weeks":
        push_from = max(start, end - timedelta(weeks=campaign.pace_final_weeks) + timedelta(days=1))

        def weight(upto: date) -> float:
            normal = (min(upto, push_from - timedelta(days=1)) - start).days + 1
            pushed = max(0, (upto - push_from).days + 1)
            return max(normal, 0) + pushed * campaign.pace_final_weight

        return weight(day) / weight(end)
    return ((day - start).days + 1) / ((end - start).days + 1)


def covered_through(session: Session) -> date | None:
    """The last night whose snapshots the nightly job has built."""
    return session.exec(
        select(func.max(JobRun.for_day)).where(
            JobRun.job == NIGHTLY_JOB, JobRun.status == "succeeded"
        )
    ).one()


def _filters(session: Session, kind: UnitKind, unit_id: int):
    """WHERE clauses selecting a unit in daily_stat, daily_grain and contact_log."""
    if kind == UnitKind.partidistrikt:
        kommuner = select(Kommun.id).where(Kommun.partidistrikt_id == unit_id)
        return (
            DailyStat,
            (DailyStat.unit_kind == UnitKind.kommun) & col(DailyStat.unit_id).in_(kommuner),
            col(DailyGrain.kommun_id).in_(kommuner),
            col(ContactLog.kommun_id).in_(kommuner),
        )
    if kind == UnitKind.district:
        return (
            DailyGrain,
            DailyGrain.district_id == unit_id,
            DailyGrain.district_id == unit_id,
            ContactLog.district_id == unit_id,
        )
    column = {UnitKind.kommun: "kommun_id", UnitKind.forening: "forening_id"}[kind]
    return (
        DailyStat,
        (DailyStat.unit_kind == kind) & (DailyStat.unit_id == unit_id),
        getattr(DailyGrain, column) == unit_id,
        getattr(ContactLog, column) == unit_id,
    )


def _require_visible(scope: Scope, session: Session, kind: UnitKind, unit_id: int) -> None:
    if kind == UnitKind.partidistrikt:
        allowed = scope.sees_partidistrikt(unit_id)
    elif kind == UnitKind.kommun:
        allowed = scope.leads_kommun(unit_id)
    elif kind == UnitKind.forening:
        allowed = scope.sees_forening(session.get(Forening, unit_id))
    else:
        allowed = scope.sees_district(session.get(District, unit_id))
    scope.require(allowed, f"progress of {kind.value} {unit_id}")


def unit_progress(
    *,
    session: Session,
    scope: Scope,
    campaign_id: int,
    unit_kind: UnitKind,
    unit_id: int,
    today: date,
    covered: date | None = None,
    check_scope: bool = True,
) -> UnitProgress:
    """Actual against target for every metric of one unit, with pace and projection."""
    campaign = get_campaign(session=session, scope=scope, campaign_id=campaign_id)
    name = unit_name(session, unit_kind, unit_id)
    if check_scope:
        _require_visible(scope, session, unit_kind, unit_id)
    covered = covered if covered is not None else covered_through(session)
    start = campaign.starts_on
    last = min(today, campaign.ends_on)
    snapshot_to = min(covered, last) if covered else start - timedelta(days=1)
    snap_table, stat_where, grain_where, log_where = _filters(session, unit_kind, unit_id)

    daily: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    t = snap_table
    snap = session.exec(
        select(
            t.day,
            func.sum(t.contacts),
            func.sum(t.conversations),
            func.sum(t.doors),
            func.sum(t.new_members),
        )
        .where(stat_where, t.day >= start, t.day <= snapshot_to)
        .group_by(t.day)
    )
    live_where = (
        log_where,
        col(ContactLog.withdrawn_at).is_(None),
        ContactLog.day > snapshot_to,
        ContactLog.day >= start,
        ContactLog.day <= last,
    )
    live = session.exec(
        select(
            ContactLog.day,
            func.count(),
            func.sum(ContactLog.conversations),
            func.sum(case((ContactLog.kind == "door", 1), else_=0)),
            func.sum(case((col(ContactLog.new_member), 1), else_=0)),
        )
        .where(*live_where)
        .group_by(ContactLog.day)
    )
    for row in [*snap, *live]:
        figures = daily[row[0]]
        for i in range(4):
            figures[i] += int(row[i + 1] or 0)

    # Each volunteer's last active day, from the snapshots and the live logs: both counts
    # (whole campaign, last 30 days) come from the same two queries.
    last_day: dict[int, date] = {}
    snap_users = session.exec(
        select(DailyGrain.user_id, func.max(DailyGrain.day))
        .where(grain_where, DailyGrain.day >= start, DailyGrain.day <= snapshot_to)
        .group_by(DailyGrain.user_id)
    )
    live_users = session.exec(
        select(ContactLog.user_id, func.max(ContactLog.day))
        .where(*live_where)
        .group_by(ContactLog.user_id)
    )
    for user_id, day in [*snap_users, *live_users]:
        last_day[user_id] = max(day, last_day.get(user_id, day))
    since_30 = max(start, last - timedelta(days=29))

    totals = dict(zip(_SUMMED, (sum(f[i] for f in daily.values()) for i in range(4)), strict=True))
    totals["active_volunteers"] = len(last_day)
    targets = {
        t.metric: t.value
        for t in session.exec(
            select(Target).where(
                Target.campaign_id == campaign.id,
                Target.unit_kind == unit_kind,
                Target.unit_id == unit_id,
            )
        )
    }
    share_now = expected_share(campaign, last)
    days_left = max(0, (campaign.ends_on - last).days)
    recent_from = max(start, last - timedelta(days=RECENT_DAYS))
    recent_days = max(1, (last - recent_from).days)
    metrics = []
    for metric in [*METRICS, *sorted(set(targets) - set(METRICS))]:
        actual = totals.get(metric, 0)
        target = targets.get(metric)
        projected = None
        if metric in _SUMMED:
            index = _SUMMED.index(metric)
            recent = sum(f[index] for d, f in daily.items() if recent_from <= d < last)
            projected = actual + recent / recent_days * days_left
        if target is None:
            status, share, expected = "no_target", None, None
        else:
            share = actual / target if target else 1.0
            expected = target * share_now
            status = "done" if actual >= target else "on_track" if actual >= expected else "behind"
        metrics.append(
            MetricProgress(
                metric=metric,
                actual=actual,
                target=target,
                share=share,
                expected=expected,
                projected=projected,
                status=status,
            )
        )
    return UnitProgress(
        campaign_id=campaign.id,
        unit_kind=unit_kind,
        unit_id=unit_id,
        unit_name=name,
        today=today,
        days_left=days_left,
        expected_share=share_now,
        covered_through=covered,
        metrics=metrics,
        active_volunteers_30d=sum(day >= since_30 for day in last_day.values()),
        daily=[
            DayFigures(day=d, contacts=f[0], conversations=f[1], doors=f[2], new_members=f[3])
            for d, f in sorted(daily.items())
        ],
    )


def _units_in_scope(session: Session, scope: Scope, campaign: Campaign, level: UnitKind):
    kommuner = session.exec(
        select(Kommun).where(Kommun.partidistrikt_id == campaign.partidistrikt_id)
    ).all()
    if level == UnitKind.kommun:
        units = [k for k in kommuner if scope.leads_kommun(k.id)]
    elif level == UnitKind.forening:
        ids = [k.id for k in kommuner]
        found = session.exec(select(Forening).where(col(Forening.kommun_id).in_(ids))).all()
        units = [f for f in found if scope.sees_forening(f)]
    else:
        ids = [k.id for k in kommuner]
        found = session.exec(select(District).where(col(District.kommun_id).in_(ids))).all()
        units = [d for d in found if scope.sees_district(d)]
    return sorted(units, key=lambda u: (getattr(u, "code", ""), u.name))


def export_rows(
    *, session: Session, scope: Scope, campaign_id: int, level: UnitKind, today: date
) -> list[list[object]]:
    """One row per unit and metric the caller sees, with a header row first."""
    campaign = get_campaign(session=session, scope=scope, campaign_id=campaign_id)
    covered = covered_through(session)
    rows: list[list[object]] = [
        [
            "enhetstyp",
            "enhet_id",
            "enhet",
            "mått",
            "utfall",
            "mål",
            "andel",
            "förväntat_idag",
            "prognos_valdagen",
            "status",
        ]
    ]
    for unit in _units_in_scope(session, scope, campaign, level):
        progress = unit_progress(
            session=session,
            scope=scope,
            campaign_id=campaign_id,
            unit_kind=level,
            unit_id=unit.id,
            today=today,
            covered=covered,
            check_scope=False,
        )
        for m in progress.metrics:
            rows.append(
                [
                    level.value,
                    unit.id,
                    progress.unit_name,
                    m.metric,
                    m.actual,
                    m.target,
                    None if m.share is None else round(m.share, 4),
                    None if m.expected is None else round(m.expected, 1),
                    None if m.projected is None else round(m.projected, 1),
                    m.status,
                ]
            )
    return rows
