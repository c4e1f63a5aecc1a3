"""Targets, apportioning, pace, projection, active volunteers, snapshots and export."""

import csv
import io
from datetime import date, datetime, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy.engine import make_url
from sqlmodel import select

from api.campaigns.service import largest_remainder
from api.db import make_engine
from api.models import (
    Campaign,
    DailyGrain,
    DailyStat,
    Forening,
    JobRun,
    JobRunStatus,
    Role,
    Turf,
    UnitKind,
)
from api.progress.service import expected_share
from api.progress.snapshots import rebuild_days
from tests import factories as f

UTC_NOON = "T10:00:00+00:00"


@pytest.fixture
def jamt(session, admin):
    """Jämtlands län with two kommuner, föreningar, districts with voters, and a campaign."""
    pd = f.partidistrikt(session)
    ost, are = f.kommun(session, pd=pd), f.kommun(session, "2321", "Åre", pd)
    frosön = f.forening(session, ost, "S-föreningen Frösön")
    brunflo = f.forening(session, ost, "S-föreningen Brunflo")
    jarpen = f.forening(session, are, "S-föreningen Järpen")
    ds = [
        f.district(session, ost, "23800001", 0, frosön),
        f.district(session, ost, "23800002", 1, frosön),
        f.district(session, ost, "23800003", 2, brunflo),
        f.district(session, are, "23210001", 3, jarpen),
    ]
    for d, voters in zip(ds, (1000, 2000, 3000, 4000), strict=True):
        d.voters, d.households = voters, voters // 2
        session.add(d)
    camp = f.campaign(session, pd, "2026-03-01", "2026-09-13")
    session.flush()
    return {
        "pd": pd,
        "ost": ost,
        "are": are,
        "frosön": frosön,
        "brunflo": brunflo,
        "jarpen": jarpen,
        "districts": ds,
        "campaign": camp,
    }


def test_largest_remainder_sums_exactly():
    assert largest_remainder(43_000, [1, 1, 1]) == [14_334, 14_333, 14_333]
    assert largest_remainder(10, [0.5, 0.25, 0.25]) == [5, 3, 2]
    assert sum(largest_remainder(155, [3, 7, 11, 13])) == 155
    with pytest.raises(ValueError):
        largest_remainder(5, [0, 0])


def test_apportion_by_voters_households_or_evenly(client, session, jamt):
    cid = jamt["campaign"].id
    put = client.put(
        f"/campaigns/{cid}/targets",
        json={
            "unit_kind": "partidistrikt",
            "unit_id": jamt["pd"].id,
            "metric": "conversations",
            "value": 43_000,
        },
    )
    assert put.status_code == 200 and put.json()["basis"] == "direct"
    by_voters = client.post(
        f"/campaigns/{cid}/apportion",
        json={"unit_kind": "partidistrikt", "unit_id": jamt["pd"].id, "metric": "conversations"},
    ).json()
    assert {t["unit_name"]: (t["value"], t["basis"]) for t in by_voters} == {
        "Östersund": (25_800, "voters"),
        "Åre": (17_200, "voters"),
    }
    by_households = client.post(
        f"/campaigns/{cid}/apportion",
        json={
            "unit_kind": "kommun",
            "unit_id": jamt["ost"].id,
            "metric": "conversations",
            "basis": "households",
        },
    ).json()
    assert [(t["unit_name"], t["value"]) for t in by_households] == [
        ("S-föreningen Brunflo", 12_900),
        ("S-föreningen Frösön", 12_900),
    ]
    jamt["districts"][0].voters = None
    session.add(jamt["districts"][0])
    session.flush()
    missing = client.post(
        f"/campaigns/{cid}/apportion",
        json={
            "unit_kind": "kommun",
            "unit_id": jamt["ost"].id,
            "metric": "conversations",
            "basis": "voters",
        },
    )
    assert missing.status_code == 422 and missing.json()["detail"].startswith("basis:")
    auto = client.post(
        f"/campaigns/{cid}/apportion",
        json={
            "unit_kind": "kommun",
            "unit_id": jamt["ost"].id,
            "metric": "conversations",
            "children": "districts",
        },
    ).json()
    # voters are now incomplete, so "auto" falls back to households (500, 1000, 1500)
    assert [(t["value"], t["basis"]) for t in auto] == [
        (4_300, "households"),
        (8_600, "households"),
        (12_900, "households"),
    ]
    no_parent = client.post(
        f"/campaigns/{cid}/apportion",
        json={"unit_kind": "forening", "unit_id": jamt["jarpen"].id, "metric": "conversations"},
    )
    assert (
        no_parent.status_code == 422 and "no 'conversations' target" in no_parent.json()["detail"]
    )


def test_targets_that_do_not_add_up_are_reported(client, jamt):
    cid = jamt["campaign"].id
    for kind, uid, value in (
        ("partidistrikt", jamt["pd"].id, 1000),
        ("kommun", jamt["ost"].id, 700),
        ("kommun", jamt["are"].id, 200),
        ("forening", jamt["frosön"].id, 700),
    ):
        client.put(
            f"/campaigns/{cid}/targets",
            json={"unit_kind": kind, "unit_id": uid, "metric": "conversations", "value": value},
        )
    tree = client.get(f"/campaigns/{cid}/targets", params={"metric": "conversations"}).json()
    assert len(tree["targets"]) == 4
    assert [(m["unit_name"], m["children_sum"], m["difference"]) for m in tree["mismatches"]] == [
        ("Jämtlands län", 900, -100)
    ]
    client.put(
        f"/campaigns/{cid}/targets",
        json={
            "unit_kind": "forening",
            "unit_id": jamt["brunflo"].id,
            "metric": "conversations",
            "value": 50,
        },
    )
    tree = client.get(f"/campaigns/{cid}/targets").json()
    assert {(m["unit_name"], m["difference"]) for m in tree["mismatches"]} == {
        ("Jämtlands län", -100),
        ("Östersund", 50),
    }
    bad = client.put(
        f"/campaigns/{cid}/targets",
        json={"unit_kind": "kommun", "unit_id": jamt["ost"].id, "metric": "Samtal", "value": -1},
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"metric", "value"}


def test_pace_curves(jamt):
    camp = jamt["campaign"]  # 2026-03-01 .. 2026-09-13: 197 days
    assert expected_share(camp, date(2026, 2, 1)) == 0.0
    assert expected_share(camp, date(2026, 3, 1)) == pytest.approx(1 / 197)
    assert expected_share(camp, date(2026, 6, 6)) == pytest.approx(98 / 197)
    assert expected_share(camp, date(2026, 9, 13)) == 1.0
    camp.pace_curve, camp.pace_final_weeks, camp.pace_final_weight = "final_weeks", 6, 2.0
    # 155 ordinary days and 42 doubled ones: halfway in days is well under half the work
    assert expected_share(camp, date(2026, 6, 6)) == pytest.approx(98 / (155 + 84))
    assert expected_share(camp, date(2026, 8, 2)) == pytest.approx(155 / 239)
    assert expected_share(camp, date(2026, 8, 3)) == pytest.approx(157 / 239)


def _log(session, who, district, day: str, n: int = 1, **fields):
    when = datetime.fromisoformat(day + UTC_NOON)
    return [f.contact(session, who, district, when, **fields) for _ in range(n)]


def _close_night(session, night: date) -> None:
    rebuild_days(session, None)
    session.add(JobRun(job="nightly", for_day=night, holder="test", status=JobRunStatus.succeeded))
    session.flush()


def test_progress_reads_snapshots_plus_the_live_day(client, session, jamt, clock):
    d1, d2, d3, _ = jamt["districts"]
    vol_a = f.user(session, Role.volunteer, jamt["frosön"])
    vol_b = f.user(session, Role.volunteer, jamt["frosön"])
    cid = jamt["campaign"].id
    f.target(session, jamt["campaign"], jamt["frosön"], "conversations", 1970)
    f.target(session, jamt["campaign"], jamt["frosön"], "active_volunteers", 4)
    _log(session, vol_a, d1, "2026-03-10", 30)
    _log(session, vol_a, d2, "2026-04-20", 40)
    _log(session, vol_b, d1, "2026-05-01", 10, outcome="not_home", conversations=0)
    _log(session, vol_b, d1, "2026-04-25", 1, kind="stall", quantity=25, conversations=25)
    withdrawn = _log(session, vol_b, d2, "2026-05-02", 5)
    for c in withdrawn:
        c.withdrawn_at = c.received_at
        session.add(c)
    _close_night(session, date(2026, 5, 3))
    clock.now = datetime.fromisoformat("2026-05-04T12:00:00+02:00")
    _log(session, vol_a, d2, "2026-05-04", 5)  # today: not in any snapshot yet

    body = client.get(f"/campaigns/{cid}/progress/forening/{jamt['frosön'].id}").json()
    m = {x["metric"]: x for x in body["metrics"]}
    assert body["covered_through"] == "2026-05-03" and body["today"] == "2026-05-04"
    assert m["conversations"]["actual"] == 30 + 40 + 25 + 5
    assert m["doors"]["actual"] == 30 + 40 + 10 + 5
    assert m["active_volunteers"]["actual"] == 2 and body["active_volunteers_30d"] == 2
    # 2026-05-04 is day 65 of 197: 1970 * 65 / 197 = 650 expected; 100 done is behind
    assert m["conversations"]["expected"] == pytest.approx(650)
    assert m["conversations"]["status"] == "behind"
    assert m["conversations"]["share"] == pytest.approx(100 / 1970)
    # last 14 days (04-20 .. 05-03): 40 + 25 = 65 conversations; 132 days to go
    assert m["conversations"]["projected"] == pytest.approx(100 + 65 / 14 * 132)
    assert m["new_members"]["status"] == "no_target"
    assert [d["day"] for d in body["daily"]] == [
        "2026-03-10",
        "2026-04-20",
        "2026-04-25",
        "2026-05-01",
        "2026-05-04",
    ]
    kommun = client.get(f"/campaigns/{cid}/progress/kommun/{jamt['ost'].code}").json()
    assert kommun["metrics"][0]["actual"] == 100
    pd = client.get(f"/campaigns/{cid}/progress/partidistrikt/{jamt['pd'].id}").json()
    assert pd["metrics"][0]["actual"] == 100
    district = client.get(f"/campaigns/{cid}/progress/district/{d3.code}").json()
    assert district["metrics"][0]["actual"] == 0
    busy = client.get(f"/campaigns/{cid}/progress/district/{d1.code}").json()
    assert busy["metrics"][0]["actual"] == 30 + 25  # vol_a's doors and vol_b's stall
    assert [d["day"] for d in busy["daily"]] == ["2026-03-10", "2026-04-25", "2026-05-01"]


def test_a_night_before_the_campaign_leaves_no_earlier_day_live(client, session, jamt, clock):
    d1 = jamt["districts"][0]
    cid = jamt["campaign"].id  # from 2026-03-01
    early, late = (f.user(session, Role.volunteer, jamt["frosön"]) for _ in range(2))
    _close_night(session, date(2026, 2, 20))
    _log(session, early, d1, "2026-02-25", 4)  # after that night, before the campaign
    _log(session, late, d1, "2026-03-02", 3)
    clock.now = datetime.fromisoformat("2026-03-03T12:00:00+01:00")
    for path in (f"kommun/{jamt['ost'].code}", f"district/{d1.code}"):
        body = client.get(f"/campaigns/{cid}/progress/{path}").json()
        m = {x["metric"]: x for x in body["metrics"]}
        assert m["conversations"]["actual"] == 3, path
        assert m["active_volunteers"]["actual"] == 1, path
        assert [d["day"] for d in body["daily"]] == ["2026-03-02"], path


def test_active_volunteers_are_people_not_devices(client, session, jamt, clock):
    d1 = jamt["districts"][0]
    vol_a = f.user(session, Role.volunteer, jamt["frosön"])
    f.auth_headers(session, vol_a, clock.now)
    f.auth_headers(session, vol_a, clock.now)  # a second phone: still one person
    _log(session, vol_a, d1, "2026-03-02", 3)
    _log(session, vol_a, d1, "2026-04-30", 1)
    old = f.user(session, Role.volunteer, jamt["frosön"])
    _log(session, old, d1, "2026-03-03", 2)
    _close_night(session, date(2026, 5, 3))
    body = client.get(f"/campaigns/{jamt['campaign'].id}/progress/kommun/{jamt['ost'].code}").json()
    active = next(m for m in body["metrics"] if m["metric"] == "active_volunteers")
    assert active["actual"] == 2 and body["active_volunteers_30d"] == 1


def test_snapshot_rebuild_is_idempotent(session, jamt):
    d1, d2, _, d4 = jamt["districts"]
    vol_a = f.user(session, Role.volunteer, jamt["frosön"])
    vol_c = f.user(session, Role.volunteer, jamt["jarpen"])
    _log(session, vol_a, d1, "2026-04-01", 3)
    _log(session, vol_a, d2, "2026-04-01", 2, kind="phone")
    _log(session, vol_c, d4, "2026-04-02", 4, new_member=True)

    def tables():
        return (
            sorted(tuple(r) for r in session.exec(select(DailyGrain)).all()),
            sorted(tuple(r) for r in session.exec(select(DailyStat)).all()),
        )

    first_rows = rebuild_days(session, None)
    first = tables()
    assert rebuild_days(session, [date(2026, 4, 1), date(2026, 4, 2)]) == first_rows
    assert tables() == first
    stats = {(s.day, s.unit_kind, s.unit_id): s for s in session.exec(select(DailyStat))}
    ost_day = stats[(date(2026, 4, 1), UnitKind.kommun, jamt["ost"].id)]
    assert (ost_day.contacts, ost_day.doors, ost_day.volunteers) == (5, 3, 1)
    are_day = stats[(date(2026, 4, 2), UnitKind.kommun, jamt["are"].id)]
    assert are_day.new_members == 4


def test_export_csv_and_xlsx(client, session, jamt, clock):
    cid = jamt["campaign"].id
    f.target(session, jamt["campaign"], jamt["ost"], "conversations", 500)
    _log(
        session,
        f.user(session, Role.volunteer, jamt["frosön"]),
        jamt["districts"][0],
        "2026-04-01",
        7,
    )
    response = client.get(f"/campaigns/{cid}/export", params={"level": "kommun"})
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:6] == ["enhetstyp", "enhet_id", "enhet", "mått", "utfall", "mål"]
    ost_conv = next(r for r in rows if r[2] == "Östersund" and r[3] == "conversations")
    assert ost_conv[4:6] == ["7", "500"]
    xlsx = client.get(f"/campaigns/{cid}/export", params={"level": "forening", "format": "xlsx"})
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    names = {row[2] for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert names == {"S-föreningen Frösön", "S-föreningen Brunflo", "S-föreningen Järpen"}
    assert client.get(f"/campaigns/{cid}/export", params={"level": "land"}).status_code == 422


def test_an_export_of_many_units_passes_them_as_a_select(client, session, jamt, monkeypatch):
    """Above a number of units the export names them by the SELECT that finds them instead
    of binding every id: the same rows either way."""
    from api.progress import service

    cid = jamt["campaign"].id
    volunteer = f.user(session, Role.volunteer, jamt["frosön"])
    for i, d in enumerate(jamt["districts"][:3]):
        _log(session, volunteer, d, "2026-04-01", i + 1)
    by_values = client.get(f"/campaigns/{cid}/export", params={"level": "district"}).text
    monkeypatch.setattr(service, "_IDS_AS_VALUES", 0)
    by_select = client.get(f"/campaigns/{cid}/export", params={"level": "district"}).text
    assert by_select == by_values and len(by_values.splitlines()) > 4


def test_final_weeks_longer_than_the_campaign_weights_every_day_alike(jamt):
    camp = jamt["campaign"]
    camp.starts_on, camp.ends_on = date(2026, 9, 1), date(2026, 9, 14)
    camp.pace_curve, camp.pace_final_weeks, camp.pace_final_weight = "final_weeks", 6, 2.0
    assert expected_share(camp, date(2026, 9, 1)) == pytest.approx(1 / 14)
    assert expected_share(camp, date(2026, 9, 7)) == pytest.approx(7 / 14)


@pytest.mark.parametrize("windows", [False, True], ids=["snapshots", "windows"])
def test_set_based_progress_equals_the_per_unit_reference_on_the_demo(
    session, windows, monkeypatch
):
    """Every unit of every level of the demo, after simulated weeks with snapshots up to
    three days ago and live logs after: the set-based computation gives what the per-unit
    one it replaced gave (whose statuses knew no "at_risk"), whether it reads the
    snapshots or the nightly job's precomputed windows."""
    from api.auth.scope import Scope
    from api.demo import load_demo, simulate_logging
    from api.org import tree
    from api.progress import service
    from api.progress.service import progress_of_units, unit_progress
    from api.progress.windows import save_windows
    from api.settings import get_settings
    from tests.progress_reference import reference_unit_progress

    load_demo(session=session, districts_path=get_settings().demo_districts_path)
    campaign = session.exec(select(Campaign)).one()
    today = date.today()
    simulate_logging(session=session, weeks=4, until=today)
    rebuild_days(session, None)
    covered = today - timedelta(days=3)
    session.add(JobRun(job="nightly", for_day=covered, holder="test", status="succeeded"))
    session.flush()
    read_snapshots = []
    if windows:
        assert save_windows(session=session, today=today) > 0
        full = service._figures_select.__wrapped__
        monkeypatch.setattr(
            service,
            "_figures_select",
            lambda kind, ids: read_snapshots.append(kind) or full(kind, ids),
        )
    compared = 0
    for lv in tree.LEVELS:
        ids = list(session.exec(select(lv.model.id)))
        many = progress_of_units(
            session=session, campaign=campaign, kind=lv.kind, ids=ids, today=today, covered=covered
        )
        assert set(many) == set(ids)
        for unit_id in ids:
            old = reference_unit_progress(
                session=session,
                campaign=campaign,
                unit_kind=lv.kind,
                unit_id=unit_id,
                today=today,
                covered=covered,
            )
            new = many[unit_id].model_dump()
            for m in new["metrics"]:
                if m["status"] == "at_risk":
                    m["status"] = "on_track"
            assert new == old.model_dump() | {"daily": []}, (lv.kind, unit_id)
            compared += 1
        one = unit_progress(
            session=session,
            scope=Scope.operator(session),
            campaign_id=campaign.id,
            unit_kind=lv.kind,
            unit_id=ids[0],
            today=today,
        )
        reference = reference_unit_progress(
            session=session,
            campaign=campaign,
            unit_kind=lv.kind,
            unit_id=ids[0],
            today=today,
            covered=covered,
        )
        assert one.daily == reference.daily
    turfs = len(session.exec(select(Turf)).all())  # the demo's cut turfs, walked or not
    assert turfs > 0
    assert compared == 1 + 8 + len(session.exec(select(Forening)).all()) + 83 + turfs
    if windows:  # kommuner and föreningar came from their windows alone
        assert UnitKind.kommun not in read_snapshots
        assert UnitKind.forening not in read_snapshots
        assert UnitKind.district in read_snapshots


def test_exports_never_carry_a_live_formula(client, session, jamt):
    cid = jamt["campaign"].id
    hostile = ['=HYPERLINK("http://evil.invalid","klicka")', "+1+1", "-2+3", "@SUM(A1)", "\tx"]
    for name in [*hostile, "Bell\x07 and escape\x1b"]:
        f.forening(session, jamt["ost"], name)
    f.target(session, jamt["campaign"], jamt["ost"], "conversations", 500)
    params = {"level": "forening"}
    rows = list(csv.reader(io.StringIO(client.get(f"/campaigns/{cid}/export", params=params).text)))
    names = {r[2] for r in rows[1:]}
    assert {"'" + n for n in hostile} <= names
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows for cell in r)
    xlsx = client.get(f"/campaigns/{cid}/export", params=params | {"format": "xlsx"})
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    cells = [c for row in sheet.iter_rows() for c in row]
    assert not [c.value for c in cells if c.data_type == "f"]
    assert {"'" + n for n in hostile} <= {c.value for c in cells if c.column == 3}
    # XML cannot carry every control character: those are replaced, not a 500.
    assert "Bell\ufffd and escape\ufffd" in {c.value for c in cells if c.column == 3}
    # Numbers stay numbers: the förening's id and its target.
    assert all(isinstance(row[1], int) for row in sheet.iter_rows(min_row=2, values_only=True))


def _active(session, jamt, kind, unit_id, today, covered):
    from api.progress.service import progress_of_units

    found = progress_of_units(
        session=session,
        campaign=jamt["campaign"],
        kind=kind,
        ids=[unit_id],
        today=today,
        covered=covered,
    )[unit_id]
    metric = next(m for m in found.metrics if m.metric == "active_volunteers")
    return metric.actual, found.active_volunteers_30d


def test_unit_people_follow_each_night_and_withdrawals(session, jamt):
    """unit_people holds each volunteer's last day per kommun and förening; a night's
    incremental build moves it when a later log is withdrawn, and drops a volunteer whose
    every log in the unit is withdrawn."""
    from api.models import UnitPeople
    from api.progress.snapshots import rebuild_changed

    d1, _, d3, _ = jamt["districts"]
    vol_a = f.user(session, Role.volunteer, jamt["frosön"])
    vol_b = f.user(session, Role.volunteer, jamt["brunflo"])
    _log(session, vol_a, d1, "2026-03-10", 2)
    late = _log(session, vol_a, d1, "2026-04-28", 1)
    only = _log(session, vol_b, d3, "2026-04-29", 1)
    _close_night(session, date(2026, 5, 1))

    def people():
        rows = session.exec(select(UnitPeople)).all()
        return {(r.unit_kind, r.unit_id, r.user_id): r.last_day for r in rows}

    ost, frosön, brunflo = jamt["ost"].id, jamt["frosön"].id, jamt["brunflo"].id
    assert people() == {
        ("kommun", ost, vol_a.id): date(2026, 4, 28),
        ("forening", frosön, vol_a.id): date(2026, 4, 28),
        ("kommun", ost, vol_b.id): date(2026, 4, 29),
        ("forening", brunflo, vol_b.id): date(2026, 4, 29),
    }
    assert _active(session, jamt, UnitKind.kommun, ost, date(2026, 5, 2), date(2026, 5, 1)) == (
        2,
        2,
    )
    watermark = datetime.fromisoformat("2026-05-01T23:00:00+00:00")
    for c in late + only:
        c.withdrawn_at = c.changed_at = watermark + timedelta(hours=1)
        session.add(c)
    session.flush()
    rebuild_changed(session, watermark, date(2026, 5, 2))
    assert people() == {
        ("kommun", ost, vol_a.id): date(2026, 3, 10),
        ("forening", frosön, vol_a.id): date(2026, 3, 10),
    }
    # vol_a's last day is now more than 30 days before 2026-05-02: active, not lately.
    assert _active(session, jamt, UnitKind.kommun, ost, date(2026, 5, 2), date(2026, 5, 1)) == (
        1,
        0,
    )


def test_active_people_of_a_day_before_the_snapshots_end(session, jamt):
    """Progress asked for a day before the last snapshot (a campaign that has ended, or a
    look back) counts who worked up to that day, not someone whose only work came after."""
    d1, d2, _, _ = jamt["districts"]
    early = f.user(session, Role.volunteer, jamt["frosön"])
    later = f.user(session, Role.volunteer, jamt["frosön"])
    _log(session, early, d1, "2026-04-01", 1)
    _log(session, early, d2, "2026-05-20", 1)
    _log(session, later, d2, "2026-05-20", 1)
    _close_night(session, date(2026, 5, 21))
    frosön = jamt["frosön"].id
    for kind, unit in ((UnitKind.forening, frosön), (UnitKind.kommun, jamt["ost"].id)):
        assert _active(session, jamt, kind, unit, date(2026, 4, 15), date(2026, 5, 21)) == (1, 1)
        assert _active(session, jamt, kind, unit, date(2026, 5, 22), date(2026, 5, 21)) == (2, 2)
    # a partidistrikt counts its kommuner's people once each
    pd = jamt["pd"].id
    assert _active(
        session, jamt, UnitKind.partidistrikt, pd, date(2026, 5, 22), date(2026, 5, 21)
    ) == (
        2,
        2,
    )


def test_statements_are_planned_for_their_values(database_url, monkeypatch):
    # A prepared progress statement's generic plan ran four times slower than its own.
    if not database_url.startswith("postgresql"):
        pytest.skip("plan caching is PostgreSQL's")
    monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=3000")
    with_options = make_url(database_url).update_query_dict({"options": "-c lock_timeout=5000"})
    # the environment's options, or the URL's own, are kept
    for url, kept in ((database_url, "3s"), (with_options.render_as_string(False), "5s")):
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                plans = conn.exec_driver_sql("SHOW plan_cache_mode").scalar()
                assert plans == "force_custom_plan"
                assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == kept
        finally:
            engine.dispose()


def _progress_dumps(session, campaign, units: dict, today: date, covered: date) -> dict:
    """Each unit's progress as plain data, by kind and id: two ways of computing it compare."""
    from api.progress.service import progress_of_units

    return {
        kind: {
            u: p.model_dump()
            for u, p in progress_of_units(
                session=session,
                campaign=campaign,
                kind=kind,
                ids=ids,
                today=today,
                covered=covered,
            ).items()
        }
        for kind, ids in units.items()
    }


def _snapshot_reads(monkeypatch) -> list:
    """The levels whose figures are read from the snapshots from now on, not from windows."""
    from api.progress import service

    reads: list = []
    full = service._figures_select.__wrapped__
    monkeypatch.setattr(
        service, "_figures_select", lambda kind, ids: reads.append(kind) or full(kind, ids)
    )
    return reads


def test_windows_add_the_live_logs_as_the_snapshots_would(session, jamt, monkeypatch):
    """The nightly job's windows plus the live logs give a kommun's and a förening's
    figures exactly as the snapshots do: people who worked before the campaign, before
    the last 30 days, only today, or both; a withdrawn log; and no window is read for
    another day, or after the snapshots are rebuilt."""
    from api.models import UnitWindow
    from api.progress.snapshots import rebuild_changed
    from api.progress.windows import save_windows

    d1, d2, d3, _ = jamt["districts"]
    before, long_ago, lately, only_today, gone = (
        f.user(session, Role.volunteer, jamt["frosön"]) for _ in range(5)
    )
    _log(session, before, d1, "2026-02-20", 2)  # before the campaign's first day
    _log(session, long_ago, d2, "2026-03-10", 3)  # more than 30 days before today
    _log(session, lately, d3, "2026-04-30", 4)
    # In today's recent days (from 04-20) but not tomorrow's: their windows differ.
    _log(session, lately, d3, "2026-04-20", 6)
    _close_night(session, date(2026, 5, 3))
    today, covered = date(2026, 5, 4), date(2026, 5, 3)
    for who, district in ((before, d1), (long_ago, d2), (lately, d3), (only_today, d1)):
        _log(session, who, district, "2026-05-04", 1, new_member=True)
    for c in _log(session, gone, d2, "2026-05-04", 5):
        c.withdrawn_at = c.received_at
        session.add(c)
    session.flush()
    units = {
        UnitKind.kommun: [jamt["ost"].id, jamt["are"].id],
        UnitKind.forening: [jamt["frosön"].id, jamt["brunflo"].id, jamt["jarpen"].id],
    }

    def progress(day=today):
        return _progress_dumps(session, jamt["campaign"], units, day, covered)

    from_snapshots = progress()
    ost = from_snapshots[UnitKind.kommun][jamt["ost"].id]
    active = next(m for m in ost["metrics"] if m["metric"] == "active_volunteers")
    assert (active["actual"], ost["active_volunteers_30d"]) == (4, 4)
    assert save_windows(session=session, today=today) == 5
    read_snapshots = _snapshot_reads(monkeypatch)
    assert progress() == from_snapshots and read_snapshots == []
    # Tomorrow (a night missed) has no window: the snapshots again, and their answer.
    tomorrow = progress(today + timedelta(days=1))
    assert set(read_snapshots) == {UnitKind.kommun, UnitKind.forening}
    session.exec(UnitWindow.__table__.delete())
    assert tomorrow == progress(today + timedelta(days=1))
    # A förening new since the night has no window: all asked read the snapshots.
    save_windows(session=session, today=today)
    read_snapshots.clear()
    newer = f.forening(session, jamt["are"], "S-föreningen Undersåker")
    units[UnitKind.forening].append(newer.id)
    assert progress()[UnitKind.forening] == {
        **from_snapshots[UnitKind.forening],
        newer.id: progress()[UnitKind.forening][newer.id],
    }
    assert UnitKind.forening in read_snapshots and UnitKind.kommun not in read_snapshots
    # Any rebuild of the snapshots, a whole one or a night's, deletes the windows.
    rebuild_days(session, None)
    assert session.exec(select(UnitWindow)).all() == []
    save_windows(session=session, today=today)
    rebuild_changed(session, datetime.fromisoformat("2026-05-03T23:00:00+00:00"), covered)
    assert session.exec(select(UnitWindow)).all() == []


def test_windows_after_two_live_days_count_the_earlier_one_in_the_rate(session, jamt, monkeypatch):
    """With the last night two days back, yesterday's logs are live and in the
    projection's rate, today's are not: the windows answer as the snapshots do."""
    from api.progress.windows import save_windows

    d1, d2, *_ = jamt["districts"]
    who, other = (f.user(session, Role.volunteer, jamt["frosön"]) for _ in range(2))
    _log(session, who, d1, "2026-04-28", 2)
    _close_night(session, date(2026, 5, 2))
    _log(session, who, d1, "2026-05-03", 7, new_member=True)
    _log(session, other, d2, "2026-05-04", 3)
    today, covered = date(2026, 5, 4), date(2026, 5, 2)
    units = {UnitKind.kommun: [jamt["ost"].id], UnitKind.forening: [jamt["frosön"].id]}

    def progress():
        return _progress_dumps(session, jamt["campaign"], units, today, covered)

    from_snapshots = progress()
    assert save_windows(session=session, today=today) == 5
    read_snapshots = _snapshot_reads(monkeypatch)
    assert progress() == from_snapshots and read_snapshots == []  # from the windows
    frosön = from_snapshots[UnitKind.forening][jamt["frosön"].id]
    projected = {m["metric"]: m["projected"] for m in frosön["metrics"]}
    # 2 + 7 logs in the 14 days' rate, and today's 3 on top: 12 + 9/14 a day to election day
    days_left = (jamt["campaign"].ends_on - today).days
    assert projected["doors"] == pytest.approx(12 + 9 / 14 * days_left)


def test_no_windows_when_a_snapshot_day_lies_ahead(session, jamt):
    from api.progress.windows import save_windows

    who = f.user(session, Role.volunteer, jamt["frosön"])
    _log(session, who, jamt["districts"][0], "2026-05-09", 1)  # dated after the window
    _close_night(session, date(2026, 5, 3))
    assert save_windows(session=session, today=date(2026, 5, 4)) == 0
