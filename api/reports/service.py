"""The nightly progress email: what each lead sees for their own unit, in Swedish."""

import html
from dataclasses import dataclass, field
from datetime import date, timedelta
from email.message import EmailMessage
from email.utils import make_msgid

from sqlalchemy import func
from sqlmodel import Session, col, select

from api.auth.scope import Scope
from api.mail import build_message
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
from api.settings import Settings

__all__ = ["Report", "build_report", "lead_recipients", "render_email"]

CHART_DAYS = 28
_STATUS_SV = {
    "done": "klart",
    "on_track": "i fas",
    "at_risk": "i fas men prognosen når inte målet",
    "behind": "efter",
    "no_target": "inget mål",
}


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


def lead_recipients(session: Session) -> list[User]:
    """Leads who get the nightly email: active, not opted out, any lead role."""
    return list(
        session.exec(
            select(User)
            .where(
                col(User.is_active),
                col(User.nightly_email),
                col(User.role).in_([Role.forening_lead, Role.kommun_lead, Role.district_admin]),
            )
            .order_by(User.id)
        )
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


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f} %"


def _bar(share: float | None, width: int = 20) -> str:
    filled = 0 if share is None else min(width, round(share * width))
    return "█" * filled + "░" * (width - filled)


def _num(value: float | int | None) -> str:
    return "–" if value is None else f"{value:,.0f}".replace(",", " ")


def _text(report: Report) -> str:
    u, conv = report.unit, report.unit.metrics[0]
    metrics = {m.metric: m for m in u.metrics}
    lines = [
        f"Hej {report.recipient.display_name}!",
        "",
        f"Så här går det för {u.unit_name} i {report.campaign.name}, "
        f"{report.today.isoformat()} ({u.days_left} dagar kvar till valdagen).",
        "",
        f"Samtal: {_num(conv.actual)} av {_num(conv.target)}  "
        f"{_bar(conv.share)} {_pct(conv.share)}",
        f"  Takten kräver {_num(conv.expected)} i dag; prognos till valdagen {_num(conv.projected)}"
        f" ({_STATUS_SV[conv.status]}).",
        f"Aktiva i valrörelsen: {_num(metrics['active_volunteers'].actual)} av "
        f"{_num(metrics['active_volunteers'].target)} "
        f"({u.active_volunteers_30d} senaste 30 dagarna)",
        f"Nya medlemmar: {_num(metrics['new_members'].actual)} av "
        f"{_num(metrics['new_members'].target)}",
        "",
        f"{report.children_label}:",
    ]
    for c in report.children:
        m = c.metrics[0]
        lines.append(
            f"  {c.unit_name:<32} {_num(m.actual):>7} / {_num(m.target):>7}  {_bar(m.share, 10)} "
            f"{_pct(m.share):>5}  {_STATUS_SV[m.status]}"
        )
    if report.most_behind:
        lines += ["", "Längst efter takten:"]
        lines += [
            f"  {i}. {c.unit_name}: {_pct(c.metrics[0].share)} klart, takten kräver "
            f"{_pct(c.expected_share)}"
            for i, c in enumerate(report.most_behind, start=1)
        ]
    if report.volunteers:
        lines += ["", "Volontärernas aktivitet senaste 7 dagarna (kontakter, samtal):"]
        lines += [f"  {name}: {n}, {c}" for name, n, c in report.volunteers]
    lines += [
        "",
        "Diagrammet i HTML-versionen visar samtal per dag mot takten som behövs.",
        "Vill du inte längre få det här mejlet? Stäng av det under /me/preferences i Knacka.",
    ]
    return "\n".join(lines) + "\n"


def _html_bar(share: float | None) -> str:
    pct = 0 if share is None else min(100, round(share * 100))
    return (
        '<div style="background:#eee;width:160px;height:12px;display:inline-block">'
        f'<div style="background:#c41e3a;width:{pct}%;height:12px"></div></div>'
    )


def _html(report: Report, cid: str) -> str:
    e = html.escape
    u, conv = report.unit, report.unit.metrics[0]
    rows = "".join(
        f"<tr><td>{e(c.unit_name)}</td><td align='right'>{_num(c.metrics[0].actual)}</td>"
        f"<td align='right'>{_num(c.metrics[0].target)}</td><td>{_html_bar(c.metrics[0].share)} "
        f"{_pct(c.metrics[0].share)}</td><td>{_STATUS_SV[c.metrics[0].status]}</td></tr>"
        for c in report.children
    )
    behind = "".join(
        f"<li>{e(c.unit_name)}: {_pct(c.metrics[0].share)} klart, takten kräver "
        f"{_pct(c.expected_share)}</li>"
        for c in report.most_behind
    )
    vols = "".join(
        f"<tr><td>{e(name)}</td><td align='right'>{n}</td><td align='right'>{c}</td></tr>"
        for name, n, c in report.volunteers
    )
    return f"""<!DOCTYPE html><html lang="sv"><head><meta charset="utf-8"></head>
<body style="font-family:Arial,sans-serif;color:#222">
<p>Hej {e(report.recipient.display_name)}!</p>
<h2>{e(u.unit_name)}: {e(report.campaign.name)}</h2>
<p>{report.today.isoformat()}, {u.days_left} dagar kvar till valdagen.</p>
<p><b>Samtal:</b> {_num(conv.actual)} av {_num(conv.target)} {_html_bar(conv.share)}
{_pct(conv.share)}<br>Takten kräver {_num(conv.expected)} i dag; prognos till valdagen
{_num(conv.projected)} ({_STATUS_SV[conv.status]}).</p>
<p><img src="cid:{cid[1:-1]}" alt="Samtal per dag mot takten som behövs" width="560"><br>
<small>Samtal per dag de senaste fyra veckorna (staplar) och takten som behövs (linje).</small></p>
<h3>{e(report.children_label)}</h3>
<table cellpadding="4"><tr><th align="left">Enhet</th><th>Samtal</th><th>Mål</th>
<th align="left">Andel</th><th align="left">Status</th></tr>{rows}</table>
{f"<h3>Längst efter takten</h3><ol>{behind}</ol>" if behind else ""}
{f"<h3>Volontärernas aktivitet senaste 7 dagarna</h3><table cellpadding='4'><tr><th align='left'>Namn</th><th>Kontakter</th><th>Samtal</th></tr>{vols}</table>" if vols else ""}
<p style="color:#777;font-size:12px">Vill du inte längre få det här mejlet? Stäng av det
under /me/preferences i Knacka.</p>
</body></html>"""  # noqa: E501


def render_email(*, report: Report, settings: Settings) -> EmailMessage:
    """The multipart email: plain text, and HTML with the chart as an inline image."""
    cid = make_msgid(domain="knacka.invalid")
    message = build_message(
        settings=settings,
        to=report.recipient.email,
        subject=f"Knacka: läget för {report.unit.unit_name} {report.today.isoformat()}",
        text=_text(report),
        html=_html(report, cid),
    )
    html_part = message.get_payload()[1]
    html_part.add_related(report.chart_png, "image", "png", cid=cid, filename="samtal.png")
    return message
