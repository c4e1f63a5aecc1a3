"""The nightly progress email rendered from its templates: plain text and HTML with the
chart inline, both showing the same figures in the same Swedish words."""

from dataclasses import dataclass
from email.message import Message
from email.utils import make_msgid
from typing import TYPE_CHECKING

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from api.mail import build_message
from api.progress.schemas import MetricProgress, UnitProgress
from api.settings import Settings

if TYPE_CHECKING:
    from api.reports.service import Report

__all__ = ["HEADLINE_METRICS", "STATUS_SV", "render_email", "render_parts", "status_word"]

# What a lead reads for each progress status; never a word the projection contradicts.
STATUS_SV = {
    "done": "klart",
    "on_track": "i fas",
    "at_risk": "i fas men prognosen når inte målet",
    "behind": "efter takten",
    "no_target": "inget mål",
}
HEADLINE_METRICS = {
    "conversations": "Samtal",
    "active_volunteers": "Aktiva volontärer",
    "new_members": "Nya medlemmar",
}

_ENV = Environment(
    loader=PackageLoader("api.reports", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f} %"


def _bar(share: float | None, width: int = 20) -> str:
    filled = 0 if share is None else max(0, min(width, round(share * width)))
    return "█" * filled + "░" * (width - filled)


def _bar_pct(share: float | None) -> int:
    return 0 if share is None else max(0, min(100, round(share * 100)))


def _num(value: float | int | None) -> str:
    return "–" if value is None else f"{value:,.0f}".replace(",", " ")


def status_word(metric: MetricProgress) -> str:
    """The status in the lead's words. On pace today but projected short of the target is
    "at risk", whichever of the two the progress service reported."""
    status = metric.status
    if (
        status == "on_track"
        and metric.target
        and metric.projected is not None
        and metric.projected < metric.target
    ):
        status = "at_risk"
    return STATUS_SV[status]


_ENV.filters.update(pct=_pct, bar=_bar, bar_pct=_bar_pct, num=_num, status=status_word)


@dataclass(frozen=True)
class _Headline:
    label: str
    metric: MetricProgress


def _headlines(unit: UnitProgress) -> list[_Headline]:
    by_name = {m.metric: m for m in unit.metrics}
    return [_Headline(label, by_name[k]) for k, label in HEADLINE_METRICS.items() if k in by_name]


def render_parts(*, report: "Report", cid: str) -> tuple[str, str]:
    """The plain text and the HTML of one report; ``cid`` names the inline chart."""
    context = {
        "r": report,
        "u": report.unit,
        "headlines": _headlines(report.unit),
        "chart_cid": cid[1:-1],
    }
    text = _ENV.get_template("nightly.txt.j2").render(context)
    html = _ENV.get_template("nightly.html.j2").render(context)
    return text, html


def render_email(*, report: "Report", settings: Settings) -> Message:
    """The multipart email: plain text, and HTML with the chart as an inline image."""
    cid = make_msgid(domain="knacka.invalid")
    text, html = render_parts(report=report, cid=cid)
    return build_message(
        settings=settings,
        to=report.recipient.email,
        subject=f"Knacka: läget för {report.unit.unit_name} {report.today.isoformat()}",
        text=text,
        html=html,
        inline_png=(report.chart_png, cid, "samtal.png"),
    )
