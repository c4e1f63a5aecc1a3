"""The per-unit progress computation as it stood before progress became set-based, kept
unchanged (but for its signature) as the reference the set-based one is compared with."""

from collections import defaultdict
from datetime import date, timedelta

from sqlalchemy import case, false, func
from sqlmodel import Session, col, select

from api.campaigns.service import METRICS
from api.models import Campaign, ContactLog, DailyGrain, DailyStat, Kommun, Target, UnitKind
from api.org.service import unit_name
from api.progress.schemas import DayFigures, MetricProgress, UnitProgress
from api.progress.service import RECENT_DAYS, expected_share

__all__ = ["reference_unit_progress"]

_SUMMED = ("contacts", "conversations", "doors", "new_members")


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
    if kind == UnitKind.turf:
        # Added with turfs (the reference predates them): no snapshot, the logs naming it.
        return DailyGrain, false(), false(), ContactLog.turf_id == unit_id
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


def reference_unit_progress(
    *,
    session: Session,
    campaign: Campaign,
    unit_kind: UnitKind,
    unit_id: int,
    today: date,
    covered: date | None,
) -> UnitProgress:
    """Actual against target for every metric of one unit, with pace and projection."""
    name = unit_name(session, unit_kind, unit_id)
    start = campaign.starts_on
    last = min(today, campaign.ends_on)
    snapshot_to = min(covered, last) if covered else start - timedelta(days=1)
    if unit_kind == UnitKind.turf:  # below the nightly grain: every day is read live
        snapshot_to = start - timedelta(days=1)
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
