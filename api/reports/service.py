"""The nightly progress email: what each lead sees for their own unit, in Swedish."""

from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import Select, func
from sqlmodel import Session, col, select

from api.auth.scope import Scope
from api.models import (
    Campaign,
    ContactLog,
    Role,
    UnitKind,
    User,
)
from api.org import tree
from api.org.service import partidistrikt_of
from api.progress.schemas import UnitProgress
from api.progress.service import (
    child_progress,
    covered_through,
    expected_share,
    unit_progress,
)
from api.reports.chart import daily_chart_png
from api.reports.render import render_email

__all__ = ["LEAD_ROLES", "Report", "build_report", "lead_recipients", "render_email"]

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


def _campaign_for(session: Session, partidistrikt_id: int, today: date) -> Campaign | None:
    return session.exec(
        select(Campaign)
        .where(
            Campaign.partidistrikt_id == partidistrikt_id,
            Campaign.starts_on <= today,
            Campaign.ends_on >= today,
        )
        .order_by(Campaign.starts_on)
    ).first()


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


def build_report(*, session: Session, user: User, today: date) -> Report | None:
    """The data of one lead's nightly email, or None when no campaign is running."""
    campaign = _campaign_for(
        session, partidistrikt_of(session, UnitKind(user.unit_kind), user.unit_id), today
    )
    if campaign is None:
        return None
    scope = Scope(session=session, user=user)
    covered = covered_through(session)
    kind = UnitKind(user.unit_kind)
    unit = unit_progress(
        session=session,
        scope=scope,
        campaign_id=campaign.id,
        unit_kind=kind,
        unit_id=user.unit_id,
        today=today,
        covered=covered,
        check_scope=False,
    )
    child_kind, children = child_progress(
        session=session,
        scope=scope,
        campaign_id=campaign.id,
        unit_kind=kind,
        unit_id=user.unit_id,
        today=today,
        covered=covered,
    )
    label = tree.unit_label(child_kind) if child_kind else ""
    volunteers: list[tuple[str, int, int]] = []
    if kind == tree.MEMBER_KIND:
        week_ago = today - timedelta(days=6)
        rows = session.exec(
            select(User.display_name, func.count(), func.sum(ContactLog.conversations))
            .join(ContactLog, ContactLog.user_id == User.id)
            .where(
                ContactLog.forening_id == user.unit_id,
                col(ContactLog.withdrawn_at).is_(None),
                ContactLog.day >= week_ago,
                ContactLog.day <= today,
            )
            .group_by(User.id, User.display_name)
            .order_by(func.sum(ContactLog.conversations).desc(), User.display_name)
        ).all()
        volunteers = [(name, n, int(c or 0)) for name, n, c in rows]
    behind = sorted((c for c in children if _gap(c) < 0), key=_gap)[:3]

    days = [today - timedelta(days=i) for i in range(CHART_DAYS - 1, -1, -1)]
    by_day = {d.day: d.conversations for d in unit.daily}
    target = unit.metrics[0].target or 0
    needed = [
        target * (expected_share(campaign, d) - expected_share(campaign, d - timedelta(days=1)))
        for d in days
    ]
    chart = daily_chart_png(days, [by_day.get(d, 0) for d in days], needed)
    return Report(
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
