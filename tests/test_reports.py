"""The nightly email's rendering, from hand-made progress figures (no database)."""

from datetime import date
from email import message_from_bytes, policy

import pytest

from api.models import Campaign, Role, UnitKind, User
from api.progress.schemas import MetricProgress, UnitProgress
from api.reports.chart import daily_chart_png
from api.reports.render import render_email, status_word
from api.reports.service import Report
from api.settings import Settings

TODAY = date(2026, 5, 4)


def _metric(name, actual, target, expected=None, projected=None, status="no_target"):
    share = None if target is None else actual / target
    return MetricProgress(
        metric=name,
        actual=actual,
        target=target,
        share=share,
        expected=expected,
        projected=projected,
        status=status,
    )


def _unit(name, unit_id, conversations: MetricProgress, *others: MetricProgress) -> UnitProgress:
    return UnitProgress(
        campaign_id=1,
        unit_kind=UnitKind.kommun,
        unit_id=unit_id,
        unit_name=name,
        today=TODAY,
        days_left=132,
        expected_share=0.3,
        covered_through=date(2026, 5, 3),
        metrics=[conversations, *others],
        active_volunteers_30d=9,
        daily=[],
    )


def _report(unit: UnitProgress, children: list[UnitProgress]) -> Report:
    return Report(
        recipient=User(
            email="lead@example.org",
            display_name="Kim <Lead>",
            role=Role.kommun_lead,
            unit_kind=UnitKind.kommun,
            unit_id=1,
        ),
        campaign=Campaign(name="Valrörelsen 2026", partidistrikt_id=1),
        today=TODAY,
        unit=unit,
        children=children,
        children_label="Föreningarna",
        most_behind=[],
        chart_png=daily_chart_png([TODAY], [3], [4.0]),
    )


def _parts(report: Report) -> tuple[str, str]:
    sent = message_from_bytes(
        bytes(render_email(report=report, settings=Settings(_env_file=None))),
        policy=policy.default,
    )
    return sent.get_body(("plain",)).get_content(), sent.get_body(("html",)).get_content()


def test_both_parts_show_all_three_metrics_with_targets_and_bars():
    unit = _unit(
        "Östersund",
        1,
        _metric("conversations", 300, 600, 180, 900, "on_track"),
        _metric("doors", 500, None, None, 1200),
        _metric("new_members", 4, 20, 6, 10, "behind"),
        _metric("active_volunteers", 12, 30, 9, None, "on_track"),
    )
    text, html = _parts(_report(unit, []))
    assert "Samtal: 300 av 600  ██████████░░░░░░░░░░ 50 %" in text
    assert "Aktiva volontärer: 12 av 30  ████████░░░░░░░░░░░░ 40 %" in text
    assert "Nya medlemmar: 4 av 20  ████░░░░░░░░░░░░░░░░ 20 %" in text
    rows = [row for row in html.split("<tr>") if "<b>" in row]
    assert [row.split("<b>")[1].split("</b>")[0] for row in rows] == [
        "Samtal",
        "Aktiva volontärer",
        "Nya medlemmar",
    ]
    for row, (target, pct) in zip(rows, [("600", 50), ("30", 40), ("20", 20)], strict=True):
        assert f'<td align="right">{target}</td>' in row and f"width:{pct}%" in row
    # The name is text in both parts, markup only in neither.
    assert "Hej Kim <Lead>!" in text and "Kim &lt;Lead&gt;" in html and "<Lead>" not in html


@pytest.mark.parametrize(
    ("status", "projected", "word"),
    [
        ("done", 700, "klart"),
        ("on_track", 650, "i fas"),
        ("at_risk", 500, "i fas men prognosen når inte målet"),
        # What the progress service said before it knew "at_risk": never "i fas" alone.
        ("on_track", 500, "i fas men prognosen når inte målet"),
        ("behind", 400, "efter takten"),
    ],
)
def test_the_status_never_contradicts_the_projection(status, projected, word):
    conv = _metric("conversations", 300, 600, 250, projected, status)
    child = _unit("S-föreningen Frösön", 2, conv)
    text, html = _parts(_report(_unit("Östersund", 1, conv), [child]))
    assert status_word(conv) == word
    assert f"prognos till valdagen {projected}, {word}." in text
    assert f'<td align="right">{projected}</td><td>{word}</td>' in html
    child_line = next(line for line in text.splitlines() if "Frösön" in line)
    assert child_line.endswith(f"  {word}") and "300 /     600" in child_line
    assert f"<td>{word}</td></tr>" in html.split("Frösön")[1]


def test_no_target_says_so():
    conv = _metric("conversations", 12, None, None, 40)
    text, _ = _parts(_report(_unit("Åre", 1, conv), []))
    assert "Samtal: 12 av –" in text and "Prognos till valdagen 40, inget mål." in text
