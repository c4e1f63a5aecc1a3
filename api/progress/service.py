"""Progress of units against their targets: snapshots up to the last nightly run plus the
live contact logs after it. A whole level of units is computed at once, in a fixed number
of queries whatever the number of units (``progress_of_units``); one unit's page adds its
daily figures (``unit_progress``)."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache, lru_cache

from sqlalchemy import (
    Date,
    Integer,
    Select,
    and_,
    any_,
    bindparam,
    case,
    cast,
    false,
    func,
    literal_column,
    or_,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session, col, select

from api.auth.scope import Scope
from api.campaigns.service import METRICS, get_campaign
from api.errors import NotFound, Unprocessable
from api.models import (
    Campaign,
    DailyGrain,
    DailyStat,
    JobRun,
    JobRunStatus,
    LogTally,
    Target,
    Turf,
    UnitKind,
    UnitPeople,
    UnitWindow,
)
from api.org import tree
from api.progress.schemas import DayFigures, DoorCoverage, MetricProgress, UnitProgress
from api.turfs.coverage import district_coverage

__all__ = [
    "NIGHTLY_JOB",
    "RECENT_DAYS",
    "child_progress",
    "covered_through",
    "daily_of_units",
    "expected_share",
    "export_rows",
    "progress_of_units",
    "resolve_unit",
    "status_of",
    "unit_progress",
]

NIGHTLY_JOB = "nightly"
RECENT_DAYS = 14  # the daily rate a projection extrapolates is the mean of these days
_SUMMED = ("contacts", "conversations", "doors", "new_members")
# Levels whose daily totals the nightly job keeps in daily_stat; others read daily_grain.
_STAT_COLUMNS = {"kommun_id", "forening_id"}


def expected_share(campaign: Campaign, day: date) -> float:
    """The share of a target the pace expects done by the end of ``day``."""
    return _pace_share(
        campaign.starts_on,
        campaign.ends_on,
        campaign.pace_curve,
        campaign.pace_final_weeks,
        campaign.pace_final_weight,
        day,
    )


# Cached: every nightly email's chart asks it for each of its days, the same few dozen
# days for every lead of a campaign (a twentieth of the night's CPU before).
@lru_cache(maxsize=4096)
def _pace_share(
    start: date, end: date, curve: str, final_weeks: int, final_weight: float, day: date
) -> float:
    if day < start:
        return 0.0
    if day >= end:
        return 1.0
    if curve == "final_weeks":
        push_from = max(start, end - timedelta(weeks=final_weeks) + timedelta(days=1))

        def weight(upto: date) -> float:
            normal = (min(upto, push_from - timedelta(days=1)) - start).days + 1
            pushed = max(0, (upto - push_from).days + 1)
            return max(normal, 0) + pushed * final_weight

        return weight(day) / weight(end)
    return ((day - start).days + 1) / ((end - start).days + 1)


# The unit ids of a statement built once (below, and ``_figures_select``): on PostgreSQL
# one array parameter, elsewhere a list expanded into one parameter per id. Expanded, a
# partidistrikt's 49 kommuner gave the figures statement some 250 placeholders, which
# SQLAlchemy rendered and psycopg converted to PostgreSQL's on every request (psycopg
# keeps no conversion of a statement with more than 50 parameters): a millisecond of CPU.
_IDS = bindparam("ids", expanding=True)
_IDS_ARRAY = bindparam("ids", type_=ARRAY(Integer))
# Constants written into the statement rather than sent as parameters, for the same reason.
_ZERO, _ONE = literal_column("0", Integer), literal_column("1", Integer)


def _among(column, ids):
    """``column`` is one of ``ids``: a SELECT of ids, or ``_IDS`` / ``_IDS_ARRAY``."""
    return column == any_(ids) if ids is _IDS_ARRAY else col(column).in_(ids)


def _ids_for(session: Session):
    """The ids parameter that ``session``'s database takes."""
    return _IDS_ARRAY if session.get_bind().dialect.name == "postgresql" else _IDS


# Built once: building and keying a statement costs as much as running one this small.
_COVERED = select(func.max(JobRun.for_day)).where(
    JobRun.job == NIGHTLY_JOB, JobRun.status == JobRunStatus.succeeded
)
_TARGETS = select(Target.unit_id, Target.metric, Target.value).where(
    Target.campaign_id == bindparam("campaign_id"), Target.unit_kind == bindparam("kind")
)
_TARGETS_OF = {ids: _TARGETS.where(_among(Target.unit_id, ids)) for ids in (_IDS, _IDS_ARRAY)}


def covered_through(session: Session) -> date | None:
    """The last night whose snapshots the nightly job has built."""
    return session.execute(_COVERED).scalar()


def status_of(actual: float, target: int, expected: float, projected: float | None) -> str:
    """A metric's status; it never says "on track" while the projection falls short."""
    if actual >= target:
        return "done"
    if actual < expected:
        return "behind"
    if projected is not None and projected < target:
        return "at_risk"
    return "on_track"


@dataclass(frozen=True)
class _Window:
    """The days a campaign's progress reads on ``today``."""

    start: date
    last: date  # today, or election day once it has passed
    snapshot_to: date  # the last day read from the snapshots; later days from the logs
    recent_from: date  # the projection's rate is the mean over [recent_from, last)
    since_30: date

    @property
    def key(self) -> tuple[date, date, date]:
        """What the window's figures from the snapshots hang on (unit_window's key)."""
        return self.start, self.snapshot_to, self.last

    @classmethod
    def of(cls, campaign: Campaign, today: date, covered: date | None) -> "_Window":
        start, last = campaign.starts_on, min(today, campaign.ends_on)
        return cls(
            start=start,
            last=last,
            snapshot_to=min(covered, last) if covered else start - timedelta(days=1),
            recent_from=max(start, last - timedelta(days=RECENT_DAYS)),
            since_30=max(start, last - timedelta(days=29)),
        )


# Every date a progress statement reads, as a bound parameter: the statements of a level
# are built once (``_figures_select``) and run with each request's dates and unit ids.
_DAY = {
    name: bindparam(name, type_=Date)
    for name in ("start", "last", "snapshot_to", "recent_from", "since_30")
}
# The days read from the live logs, one by one: the logs of the days after the last
# night's statistics lie beyond what PostgreSQL knows of the column, and a range over
# them is estimated at a handful of rows (it then walked a whole day's logs of the country
# by the day index instead of the units' own), where each day named is estimated as an
# average day.
_LIVE_DAYS = bindparam("live_days", expanding=True, type_=Date)


def _params(kind: UnitKind, ids: set[int] | Select, w: _Window) -> dict[str, object]:
    """The bound parameters of ``kind``'s statements for the window ``w``."""
    # Levels below the nightly grain (turfs) have no snapshot: every day is read live.
    snapshotted = hasattr(DailyGrain, tree.work_mapping(kind)[0])
    live_from = max(w.start, w.snapshot_to + timedelta(days=1)) if snapshotted else w.start
    params: dict[str, object] = {
        "start": w.start,
        "last": w.last,
        "snapshot_to": w.snapshot_to,
        "live_days": [live_from + timedelta(days=n) for n in range((w.last - live_from).days + 1)],
        "recent_from": w.recent_from,
        "since_30": w.since_30,
    }
    if not isinstance(ids, Select):
        params["ids"] = sorted(ids)
    return params


def _sources(kind: UnitKind, ids):
    """The snapshot and live-log SELECTs of (unit, day, contacts, conversations, doors,
    new_members, user) rows for ``ids`` (``_IDS``, ``_IDS_ARRAY`` or a SELECT of ids; user
    only where the source has one), and the people SELECT: (unit, last day, zeros, user)
    from unit_people where the level has it; their dates are ``_DAY``'s parameters."""
    column, mapping = tree.work_mapping(kind)
    snapshotted = hasattr(DailyGrain, column)
    if mapping is not None:
        unit_of = mapping.subquery()
        grain_unit, log_unit = unit_of.c.ancestor_id, unit_of.c.ancestor_id

        def scoped(q: Select, work) -> Select:
            return q.join(unit_of, unit_of.c.unit_id == work).where(
                _among(unit_of.c.ancestor_id, ids)
            )
    else:
        grain_unit = getattr(DailyGrain, column, None)
        log_unit = getattr(LogTally, column)

        def scoped(q: Select, work) -> Select:
            return q.where(_among(work, ids))

    # The live days' logs as their tallies (LogTally): the same sums from a row per
    # (day, place, volunteer) instead of one per log. A tally whose logs are all withdrawn
    # counts nobody.
    live = scoped(
        select(
            log_unit.label("unit"),
            LogTally.day.label("day"),
            LogTally.logs.label("contacts"),
            LogTally.conversations,
            LogTally.doors,
            LogTally.new_members,
            LogTally.user_id.label("user_id"),
        ).where(LogTally.logs > 0, col(LogTally.day).in_(_LIVE_DAYS)),
        getattr(LogTally, column),
    )
    if not snapshotted:
        grain = live.where(false())
        return grain.with_only_columns(*list(grain.selected_columns)[:6]), live, grain, None
    grain = scoped(
        select(
            grain_unit.label("unit"),
            DailyGrain.day.label("day"),
            DailyGrain.contacts,
            DailyGrain.conversations,
            DailyGrain.doors,
            DailyGrain.new_members,
            DailyGrain.user_id.label("user_id"),
        ).where(DailyGrain.day >= _DAY["start"], DailyGrain.day <= _DAY["snapshot_to"]),
        getattr(DailyGrain, column),
    )
    if column in _STAT_COLUMNS:
        # The day x unit totals are already rolled up: read those, not the grain.
        stat_unit = unit_of.c.ancestor_id if mapping is not None else DailyStat.unit_id
        stat = select(
            stat_unit.label("unit"),
            DailyStat.day.label("day"),
            DailyStat.contacts,
            DailyStat.conversations,
            DailyStat.doors,
            DailyStat.new_members,
        ).where(
            DailyStat.unit_kind == tree.kind_of_work_column(column),
            DailyStat.day >= _DAY["start"],
            DailyStat.day <= _DAY["snapshot_to"],
        )
        snapshot = scoped(stat, DailyStat.unit_id)
        person_unit = unit_of.c.ancestor_id if mapping is not None else UnitPeople.unit_id
        people = scoped(
            select(
                person_unit.label("unit"),
                UnitPeople.last_day.label("day"),
                *(_ZERO.label(m) for m in _SUMMED),
                UnitPeople.user_id.label("user_id"),
            ).where(
                UnitPeople.unit_kind == tree.kind_of_work_column(column),
                UnitPeople.last_day >= _DAY["start"],
            ),
            UnitPeople.unit_id,
        )
        return snapshot, live, grain, people
    snapshot = grain.with_only_columns(*list(grain.selected_columns)[:6])
    return snapshot, live, grain, None


def _in_recent(day) -> object:
    """Whether ``day`` is one of the days the projection's rate is the mean of."""
    return (day >= _DAY["recent_from"]) & (day < _DAY["last"])


def _per_person(rows, *, recent: bool = True) -> Select:
    """(unit, volunteer): the sums, the recent sums (zeros unless ``recent``: rows of the
    window's last day alone are not in the projection's rate) and the last day of
    ``rows``."""

    def recent_sum(m: str) -> object:
        if not recent:
            return _ZERO.label(f"r_{m}")
        in_recent = case((_in_recent(rows.c.day), rows.c[m]), else_=_ZERO)
        return cast(func.sum(in_recent), Integer).label(f"r_{m}")

    # As integers: the sums of their sums are then bigint, not PostgreSQL's much slower
    # numeric. One volunteer's figures in one unit fit: a log carries at most 1,000
    # conversations (the logging schema's cap), so an overflow takes two million logs.
    return select(
        rows.c.unit,
        rows.c.user_id,
        *(cast(func.sum(rows.c[m]), Integer).label(m) for m in _SUMMED),
        *(recent_sum(m) for m in _SUMMED),
        func.max(rows.c.day).label("last_day"),
    ).group_by(rows.c.unit, rows.c.user_id)


def _build_figures(kind: UnitKind, ids) -> Select:
    """The statement of ``_figures``: (unit, the four sums, the four recent sums, active
    people, people active in the last 30 days) per unit of ``ids``."""
    snapshot, live, grain, people = _sources(kind, ids)
    if people is None:
        # Every source knows its volunteers: grouped by (unit, volunteer) first, then by
        # unit (two hash aggregates instead of the sort a COUNT(DISTINCT) needs).
        p = _per_person(union_all(grain, live).subquery()).subquery().c
        return select(
            p.unit,
            *(func.sum(p[m]) for m in _SUMMED),
            *(func.sum(p[f"r_{m}"]) for m in _SUMMED),
            func.count(p.user_id),
            func.count(case((p.last_day >= _DAY["since_30"], p.user_id))),
        ).group_by(p.unit)
    # The sums come from the rolled-up daily_stat, which knows no people: they come from
    # unit_people, each volunteer's last day in the unit. Someone whose last day is on or
    # after the campaign's start worked in it, and in the last 30 days if that day is in
    # them, as long as no last day lies after the window's end: true unless the campaign
    # has ended or ``today`` is in the past; then the grain's (unit, day, volunteer) rows
    # tell (the database tests that once and reads one of the two). The live logs are
    # grouped by (unit, volunteer) once and feed both the sums and the people: a day's
    # logs come from a few hundred volunteers.
    later = select(DailyGrain.day).where(DailyGrain.day > _DAY["last"]).exists()
    people = union_all(people.where(~later), grain.where(later))
    live_people = _per_person(live.subquery()).cte("live_people")
    lp = live_people.c
    st = snapshot.subquery().c
    recent = [f"r_{m}" for m in _SUMMED]

    def zeros(*names: str) -> list:
        return [_ZERO.label(name) for name in names]

    # The snapshot's days summed per unit first: the outer sum then adds up a few rows per
    # unit instead of every unit's every day. As integers, for the outer sum to be bigint
    # (see ``_per_person``): one unit's campaign is far from two billion contacts.
    sums = [
        select(
            st.unit,
            *(cast(func.sum(st[m]), Integer).label(m) for m in _SUMMED),
            *(
                cast(func.sum(case((_in_recent(st.day), st[m]), else_=_ZERO)), Integer).label(r)
                for m, r in zip(_SUMMED, recent, strict=True)
            ),
            *zeros("people", "people_30"),
        ).group_by(st.unit),
        select(
            lp.unit,
            *(lp[m] for m in _SUMMED),
            *(lp[r] for r in recent),
            *zeros("people", "people_30"),
        ),
    ]
    who = people.subquery().c
    everyone = union_all(
        select(who.unit, who.user_id, who.day), select(lp.unit, lp.user_id, lp.last_day)
    ).subquery()
    e = everyone.c
    person = select(e.unit, func.max(e.day).label("last_day")).group_by(e.unit, e.user_id)
    q = person.subquery().c
    counted = select(
        q.unit,
        *zeros(*_SUMMED, *recent),
        cast(func.count(), Integer).label("people"),
        cast(func.count(case((q.last_day >= _DAY["since_30"], _ONE))), Integer).label("people_30"),
    ).group_by(q.unit)
    r = union_all(*sums, counted).subquery().c
    return select(
        r.unit, *(func.sum(r[c]) for c in (*_SUMMED, *recent, "people", "people_30"))
    ).group_by(r.unit)


@cache
def _figures_select(kind: UnitKind, ids) -> Select:
    """``_build_figures`` for a list of unit ids (``_IDS`` or ``_IDS_ARRAY``), built once
    per level."""
    return _build_figures(kind, ids)


@cache
def windowed(kind: UnitKind) -> bool:
    """Whether the nightly job precomputes the windows of ``kind``'s units (unit_window):
    the levels with a work column and people of their own. Cached: asked on every request,
    and a level without a work column builds its mapping SELECT to answer."""
    column, mapping = tree.work_mapping(kind)
    return mapping is None and column in _STAT_COLUMNS


@cache
def _window_select(kind: UnitKind, ids, live_recent: bool) -> Select:
    """The statement of ``_figures`` from the unit_window rows of ``ids`` (``_IDS`` or
    ``_IDS_ARRAY``) plus the live logs, with the count of window rows read last; the
    live logs' recent sums only if ``live_recent`` (a live day lies before the last)."""
    _, live, _, _ = _sources(kind, ids)
    lp = _per_person(live.subquery(), recent=live_recent).subquery().c
    # A live volunteer's last day in the unit in the snapshots: the window counted them
    # already if that day lies in it (unit_people ends with the window's snapshot days
    # while the windows exist: the nightly job keeps none where a later day is known).
    before = (
        select(UnitPeople.last_day)
        .where(
            UnitPeople.unit_kind == kind,
            UnitPeople.unit_id == lp.unit,
            UnitPeople.user_id == lp.user_id,
        )
        .scalar_subquery()
    )
    # OFFSET 0 keeps PostgreSQL from merging this SELECT into the outer one, where the
    # lookup was repeated for each of the four places that read it.
    pl = select(*lp, before.label("before")).offset(_ZERO).subquery().c
    recent = [f"r_{m}" for m in _SUMMED]

    def unseen_since(day) -> object:
        return or_(pl.before.is_(None), pl.before < day)

    live_rows = select(
        pl.unit,
        *(pl[c] for c in (*_SUMMED, *recent)),
        case((unseen_since(_DAY["start"]), _ONE), else_=_ZERO).label("people"),
        case(
            (and_(pl.last_day >= _DAY["since_30"], unseen_since(_DAY["since_30"])), _ONE),
            else_=_ZERO,
        ).label("people_30"),
        _ZERO.label("windows"),
    )
    of_window = (
        UnitWindow.unit_kind == kind,
        UnitWindow.starts_on == _DAY["start"],
        UnitWindow.through == _DAY["snapshot_to"],
        UnitWindow.last_day == _DAY["last"],
    )
    saved = select(
        UnitWindow.unit_id.label("unit"),
        *(getattr(UnitWindow, c) for c in (*_SUMMED, *recent, "people", "people_30")),
        _ONE.label("windows"),
    ).where(*of_window, _among(UnitWindow.unit_id, ids))
    # Unless every unit asked has its window (a night missed, a unit new since) the live
    # logs are not read at all: the caller reads everything from the snapshots instead.
    windows = select(func.count()).where(*of_window, _among(UnitWindow.unit_id, ids))
    live_rows = live_rows.where(windows.scalar_subquery() == bindparam("units"))
    r = union_all(saved, live_rows).subquery().c
    summed = (*_SUMMED, *recent, "people", "people_30", "windows")
    return select(r.unit, *(func.sum(r[c]) for c in summed)).group_by(r.unit)


def _figures(
    session: Session, kind: UnitKind, ids: set[int] | Select, w: _Window, *, live: bool = True
):
    """Per unit: totals, recent sums (for the projection), and active people, in one query
    that reads each source once: the nightly job's unit_window rows plus the live logs when
    it saved this window for every unit asked, else the snapshots plus the live logs; with
    ``live`` False, the snapshots alone (what a window holds)."""
    params = _params(kind, ids, w)
    if not live:
        params["live_days"] = []
    found = None
    if live and not isinstance(ids, Select) and windowed(kind):
        # On the day after a night, the only live day is today, which the projection's
        # rate leaves out: the live logs' recent sums are not computed at all.
        live_recent = any(day < w.last for day in params["live_days"])
        statement = _window_select(kind, _ids_for(session), live_recent)
        rows = session.execute(statement, {**params, "units": len(ids)}).all()
        if sum(row[-1] for row in rows) == len(ids):
            found = [row[:-1] for row in rows]
    if found is None:
        if isinstance(ids, Select):
            statement = _build_figures(kind, ids)
        else:
            statement = _figures_select(kind, _ids_for(session))
        found = session.execute(statement, params)
    summed: dict[int, list[int]] = {}
    active: dict[int, tuple[int, int]] = {}
    for unit, *values in found:
        summed[unit] = [int(v or 0) for v in values[:8]]
        active[unit] = (int(values[8]), int(values[9]))
    return summed, active


def _metrics(
    campaign: Campaign,
    w: _Window,
    share_now: float,
    totals: dict[str, int],
    recent: dict[str, int],
    targets: dict[str, int],
) -> list[MetricProgress]:
    days_left = max(0, (campaign.ends_on - w.last).days)
    recent_days = max(1, (w.last - w.recent_from).days)
    metrics = []
    for metric in [*METRICS, *sorted(set(targets) - set(METRICS))]:
        actual = totals.get(metric, 0)
        target = targets.get(metric)
        projected = None
        if metric in _SUMMED:
            projected = actual + recent[metric] / recent_days * days_left
        if target is None:
            status, share, expected = "no_target", None, None
        else:
            share = actual / target if target else 1.0
            expected = target * share_now
            status = status_of(actual, target, expected, projected)
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
    return metrics


def progress_of_units(
    *,
    session: Session,
    campaign: Campaign,
    kind: UnitKind,
    ids: list[int] | Select,
    today: date,
    covered: date | None,
    names: dict[int, str] | None = None,
) -> dict[int, UnitProgress]:
    """Every metric of every unit in ``ids`` (one level: a list, or a SELECT of ids, which
    keeps thousands of ids out of the statements), without daily figures, in a fixed number
    of queries; ``names`` spares looking up the units' names; the caller has checked scope."""
    if isinstance(ids, Select):
        wanted = ids
        model = tree.level(kind).model
        found = session.execute(
            select(model.id, tree.name_column(kind)).where(col(model.id).in_(ids))
        )
        names = dict(found.all())
        ids = list(names)
    else:
        wanted = set(ids)
        if not wanted:
            return {}
        if names is None:
            names = tree.names(session, kind, wanted)
    w = _Window.of(campaign, today, covered)
    targets: dict[int, dict[str, int]] = defaultdict(dict)
    of_campaign = {"campaign_id": campaign.id, "kind": kind}
    if isinstance(wanted, Select):
        found = session.execute(_TARGETS.where(col(Target.unit_id).in_(wanted)), of_campaign)
    else:
        targets_of = _TARGETS_OF[_ids_for(session)]
        found = session.execute(targets_of, {**of_campaign, "ids": sorted(wanted)})
    for unit_id, metric, value in found:
        targets[unit_id][metric] = value
    summed, active = _figures(session, kind, wanted, w)
    days_left = max(0, (campaign.ends_on - w.last).days)
    share_now = expected_share(campaign, w.last)
    result = {}
    for unit_id in ids:
        if unit_id not in names:
            continue
        values = summed.get(unit_id, [0] * 8)
        people, people_30 = active.get(unit_id, (0, 0))
        totals = dict(zip(_SUMMED, values[:4], strict=True))
        totals["active_volunteers"] = people
        recent = dict(zip(_SUMMED, values[4:], strict=True))
        result[unit_id] = UnitProgress(
            campaign_id=campaign.id,
            unit_kind=kind,
            unit_id=unit_id,
            unit_name=names[unit_id],
            today=today,
            days_left=days_left,
            expected_share=share_now,
            covered_through=covered,
            metrics=_metrics(campaign, w, share_now, totals, recent, targets[unit_id]),
            active_volunteers_30d=people_30,
            daily=[],
        )
    return result


def _daily(session: Session, kind: UnitKind, unit_id: int, w: _Window) -> list[DayFigures]:
    snapshot, live, *_ = _sources(kind, _ids_for(session))
    rows = union_all(snapshot, live.with_only_columns(*list(live.selected_columns)[:6])).subquery()
    by_day = session.execute(
        select(rows.c.day, *(func.sum(rows.c[m]) for m in _SUMMED))
        .group_by(rows.c.day)
        .order_by(rows.c.day),
        _params(kind, {unit_id}, w),
    )
    return [
        DayFigures(
            day=d,
            contacts=int(c or 0),
            conversations=int(v or 0),
            doors=int(o or 0),
            new_members=int(n or 0),
        )
        for d, c, v, o, n in by_day
    ]


def _add_coverage(session: Session, kind: UnitKind, found: dict[int, UnitProgress]) -> None:
    """Districts and turfs carry their door coverage as of the last nightly run."""
    if kind not in tree.FIELD_KINDS or not found:
        return
    coverage = district_coverage(session=session, **{f"{kind.value}_ids": set(found)})
    for unit_id, progress in found.items():
        doors, households, share = coverage.get(unit_id, (0, 0, None))
        progress.coverage = DoorCoverage(doors_knocked=doors, households=households, share=share)


def resolve_unit(*, session: Session, scope: Scope, kind: UnitKind, ref: str) -> object:
    """The unit a path names, if the caller sees it; one answer for missing and unseen."""
    try:
        unit = tree.resolve(session, kind, ref)
    except NotFound:
        unit = None
    if unit is None or not scope.sees(unit):
        raise NotFound(f"{kind.value} {ref} not found among the units you see")
    return unit


def daily_of_units(
    *,
    session: Session,
    campaign: Campaign,
    kind: UnitKind,
    ids: list[int] | Select,
    since: date,
    today: date,
    covered: date | None,
) -> dict[int, dict[date, int]]:
    """Conversations per day from ``since`` for every unit in ``ids``, in one query."""
    wanted = ids if isinstance(ids, Select) else set(ids)
    if not isinstance(ids, Select) and not wanted:
        return {}
    w = _Window.of(campaign, today, covered)
    snapshot, live, *_ = _sources(kind, wanted if isinstance(wanted, Select) else _ids_for(session))
    rows = union_all(snapshot, live.with_only_columns(*list(live.selected_columns)[:6])).subquery()
    found: dict[int, dict[date, int]] = defaultdict(dict)
    for unit, day, conversations in session.execute(
        select(rows.c.unit, rows.c.day, func.sum(rows.c.conversations))
        .where(rows.c.day >= since)
        .group_by(rows.c.unit, rows.c.day),
        _params(kind, wanted, w),
    ):
        found[unit][day] = int(conversations or 0)
    return found


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
    """Actual against target for every metric of one unit, with pace, projection and the
    daily figures."""
    campaign = get_campaign(session=session, scope=scope, campaign_id=campaign_id)
    if check_scope:
        scope.require_unit(unit_kind, unit_id, f"progress of {unit_kind.value} {unit_id}")
    covered = covered if covered is not None else covered_through(session)
    found = progress_of_units(
        session=session,
        campaign=campaign,
        kind=unit_kind,
        ids=[unit_id],
        today=today,
        covered=covered,
    )
    if unit_id not in found:
        raise Unprocessable(f"unit_id: {unit_kind.value} {unit_id} does not exist")
    _add_coverage(session, unit_kind, found)
    progress = found[unit_id]
    progress.daily = _daily(session, unit_kind, unit_id, _Window.of(campaign, today, covered))
    return progress


def child_progress(
    *,
    session: Session,
    scope: Scope,
    campaign_id: int,
    unit_kind: UnitKind,
    unit_id: int,
    today: date,
    covered: date | None = None,
) -> tuple[UnitKind | None, list[UnitProgress]]:
    """The progress of every child unit of a unit that the caller sees (a district admin's
    kommuner, a kommun's föreningar, a förening's districts), in the tree's order."""
    campaign = get_campaign(session=session, scope=scope, campaign_id=campaign_id)
    child = tree.child_kind(unit_kind)
    if child is None:
        return None, []
    model = tree.level(child).model
    # Everything below a unit the caller leads is theirs to see.
    leads = scope.leads(unit_id, unit_kind)
    order = tree.units_under(
        session,
        child,
        unit_kind,
        [unit_id],
        where=None if leads else scope.seen_filter(child, model.id),
        columns=[model.id, tree.name_column(child)],
    )
    covered = covered if covered is not None else covered_through(session)
    found = progress_of_units(
        session=session,
        campaign=campaign,
        kind=child,
        ids=[u.id for u in order],
        today=today,
        covered=covered,
        names={u[0]: u[1] for u in order},
    )
    _add_coverage(session, child, found)
    return child, [found[u.id] for u in order if u.id in found]


EXPORT_HEADER = [
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
    "enhet_kod",  # a kommun's SCB code, a district's code; empty for other units
]
# Most unit ids an export binds as values (each up to four times in one statement; SQLite
# takes 32,766 parameters, PostgreSQL 65,535); more are passed as the SELECT that finds them.
_IDS_AS_VALUES = 6000

# Appended to the district level only: see api/results/service.py for the formula.
EXPORT_PRIORITY_HEADER = ["priority", "priority_rank"]

# Appended for districts and turfs: doors knocked, households, share of households knocked.
COVERAGE_HEADER = ["dörrar_knackade", "hushåll", "täckning"]


def export_rows(
    *,
    session: Session,
    scope: Scope,
    campaign_id: int,
    level: UnitKind,
    today: date,
    kommun: str | None = None,
) -> list[list[object]]:
    """One row per unit and metric the caller sees, with a header row first; ``kommun`` (an
    SCB code) limits it to one kommun."""
    campaign = get_campaign(session=session, scope=scope, campaign_id=campaign_id)
    top, top_id = tree.LEVELS[0].kind, campaign.partidistrikt_id
    if kommun is not None:
        found = tree.resolve(session, tree.HOME_KIND, kommun)
        if found.partidistrikt_id != campaign.partidistrikt_id or not scope.sees(found):
            scope.require(False, f"kommun {kommun}")
        top, top_id = tree.HOME_KIND, found.id
    model = tree.level(level).model
    where = scope.seen_filter(level, model.id)
    if level == tree.kind_of(Turf):
        where = and_(where, col(model.retired_at).is_(None))
    code = [model.code] if hasattr(model, "code") else []
    name = tree.name_column(level)
    units = tree.units_under(
        session, level, top, [top_id], where=where, columns=[model.id, name, *code]
    )
    found = progress_of_units(
        session=session,
        campaign=campaign,
        kind=level,
        # The ids as values, not as the SELECT that found them: joined to the live logs,
        # the planner would test that SELECT's nested subqueries once per log. Each part of
        # the statement binds them again, so a level with very many units (turfs) keeps
        # the SELECT, under the databases' limits on bound parameters.
        ids=[u.id for u in units]
        if len(units) <= _IDS_AS_VALUES
        else tree.ids_under(level, top, [top_id]).where(where),
        today=today,
        covered=covered_through(session),
        names={u[0]: u[1] for u in units},
    )
    header = list(EXPORT_HEADER)
    # Field units carry their door-level coverage as of the last nightly run
    # (api.turfs.coverage), districts also their priority in the latest election
    # (api.results): both at the end, after the columns every level has.
    coverage = None
    if level in tree.FIELD_KINDS:
        ids = {u.id for u in units}
        coverage = district_coverage(session=session, **{f"{level.value}_ids": ids})
        header += COVERAGE_HEADER
    ranked = level == tree.COUNTED_KIND
    if ranked:
        header += EXPORT_PRIORITY_HEADER
        priorities = _priorities(session, [u.id for u in units])
    rows: list[list[object]] = [header]
    for unit in units:
        progress = found[unit.id]
        extra = [] if coverage is None else list(coverage.get(unit.id, (0, 0, None)))
        if ranked:
            extra += list(priorities.get(unit.id, (None, None)))
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
                    getattr(unit, "code", None),
                    *extra,
                ]
            )
    return rows


def _priorities(session: Session, district_ids: list[int]) -> dict[int, tuple[float, int]]:
    """Priority and rank of each district in the latest election, rounded for the sheet."""
    from api.results.service import district_priorities, latest_election
    from api.settings import get_settings

    election = latest_election(session)
    if election is None:
        return {}
    found = district_priorities(
        session=session,
        district_ids=district_ids,
        election=election,
        party=get_settings().priority_party,
    )
    return {d: (round(p, 1), rank) for d, (p, rank) in found.items()}
