"""The nightly progress email: what each lead sees for their own unit, in Swedish."""

from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import Select, func
from sqlmodel import Session, col, select

from api.members.progress import members_progress_of_units
from api.members.schemas import UnitMembers
from api.models import (
    Campaign,
    ContactLog,
    Role,
    UnitKind,
    User,
)
from api.org import tree
from api.progress.schemas import UnitProgress
from api.progress.service import (
    covered_through,
    daily_of_units,
    expected_share,
    progress_of_units,
)
from api.reports.chart import daily_chart_png
from api.reports.render import render_email

__all__ = [
    "LEAD_ROLES",
    "ProgressBook",
    "Report",
    "build_report",
    "lead_recipients",
    "render_email",
]

CHART_DAYS = 28
LEAD_ROLES = (Role.forening_lead, Role.kommun_lead, Role.district_admin)


@dataclass
class Report:
    recipient: User
    campaign: Campaign
    today: date
    unit: UnitProgress
    children: list[UnitProgress]
    children_label: str
    most_behind: list[UnitProgress]
    volunteers: list[tuple[str, int, int]] = field(default_factory=list)  # name, contacts, convs
    chart_png: bytes = b""
    # Per förening: new members contacted within 7 days (api.members), those with any due.
    new_members: list = field(default_factory=list)


def lead_recipients() -> Select:
    """The ids of the leads who get the nightly email (active, not opted out), as a query
    the outbox inserts from: the recipients never all sit in memory."""
    return select(User.id).where(
        col(User.is_active), col(User.nightly_email), col(User.role).in_(LEAD_ROLES)
    )


def _gap(p: UnitProgress) -> float:
    conv = p.metrics[0]
    if conv.target in (None, 0):
        return 0.0
    return (conv.share or 0.0) - p.expected_share


class ProgressBook:
    """What one day's nightly emails read, computed once for all of them: the progress of
    every unit of a level in a campaign (set-based), the last weeks' daily conversations of
    the units leads lead, each unit's children and each förening's volunteers' week. Each
    email then costs the same few statements whatever the size of its lead's scope."""

    def __init__(self, session: Session, today: date) -> None:
        self.session, self.today = session, today
        self.covered = covered_through(session)
        self._top: dict[UnitKind, dict[int, int | None]] = {}
        self._campaigns: dict[int, Campaign | None] = {}
        self._progress: dict[tuple[int, UnitKind], dict[int, UnitProgress]] = {}
        self._daily: dict[tuple[int, UnitKind], dict[int, dict[date, int]]] = {}
        self._below_cache: dict[tuple[int, UnitKind, UnitKind], dict[int, list[int]]] = {}
        self._week: dict[int, dict[int, list[tuple[str, int, int]]]] = {}
        self._members: dict[int, dict[int, UnitMembers]] = {}

    def campaign_for(self, kind: UnitKind, unit_id: int) -> Campaign | None:
        """The running campaign of the partidistrikt a unit belongs to."""
        if kind not in self._top:
            ids = self.session.exec(select(tree.level(kind).model.id))
            self._top[kind] = tree.ancestor_ids(self.session, kind, ids, tree.LEVELS[0].kind)
        top = self._top[kind].get(unit_id)
        if top not in self._campaigns:
            self._campaigns[top] = self.session.exec(
                select(Campaign)
                .where(
                    Campaign.partidistrikt_id == top,
                    Campaign.starts_on <= self.today,
                    Campaign.ends_on >= self.today,
                )
                .order_by(Campaign.starts_on)
            ).first()
            if self._campaigns[top] is not None:
                self.session.expunge(self._campaigns[top])  # kept across release()
        return self._campaigns[top]

    def release(self) -> None:
        """End the reading transaction between emails: on SQLite it holds the write lock
        that recording each email's outcome needs. What was computed stays."""
        self.session.rollback()

    def _ids(self, campaign: Campaign, kind: UnitKind) -> Select:
        return tree.ids_under(kind, tree.LEVELS[0].kind, [campaign.partidistrikt_id])

    def progress(self, campaign: Campaign, kind: UnitKind) -> dict[int, UnitProgress]:
        """Every unit of ``kind`` in the campaign's partidistrikt."""
        key = (campaign.id, kind)
        if key not in self._progress:
            self._progress[key] = progress_of_units(
                session=self.session,
                campaign=campaign,
                kind=kind,
                ids=self._ids(campaign, kind),
                today=self.today,
                covered=self.covered,
            )
        return self._progress[key]

    def daily(self, campaign: Campaign, kind: UnitKind, unit_id: int) -> dict[date, int]:
        """A unit's conversations per day over the chart's weeks."""
        key = (campaign.id, kind)
        if key not in self._daily:
            self._daily[key] = daily_of_units(
                session=self.session,
                campaign=campaign,
                kind=kind,
                ids=self._ids(campaign, kind),
                since=self.today - timedelta(days=CHART_DAYS - 1),
                today=self.today,
                covered=self.covered,
            )
        return self._daily[key].get(unit_id, {})

    def _below(self, campaign: Campaign, below: UnitKind, kind: UnitKind) -> dict[int, list[int]]:
        """The units of level ``below`` under each unit of ``kind``, in the tree's order."""
        key = (campaign.id, below, kind)
        if key not in self._below_cache:
            query, unit, _ = tree.ancestor_select(below, kind)
            lv = tree.level(below)
            rows = self.session.execute(
                query.where(unit.in_(self._ids(campaign, below))).order_by(
                    *(getattr(lv.model, c) for c in lv.order)
                )
            )
            by_parent: dict[int, list[int]] = {}
            for unit_id, parent in rows:
                by_parent.setdefault(parent, []).append(unit_id)
            self._below_cache[key] = by_parent
        return self._below_cache[key]

    def children(self, campaign: Campaign, kind: UnitKind) -> dict[int, list[int]]:
        """Each unit's children (the level below), in the tree's order."""
        child = tree.child_kind(kind)
        return {} if child is None else self._below(campaign, child, kind)

    def new_members(self, campaign: Campaign, kind: UnitKind, unit_id: int) -> list[UnitMembers]:
        """The new-member figures of each förening under a unit, in the tree's order."""
        member = tree.MEMBER_KIND
        if campaign.id not in self._members:
            ids = self.session.exec(self._ids(campaign, member)).all()
            self._members[campaign.id] = members_progress_of_units(
                session=self.session,
                campaign=campaign,
                kind=member,
                ids=list(ids),
                today=self.today,
            )
        figures = self._members[campaign.id]
        under = self._below(campaign, member, kind).get(unit_id, [])
        return [figures[f] for f in under if f in figures]

    def week(self, campaign: Campaign, forening_id: int) -> list[tuple[str, int, int]]:
        """A förening's volunteers' last seven days: name, contacts, conversations."""
        if campaign.id not in self._week:
            ids = tree.ids_under(tree.MEMBER_KIND, tree.LEVELS[0].kind, [campaign.partidistrikt_id])
            rows = self.session.exec(
                select(
                    ContactLog.forening_id,
                    User.display_name,
                    func.count(),
                    func.sum(ContactLog.conversations),
                )
                .join(User, ContactLog.user_id == User.id)
                .where(
                    col(ContactLog.forening_id).in_(ids),
                    col(ContactLog.withdrawn_at).is_(None),
                    ContactLog.day >= self.today - timedelta(days=6),
                    ContactLog.day <= self.today,
                )
                .group_by(ContactLog.forening_id, User.id, User.display_name)
            )
            found: dict[int, list[tuple[str, int, int]]] = {}
            for fid, name, n, c in rows:
                found.setdefault(fid, []).append((name, n, int(c or 0)))
            for entries in found.values():
                entries.sort(key=lambda e: (-e[2], e[0]))
            self._week[campaign.id] = found
        return self._week[campaign.id].get(forening_id, [])


def build_report(
    *, session: Session, user: User, today: date, book: ProgressBook | None = None
) -> Report | None:
    """The data of one lead's nightly email, or None when no campaign is running; ``book``
    shares the figures of one day's emails (a new one is made for a lone email)."""
    book = book or ProgressBook(session, today)
    kind = UnitKind(user.unit_kind)
    campaign = book.campaign_for(kind, user.unit_id)
    if campaign is None:
        return None
    unit = book.progress(campaign, kind).get(user.unit_id)
    if unit is None:
        return None
    child_kind = tree.child_kind(kind)
    children: list[UnitProgress] = []
    if child_kind is not None:
        of_child = book.progress(campaign, child_kind)
        children = [of_child[i] for i in book.children(campaign, kind).get(user.unit_id, [])]
    label = tree.unit_label(child_kind) if child_kind else ""
    volunteers = book.week(campaign, user.unit_id) if kind == tree.MEMBER_KIND else []
    behind = sorted((c for c in children if _gap(c) < 0), key=_gap)[:3]

    days = [today - timedelta(days=i) for i in range(CHART_DAYS - 1, -1, -1)]
    by_day = book.daily(campaign, kind, user.unit_id)
    target = unit.metrics[0].target or 0
    needed = [
        target * (expected_share(campaign, d) - expected_share(campaign, d - timedelta(days=1)))
        for d in days
    ]
    chart = daily_chart_png(days, [by_day.get(d, 0) for d in days], needed)
    return Report(
        new_members=[m for m in book.new_members(campaign, kind, user.unit_id) if m.due],
        recipient=user,
        campaign=campaign,
        today=today,
        unit=unit,
        children=children,
        children_label=label,
        most_behind=behind,
        volunteers=volunteers,
        chart_png=chart,
    )
