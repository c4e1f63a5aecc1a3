"""Members: the register import, new-member follow-ups, claims and cool-downs, call lists,
courses, scope (leads and callers), the audit log, GDPR export and erasure, retention."""

import re
import threading
from contextlib import contextmanager, nullcontext
from datetime import date, datetime

import pytest
from sqlalchemy import func, text
from sqlmodel import Session, select
from typer.testing import CliRunner

from api.auth.scope import Scope
from api.cli import app as cli_app
from api.db import make_engine
from api.members import followup, privacy
from api.members.models import (
    CallList,
    CourseOffer,
    Member,
    MemberAttempt,
    MemberAudit,
    MemberTask,
    TaskKind,
)
from api.migrate import upgrade
from api.models import Role
from api.testing import throwaway_database
from tests import factories as f

HEADER = "member_number,name,phone,email,forening,joined_on,status\n"


@pytest.fixture
def org(session, admin):
    k = f.kommun(session, "2380", "Östersund", f.partidistrikt(session))
    k2 = f.kommun(session, "2309", "Krokom", f.partidistrikt(session))
    fo = f.forening(session, k, "S-föreningen Frösön")
    fo2 = f.forening(session, k, "S-föreningen Brunflo")
    fo3 = f.forening(session, k2, "S-föreningen Föllinge")
    camp = f.campaign(session, f.partidistrikt(session))
    return type("Org", (), {"k": k, "k2": k2, "f": fo, "f2": fo2, "f3": fo3, "camp": camp})


def _upload(client, body: str, **params):
    return client.post(
        "/members/import", params=params, files={"file": ("m.csv", body.encode(), "text/csv")}
    )


def _audits(session, action=None) -> list[MemberAudit]:
    q = select(MemberAudit)
    if action:
        q = q.where(MemberAudit.action == action)
    return list(session.exec(q.order_by(MemberAudit.id)))


def _as(client, session, who, clock):
    client.headers.update(f.auth_headers(session, who, clock.now))
    return client


# -- import ---------------------------------------------------------------------------------


def test_import_creates_updates_and_is_idempotent(client, session, org):
    volunteer = f.user(session, Role.volunteer, org.f)
    body = HEADER + (
        f"1001,Anna Andersson,070-1111111,{volunteer.email.upper()},{org.f.id},2026-04-28,active\n"
        f"1002,Bo Berg,,,S-föreningen Brunflo,2025-01-10,active\n"
        f"1003,Cecilia Ceder,,,{org.f.id},2026-03-01,left\n"
    )
    first = _upload(client, body, kommun="2380")
    assert first.status_code == 200, first.text
    assert first.json() | {} == {
        "dry_run": False,
        "rows": 3,
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "left": 1,
        "new_members": 1,
        "linked_volunteers": 1,
        "erased": 0,
        "erased_lines": [],
        "missing_from_file": 0,
        "missing_member_ids": [],
    }
    anna = session.exec(select(Member).where(Member.member_number == "1001")).one()
    assert anna.user_id == volunteer.id
    task = f.followup_of(session, anna)
    assert task.due_on == date(2026, 5, 5)  # joined 28 April + 7 days
    offer = session.exec(select(CourseOffer).where(CourseOffer.member_id == anna.id)).one()
    assert offer.due_on == date(2026, 7, 27)  # + 90 days
    again = _upload(client, body, kommun="2380")
    assert again.json()["unchanged"] == 3 and again.json()["created"] == 0
    changed = body.replace("Bo Berg,,", "Bo Berg,070-2222222,").replace(
        "2025-01-10,active", "2025-01-10,left"
    )
    third = _upload(client, changed, kommun="2380").json()
    assert (third["updated"], third["unchanged"], third["left"]) == (1, 2, 1)
    assert session.exec(select(func.count()).select_from(MemberTask)).one() == 1


def test_an_account_made_after_the_import_is_linked_by_the_next(client, session, org):
    body = HEADER + f"1101,Dag Dahl,,dag.dahl@example.org,{org.f.id},2026-04-28,active\n"
    assert _upload(client, body, kommun="2380").json()["linked_volunteers"] == 0
    volunteer = f.user(session, Role.volunteer, org.f)
    volunteer.email = "Dag.Dahl@example.org"
    session.flush()
    again = _upload(client, body, kommun="2380").json()
    assert (again["updated"], again["unchanged"], again["linked_volunteers"]) == (1, 0, 1)
    session.expire_all()
    member = session.exec(select(Member).where(Member.member_number == "1101")).one()
    assert member.user_id == volunteer.id
    assert _upload(client, body, kommun="2380").json()["unchanged"] == 1


def test_import_reports_members_missing_from_the_file_and_dry_run_writes_nothing(
    client, session, org
):
    body = HEADER + (
        f"5001,Ada Alm,,,{org.f.id},2026-04-28,active\n"
        f"5002,Bert Björk,,,{org.f2.id},2025-01-10,active\n"
        f"5003,Cia Cyan,,,{org.f.id},2024-01-10,left\n"
    )
    assert _upload(client, body, kommun="2380").json()["created"] == 3
    elsewhere = f.member(session, org.f3, new=False)  # Krokom: another kommun, not in the file
    ids = dict(session.execute(select(Member.member_number, Member.id)).all())
    tasks = session.exec(select(func.count()).select_from(MemberTask)).one()
    newer = HEADER + (
        f"5001,Ada Alm,070-3333333,,{org.f.id},2026-04-28,active\n"
        f"5004,Dan Dal,,,{org.f.id},2026-04-30,active\n"
    )
    dry = _upload(client, newer, kommun="2380", dry_run="true").json()
    assert (dry["dry_run"], dry["created"], dry["updated"], dry["new_members"]) == (
        True,
        1,
        1,
        1,
    )
    assert (dry["missing_from_file"], dry["missing_member_ids"]) == (
        2,
        [ids["5002"], ids["5003"]],
    )
    session.expire_all()
    assert session.exec(select(Member).where(Member.member_number == "5004")).first() is None
    assert session.exec(select(Member).where(Member.id == ids["5001"])).one().phone is None
    assert session.exec(select(func.count()).select_from(MemberTask)).one() == tasks
    dry_audits = _audits(session, "import_dry_run")
    assert sum(a.count for a in dry_audits) == 2  # one entry per förening, for its leads
    assert all(a.forening_id is not None and a.kommun_id is not None for a in dry_audits)
    real = _upload(client, newer, kommun="2380").json()
    assert real | {"dry_run": True} == dry | {}
    # Reported, never deleted: the register's export may be partial.
    session.expire_all()
    assert {ids["5002"], ids["5003"], elsewhere.id} <= set(session.exec(select(Member.id)))
    assert session.exec(select(func.count()).select_from(MemberTask)).one() == tasks + 1


def test_import_refuses_bad_rows_by_line_and_column_and_writes_nothing(client, session, org):
    body = HEADER + (
        f"2001,Ok Person,,,{org.f.id},2026-04-01,active\n"
        f"2002,,,,{org.f.id},2026-04-01,active\n"
        f"2003,Dag Datum,,,{org.f.id},01/04/2026,active\n"
        f"2001,Dubbel,,,{org.f.id},2026-04-01,active\n"
        f"2004,Fel Status,abc,nomail,{org.f.id},2026-04-01,maybe\n"
        f"2005,Ingen Förening,,,Okänd,2026-04-01,active\n"
    )
    r = _upload(client, body, kommun="2380")
    assert r.status_code == 422
    errors = {(e["line"], e["field"]) for e in r.json()["errors"]}
    assert errors == {
        (3, "name"),
        (4, "joined_on"),
        (5, "member_number"),
        (6, "phone"),
        (6, "email"),
        (6, "status"),
        (7, "forening"),
    }
    assert "Dubbel" not in r.text and "Fel Status" not in r.text  # no values echoed
    assert session.exec(select(func.count()).select_from(Member)).one() == 0
    missing = _upload(client, "number,name\n1,x\n")
    assert missing.status_code == 422 and "member_number" in missing.json()["detail"]
    renamed = _upload(
        client,
        "Medlemsnr,Namn,Förening,Inträde,Status\n"
        "3001,Eva Ek,S-föreningen Frösön,2026-04-02,Active\n",
        member_number_column="Medlemsnr",
        name_column="Namn",
        forening_column="Förening",
        joined_column="Inträde",
        status_column="Status",
        kommun="2380",
    )
    assert renamed.status_code == 200, renamed.text


def test_import_upload_limit_and_other_units(client, anon_client, session, org, settings):
    settings.import_max_upload_mb = 1
    big = HEADER + "x" * (2 * 2**20)
    assert _upload(client, big).status_code == 413
    other = f.kommun(session, "0180", "Stockholm", f.partidistrikt(session, "01", "Stockholm"))
    far = f.forening(session, other, "S-föreningen Söder")
    r = _upload(client, HEADER + f"9,Far Away,,,{far.id},2026-04-01,active\n")
    assert r.status_code == 403


def test_cli_import_members(cli_session, org, tmp_path):
    path = tmp_path / "register.csv"
    path.write_text(HEADER + f"4001,Fia Fors,,,{org.f.id},2026-04-30,active\n")
    result = CliRunner().invoke(cli_app, ["import-members", str(path)])
    assert result.exit_code == 0, result.output
    assert "1 created" in result.output and "1 new members" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + f"4002,,,,{org.f.id},2026-04-30,active\n")
    result = CliRunner().invoke(cli_app, ["import-members", str(bad)])
    assert result.exit_code == 1 and "line': 2" in result.output


# -- follow-ups, claims, cool-downs -----------------------------------------------------


def test_followups_claims_outcomes_and_cooldown(client, session, org, clock, settings):
    m = f.member(session, org.f, "2026-04-30")
    late = f.member(session, org.f, "2026-04-20")
    a = f.user(session, Role.volunteer, org.f)
    b = f.user(session, Role.volunteer, org.f)
    lead = f.user(session, Role.forening_lead, org.f)
    for caller in (a, b):
        followup.assign_caller(
            session=session,
            scope=Scope(session=session, user=lead),
            user_id=caller.id,
            forening_id=org.f.id,
            call_list_id=None,
        )
    ha, hb = f.auth_headers(session, a, clock.now), f.auth_headers(session, b, clock.now)
    listed = client.get("/members/followups", headers=ha).json()
    assert [t["member_id"] for t in listed["items"]] == [late.id, m.id]
    assert [t["overdue"] for t in listed["items"]] == [True, False]  # due 27 April, 7 May
    assert listed["items"][0]["member_name"] == late.name
    task = f.followup_of(session, m)
    assert client.post(f"/member-tasks/{task.id}/claim", headers=ha).status_code == 200
    taken = client.post(f"/member-tasks/{task.id}/claim", headers=hb)
    assert taken.status_code == 409 and "another caller" in taken.json()["detail"]
    assert (
        client.post(
            f"/member-tasks/{task.id}/outcome", headers=hb, json={"outcome": "reached"}
        ).status_code
        == 409
    )
    r = client.post(f"/member-tasks/{task.id}/outcome", headers=ha, json={"outcome": "no_answer"})
    assert r.status_code == 200 and r.json()["next_attempt_at"].startswith("2026-05-04T14:00")
    clock.advance(hours=3, minutes=59)
    cooling = client.post(f"/member-tasks/{task.id}/claim", headers=hb)
    assert cooling.status_code == 409 and "cooling down" in cooling.json()["detail"]
    clock.advance(minutes=1)
    assert client.post(f"/member-tasks/{task.id}/claim", headers=hb).status_code == 200
    clock.advance(minutes=settings.members_claim_minutes)  # b's claim expires unused
    assert client.post(f"/member-tasks/{task.id}/claim", headers=ha).status_code == 200
    done = client.post(f"/member-tasks/{task.id}/outcome", headers=ha, json={"outcome": "reached"})
    assert done.json()["closed"] and done.json()["contacted_on"] == "2026-05-04"
    assert client.post(f"/member-tasks/{task.id}/claim", headers=hb).status_code == 409
    attempts = session.exec(select(MemberAttempt).where(MemberAttempt.task_id == task.id)).all()
    assert [x.outcome for x in attempts] == ["no_answer", "reached"]


@contextmanager
def _race_engine(database_url: str, tmp_path):
    """An engine on a migrated database of its own (the backend of ``database_url``), for
    races between committed transactions rather than savepoints."""
    if database_url.startswith("sqlite"):
        fresh = nullcontext(f"sqlite:///{tmp_path / 'claims.sqlite3'}")
    else:
        fresh = throwaway_database()
    with fresh as url:
        upgrade(url)
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


def _race(engine, settings, claims: list[tuple[int, int]]) -> dict[int, str]:
    """Each (user id, task id) claimed in a thread of its own, all released at once by a
    barrier; each thread commits its own transaction. Returns "won" or "409" per user."""
    barrier = threading.Barrier(len(claims))
    results: dict[int, str] = {}

    def claim(user_id: int, task_id: int) -> None:
        from api.errors import Conflict
        from api.models import User, utcnow

        with Session(engine) as s:
            user = s.get(User, user_id)
            scope = Scope(session=s, user=user)
            s.commit()  # SQLite: no transaction (and write lock) held at the barrier
            barrier.wait()
            try:
                followup.claim_task(
                    session=s,
                    scope=scope,
                    task_id=task_id,
                    now=utcnow(),
                    settings=settings,
                    route="test",
                )
                s.commit()
                results[user_id] = "won"
            except Conflict:
                s.rollback()
                results[user_id] = "409"

    threads = [threading.Thread(target=claim, args=c) for c in claims]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _assign(s, lead, caller, forening, call_list_id=None) -> None:
    followup.assign_caller(
        session=s,
        scope=Scope(session=s, user=lead),
        user_id=caller.id,
        forening_id=forening.id,
        call_list_id=call_list_id,
    )


def test_two_callers_claiming_one_member_at_once_one_wins(database_url, tmp_path, settings):
    """Committed transactions on a database of its own: a real race, not a savepoint."""
    with _race_engine(database_url, tmp_path) as engine:
        with Session(engine) as s:
            k = f.kommun(s, "2380", "Östersund", f.partidistrikt(s))
            fo = f.forening(s, k)
            m = f.member(s, fo)
            callers = [f.user(s, Role.volunteer, fo) for _ in range(2)]
            lead = f.user(s, Role.forening_lead, fo)
            for c in callers:
                _assign(s, lead, c, fo)
            task_id = f.followup_of(s, m).id
            ids = [c.id for c in callers]
            s.commit()
        results = _race(engine, settings, [(i, task_id) for i in ids])
        assert sorted(results.values()) == ["409", "won"]
        with Session(engine) as s:
            winner = next(i for i, r in results.items() if r == "won")
            assert s.get(MemberTask, task_id).claimed_by_user_id == winner


def test_two_callers_on_two_tasks_of_one_member_at_once_one_wins(database_url, tmp_path, settings):
    """One member with a follow-up and a call-list entry; the follow-up's caller and the
    list's caller claim at the same moment, each their own task: exactly one gets the
    member. Several members in turn, so that a lucky interleaving cannot pass alone."""
    with _race_engine(database_url, tmp_path) as engine:
        with Session(engine) as s:
            k = f.kommun(s, "2380", "Östersund", f.partidistrikt(s))
            fo = f.forening(s, k)
            members = [f.member(s, fo) for _ in range(5)]
            welcomer, lister = (f.user(s, Role.volunteer, fo) for _ in range(2))
            lead = f.user(s, Role.forening_lead, fo)
            cl = CallList(
                name="Ring alla", kommun_id=k.id, forening_id=fo.id, ends_on=date(2026, 9, 13)
            )
            s.add(cl)
            s.flush()
            _assign(s, lead, welcomer, fo)
            _assign(s, lead, lister, fo, cl.id)
            pairs = []
            for m in members:
                entry = MemberTask(
                    kind=TaskKind.call,
                    call_list_id=cl.id,
                    member_id=m.id,
                    forening_id=fo.id,
                    kommun_id=k.id,
                    assigned_user_id=lister.id,
                )
                s.add(entry)
                s.flush()
                pairs.append((f.followup_of(s, m).id, entry.id))
            ids = (welcomer.id, lister.id)
            s.commit()
        for followup_id, entry_id in pairs:
            results = _race(engine, settings, [(ids[0], followup_id), (ids[1], entry_id)])
            assert sorted(results.values()) == ["409", "won"], results
            with Session(engine) as s:
                holders = [s.get(MemberTask, t).claimed_by_user_id for t in (followup_id, entry_id)]
            # Exactly one of the two tasks is held, by the caller who won.
            winner = next(i for i, r in results.items() if r == "won")
            assert sorted(holders, key=lambda h: h is None) == [winner, None]


def test_a_member_held_on_one_task_cannot_be_claimed_on_another(
    client, session, org, clock, settings
):
    m = f.member(session, org.f)
    cl = client.post("/call-lists", json={"name": "Ring", "forening_id": org.f.id}).json()
    entry = session.exec(select(MemberTask).where(MemberTask.call_list_id == cl["id"])).one()
    welcomer, lister = (f.user(session, Role.volunteer, org.f) for _ in range(2))
    lead = f.user(session, Role.forening_lead, org.f)
    _assign(session, lead, welcomer, org.f)
    _assign(session, lead, lister, org.f, cl["id"])
    hw, hl = (f.auth_headers(session, u, clock.now) for u in (welcomer, lister))
    task = f.followup_of(session, m)
    assert client.post(f"/member-tasks/{task.id}/claim", headers=hw).status_code == 200
    taken = client.post(f"/member-tasks/{entry.id}/claim", headers=hl)
    assert taken.status_code == 409
    # Nothing about who holds it or on which task: only that the member is taken, and until.
    assert re.fullmatch(
        rf"task {entry.id}: another caller is working with this member until "
        r"2026-05-04T10:30:00\+00:00",
        taken.json()["detail"],
    ), taken.json()["detail"]
    # The holder may work both of the member's tasks.
    _assign(session, lead, welcomer, org.f, cl["id"])
    assert client.post(f"/member-tasks/{entry.id}/claim", headers=hw).status_code == 200
    # Once the holder logs an outcome and lets go, the other caller gets the member.
    for t in (task.id, entry.id):
        client.post(f"/member-tasks/{t}/outcome", headers=hw, json={"outcome": "no_answer"})
    clock.advance(hours=settings.members_cooldown_hours)
    assert client.post(f"/member-tasks/{entry.id}/claim", headers=hl).status_code == 200
    # A claim that expired unused no longer blocks.
    clock.advance(minutes=settings.members_claim_minutes)
    assert client.post(f"/member-tasks/{task.id}/claim", headers=hw).status_code == 200


# -- progress ------------------------------------------------------------------------------


def test_contacted_within_7_days_and_course_shares_per_unit(client, session, org, clock):
    on_time = f.member(session, org.f, "2026-04-01")
    late_m = f.member(session, org.f, "2026-04-01")
    never = f.member(session, org.f2, "2026-04-10")
    f.member(session, org.f2, "2026-05-01")  # not due until 8 May, not contacted yet
    f.member(session, org.f3, "2025-12-01")  # before the campaign year
    f.followup_of(session, on_time).contacted_on = date(2026, 4, 8)  # on the due day
    f.followup_of(session, late_m).contacted_on = date(2026, 4, 9)
    session.flush()
    course = client.post(
        "/courses",
        json={
            "name": "Grundkurs steg 1",
            "starts_on": "2026-04-25",
            "place": "Folkets hus",
            "kommun_id": org.k.id,
        },
    )
    assert course.status_code == 201
    cid = course.json()["id"]
    assert client.post(f"/courses/{cid}/attendance", json={"member_ids": [on_time.id]}).json() == {
        "attended": 1
    }
    clock.advance(days=100)  # every offer is due now: 1 offered of 4
    r = client.get(f"/campaigns/{org.camp.id}/members-progress/kommun/2380").json()
    u = r["unit"]
    assert (u["new_members"], u["due"], u["contacted_7d"], u["contacted_late"]) == (4, 4, 1, 1)
    assert u["new_members_contacted_7d"] == 0.25 and u["contacted_target"] == 1.0
    assert (u["offered_3m"], u["attended"], u["new_members_attended_course"]) == (1, 1, 0.25)
    assert (u["course_due"], u["new_members_offered_course_3m"]) == (4, 0.25)
    assert u["attended_target"] == 0.25
    by_name = {c["unit_name"]: c for c in r["children"]}
    assert by_name["S-föreningen Frösön"]["new_members_contacted_7d"] == 0.5
    assert by_name["S-föreningen Brunflo"]["new_members_contacted_7d"] == 0.0
    pd = client.get(
        f"/campaigns/{org.camp.id}/members-progress/partidistrikt/{org.camp.partidistrikt_id}"
    )
    assert pd.json()["unit"]["contacted_7d"] == 1
    assert [c["unit_name"] for c in pd.json()["children"]] == ["Krokom", "Östersund"]
    csv = client.get(f"/campaigns/{org.camp.id}/members-export").text
    assert "S-föreningen Frösön" in csv and never.name not in csv


def test_only_the_basic_course_counts_as_the_basic_course(client, session, org, clock):
    a, b = f.member(session, org.f, "2026-04-01"), f.member(session, org.f, "2026-04-01")
    ids = {}
    for kind, day in (("valarbetarkurs", "2026-04-10"), ("grundkurs_1", "2026-04-20")):
        r = client.post(
            "/courses",
            json={
                "kind": kind,
                "name": kind,
                "starts_on": day,
                "place": "Folkets hus",
                "kommun_id": org.k.id,
            },
        )
        ids[kind] = r.json()["id"]
    for member in (a, b):
        client.post(
            f"/courses/{ids['valarbetarkurs']}/attendance", json={"member_ids": [member.id]}
        )
    url = f"/campaigns/{org.camp.id}/members-progress/forening/{org.f.id}"
    u = client.get(url).json()["unit"]
    assert (u["offered_3m"], u["attended"], u["new_members_attended_course"]) == (0, 0, 0.0)
    client.post(f"/courses/{ids['grundkurs_1']}/attendance", json={"member_ids": [a.id]})
    u = client.get(url).json()["unit"]
    assert (u["offered_3m"], u["attended"], u["new_members_attended_course"]) == (1, 1, 0.5)
    # Each occasion is kept for the member all the same.
    export = client.get(f"/members/{a.id}/export").json()
    assert sorted(c["course_id"] for c in export["courses"]) == sorted(ids.values())
    assert export["course_offer"]["course_id"] == ids["grundkurs_1"]


def test_share_targets_are_campaign_targets_with_the_plans_defaults(client, session, org):
    url = f"/campaigns/{org.camp.id}/members-progress/kommun/2380"
    u = client.get(url).json()
    assert (u["unit"]["contacted_target"], u["unit"]["attended_target"]) == (1.0, 0.25)
    for unit_kind, unit_id, metric, value in (
        ("partidistrikt", org.camp.partidistrikt_id, "new_members_contacted_7d", 90),
        ("forening", org.f.id, "new_members_contacted_7d", 80),
        ("kommun", org.k.id, "new_members_attended_course", 30),
    ):
        r = client.put(
            f"/campaigns/{org.camp.id}/targets",
            json={"unit_kind": unit_kind, "unit_id": unit_id, "metric": metric, "value": value},
        )
        assert r.status_code == 200, r.text
    r = client.get(url).json()
    assert (r["unit"]["contacted_target"], r["unit"]["attended_target"]) == (0.9, 0.3)
    by_name = {c["unit_name"]: c for c in r["children"]}
    frosön, brunflo = by_name["S-föreningen Frösön"], by_name["S-föreningen Brunflo"]
    assert (frosön["contacted_target"], frosön["attended_target"]) == (0.8, 0.3)
    assert (brunflo["contacted_target"], brunflo["attended_target"]) == (0.9, 0.3)
    krokom = client.get(f"/campaigns/{org.camp.id}/members-progress/kommun/2309").json()
    assert (krokom["unit"]["contacted_target"], krokom["unit"]["attended_target"]) == (0.9, 0.25)
    csv = client.get(f"/campaigns/{org.camp.id}/members-export").text.splitlines()
    assert csv[0].endswith(
        "mål_kontaktade,erbjudna_kurs_3m,andel_erbjudna_kurs_3m,deltagit_kurs,andel_deltagit,mål_deltagit"
    )
    assert any(",0.9," in line and line.endswith(",0.3") for line in csv[1:])
    from api.campaigns.schemas import PERCENT_METRICS
    from api.members.progress import DEFAULT_TARGETS

    assert set(DEFAULT_TARGETS) == PERCENT_METRICS
    # A percentage is at most 100, and never split among children.
    too_much = client.put(
        f"/campaigns/{org.camp.id}/targets",
        json={
            "unit_kind": "kommun",
            "unit_id": org.k.id,
            "metric": "new_members_contacted_7d",
            "value": 101,
        },
    )
    assert too_much.status_code == 422 and "value" in too_much.text
    split = client.post(
        f"/campaigns/{org.camp.id}/apportion",
        json={"unit_kind": "kommun", "unit_id": org.k.id, "metric": "new_members_attended_course"},
    )
    assert split.status_code == 422 and "metric" in split.text


def test_due_count_excludes_members_whose_week_is_not_over(client, session, org):
    f.member(session, org.f, "2026-05-01")  # due 8 May; today is 4 May
    u = client.get(f"/campaigns/{org.camp.id}/members-progress/forening/{org.f.id}").json()["unit"]
    assert (u["new_members"], u["due"], u["new_members_contacted_7d"]) == (1, 0, None)


# -- call lists ------------------------------------------------------------------------------


def test_call_list_split_among_callers_with_do_not_call(client, session, org, clock):
    members = [f.member(session, org.f, "2020-01-01", new=False) for _ in range(5)]
    members[0].do_not_call = True
    f.member(session, org.f, "2020-01-01", new=False, status="left")
    session.flush()
    a, b = f.user(session, Role.volunteer, org.f), f.user(session, Role.volunteer, org.f)
    r = client.post(
        "/call-lists",
        json={
            "name": "Ring alla medlemmar",
            "forening_id": org.f.id,
            "caller_ids": [a.id, b.id],
            "cooldown_hours": 2,
        },
    )
    assert r.status_code == 201, r.text
    p = r.json()
    assert (p["total"], p["do_not_call"], p["open"]) == (5, 1, 4)
    assert sorted(p["by_caller"].values()) == [2, 3]
    ha = f.auth_headers(session, a, clock.now)
    mine = client.get(f"/call-lists/{p['id']}/entries", headers=ha).json()["items"]
    assert mine and members[0].id not in [t["member_id"] for t in mine]  # skipped: closed
    assert all(t["assigned_user_id"] == a.id for t in mine)
    theirs = session.exec(
        select(MemberTask).where(
            MemberTask.call_list_id == p["id"], MemberTask.assigned_user_id == b.id
        )
    ).first()
    assert client.post(f"/member-tasks/{theirs.id}/claim", headers=ha).status_code == 404
    t = mine[0]["id"]
    assert client.post(f"/member-tasks/{t}/claim", headers=ha).status_code == 200
    client.post(f"/member-tasks/{t}/outcome", headers=ha, json={"outcome": "no_answer"})
    progress = client.get(f"/call-lists/{p['id']}").json()
    assert progress["waiting"] == 1 and progress["by_outcome"] == {"no_answer": 1}
    clock.advance(hours=2)
    assert client.post(f"/member-tasks/{t}/claim", headers=ha).status_code == 200
    # Flagged do-not-call later: the open entry is skipped.
    client.patch(f"/members/{members[1].id}", json={"do_not_call": True})
    assert client.get(f"/call-lists/{p['id']}").json()["do_not_call"] == 2


def test_a_member_on_a_running_list_is_not_put_on_another(client, session, org, clock):
    here = [f.member(session, org.f, "2020-01-01", new=False) for _ in range(2)]
    there = f.member(session, org.f2, "2020-01-01", new=False)
    first = client.post("/call-lists", json={"name": "Frösön", "forening_id": org.f.id})
    assert first.status_code == 201 and first.json()["open"] == 2
    whole = client.post("/call-lists", json={"name": "Östersund", "kommun_id": org.k.id}).json()
    assert (whole["total"], whole["open"], whole["on_other_list"]) == (3, 1, 2)
    open_entries = session.exec(
        select(MemberTask.member_id).where(
            MemberTask.call_list_id == whole["id"], MemberTask.closed_at.is_(None)
        )
    ).all()
    assert open_entries == [there.id]
    # Once the first list has ended, a new list calls its members again.
    clock.advance(days=91)
    again = client.post("/call-lists", json={"name": "Höst", "forening_id": org.f.id}).json()
    assert (again["open"], again["on_other_list"]) == (len(here), 0)


# -- scope: callers ------------------------------------------------------------------------


def test_callers_see_only_their_tasks_and_never_the_register(client, session, org, clock):
    own = f.member(session, org.f)
    other = f.member(session, org.f2)
    caller = f.user(session, Role.volunteer, org.f)
    plain = f.user(session, Role.volunteer, org.f)
    assert (
        client.post("/callers", json={"user_id": caller.id, "forening_id": org.f.id}).status_code
        == 201
    )
    # Only a volunteer of that förening may be its caller.
    assert (
        client.post("/callers", json={"user_id": caller.id, "forening_id": org.f2.id}).status_code
        == 422
    )
    h = f.auth_headers(session, caller, clock.now)
    items = client.get("/members/followups", headers=h).json()["items"]
    assert [t["member_id"] for t in items] == [own.id]
    assert (
        client.get("/members/followups", headers=f.auth_headers(session, plain, clock.now)).json()[
            "total"
        ]
        == 0
    )
    assert (
        client.post(
            f"/member-tasks/{f.followup_of(session, other).id}/claim", headers=h
        ).status_code
        == 404
    )
    assert client.get("/members", headers=h).status_code == 403
    assert client.get(f"/members/{own.id}", headers=h).status_code == 404
    assert client.get(f"/members/{own.id}/export", headers=h).status_code == 404
    assert client.get("/members/audit", headers=h).status_code == 403
    assignment = client.get("/callers").json()[0]["id"]
    assert client.delete(f"/callers/{assignment}").status_code == 204
    assert client.get("/members/followups", headers=h).json()["total"] == 0


def test_forening_lead_sees_only_own_forening(client, session, org, clock):
    own, other = f.member(session, org.f), f.member(session, org.f2)
    h = f.auth_headers(session, f.user(session, Role.forening_lead, org.f), clock.now)
    assert [m["id"] for m in client.get("/members", headers=h).json()["items"]] == [own.id]
    assert client.get(f"/members/{other.id}", headers=h).status_code == 404
    assert client.post(f"/members/{own.id}/erase", headers=h).status_code == 403


# -- audit ---------------------------------------------------------------------------------


def test_every_read_path_is_audited_without_member_data(client, session, org, clock, admin):
    """Each path, by the person who would use it: its entries name that person and a unit
    of theirs, so that the lead above them finds every one at GET /members/audit."""
    m = f.member(session, org.f, name="Greta Granlund", phone="070-9999999", email="g@example.org")
    f.member(session, org.f)
    flead = f.user(session, Role.forening_lead, org.f)
    empty_lead = f.user(session, Role.forening_lead, org.f2)  # no members in Brunflo
    klead = f.user(session, Role.kommun_lead, org.k)
    caller = f.user(session, Role.volunteer, org.f)
    _assign(session, flead, caller, org.f)
    h = {u.id: f.auth_headers(session, u, clock.now) for u in (flead, empty_lead, klead, caller)}
    r = client.post("/call-lists", json={"name": "Ring", "forening_id": org.f.id})
    course = client.post(
        "/courses",
        json={"name": "Grundkurs", "starts_on": "2026-05-20", "place": "Ö", "kommun_id": org.k.id},
    ).json()
    task = f.followup_of(session, m)
    register = HEADER + f"5001,Ny Person,,,{org.f.id},2026-05-01,active\n"
    # (who, action, request, the lead above who reviews it)
    paths = [
        (flead, "list", lambda: client.get("/members", headers=h[flead.id]), klead),
        (empty_lead, "list", lambda: client.get("/members", headers=h[empty_lead.id]), klead),
        (flead, "read", lambda: client.get(f"/members/{m.id}", headers=h[flead.id]), klead),
        (caller, "list", lambda: client.get("/members/followups", headers=h[caller.id]), flead),
        (
            flead,
            "list",
            lambda: client.get(f"/call-lists/{r.json()['id']}/entries", headers=h[flead.id]),
            klead,
        ),
        (
            flead,
            "export",
            lambda: client.get(f"/members/{m.id}/export", headers=h[flead.id]),
            klead,
        ),
        (
            caller,
            "claim",
            lambda: client.post(f"/member-tasks/{task.id}/claim", headers=h[caller.id]),
            klead,
        ),
        (
            caller,
            "outcome",
            lambda: client.post(
                f"/member-tasks/{task.id}/outcome",
                headers=h[caller.id],
                json={"outcome": "reached"},
            ),
            flead,
        ),
        (
            flead,
            "update",
            lambda: client.patch(
                f"/members/{m.id}", headers=h[flead.id], json={"do_not_call": False}
            ),
            klead,
        ),
        (
            flead,
            "offer",
            lambda: client.post(
                f"/courses/{course['id']}/offers", headers=h[flead.id], json={"member_ids": [m.id]}
            ),
            klead,
        ),
        (
            flead,
            "attended",
            lambda: client.post(
                f"/courses/{course['id']}/attendance",
                headers=h[flead.id],
                json={"member_ids": [m.id]},
            ),
            klead,
        ),
        (
            klead,
            "import",
            lambda: client.post(
                "/members/import",
                headers=h[klead.id],
                files={"file": ("m.csv", register.encode(), "text/csv")},
            ),
            admin,
        ),
    ]
    for who, action, call, above in paths:
        last = max((a.id for a in _audits(session)), default=0)
        response = call()
        assert response.status_code == 200, (action, response.text)
        new = [a for a in _audits(session) if a.id > last]
        # (An export or a change reads the member first, and says so.)
        assert action in {a.action for a in new} <= {action, "read"}, action
        assert {a.user_id for a in new} == {who.id}, action
        assert all(a.forening_id is not None or a.kommun_id is not None for a in new), action
        headers = {} if above is admin else h[above.id]
        review = client.get("/members/audit", headers=headers, params={"limit": 500}).json()
        assert {a.id for a in new} <= {a["id"] for a in review["items"]}, action
        if action == "list" and "items" in response.json():
            # Which members were shown, by id.
            shown = sorted(i.get("member_id", i["id"]) for i in response.json()["items"])
            assert sorted(a.member_id for a in new if a.count) == shown, action
    dump = " ".join(str(a.model_dump()) for a in _audits(session))
    for secret in ("Greta", "Granlund", "9999999", "g@example.org", "Ny Person"):
        assert secret not in dump
    review = client.get("/members/audit", params={"member_id": m.id}).json()
    assert {"list", "read", "export", "claim", "outcome", "offer"} <= {
        a["action"] for a in review["items"]
    }
    # The member's own export names the lists that showed them, too.
    accesses = client.get(f"/members/{m.id}/export").json()["accesses"]
    assert {(a["user_id"], a["action"]) for a in accesses} >= {
        (flead.id, "list"),
        (caller.id, "list"),
    }
    other = f.user(session, Role.forening_lead, org.f3)  # another kommun
    seen = client.get("/members/audit", headers=f.auth_headers(session, other, clock.now)).json()
    assert seen["total"] == 0
    # A förening lead does not see the entries of a sibling förening's lead.
    sibling = client.get("/members/audit", headers=h[flead.id], params={"limit": 500}).json()
    assert empty_lead.id not in {a["user_id"] for a in sibling["items"]}


def test_audit_review_refuses_a_unit_outside_reach(client, session, org, clock):
    flead = f.user(session, Role.forening_lead, org.f)
    h = f.auth_headers(session, flead, clock.now)
    assert (
        client.get("/members/audit", headers=h, params={"forening_id": org.f.id}).status_code == 200
    )
    for params in ({"forening_id": org.f2.id}, {"kommun_id": org.k.id}):
        assert client.get("/members/audit", headers=h, params=params).status_code == 403
        assert client.get("/members", headers=h, params=params).status_code == 403
        assert client.get("/members/followups", headers=h, params=params).status_code == 403


def test_audit_log_is_append_only(session, org):
    session.add(MemberAudit(action="read", member_id=1))
    session.flush()
    with pytest.raises(Exception, match="append-only"), session.begin_nested():
        session.execute(text("UPDATE member_audit SET action = 'x'"))
    with pytest.raises(Exception, match="append-only"), session.begin_nested():
        session.execute(text("DELETE FROM member_audit"))


# -- GDPR: export and erasure ------------------------------------------------------------


def _dump(session: Session) -> str:
    """A full dump of the database as the session sees it, not only SQLModel's tables:
    SQLite's own ``iterdump`` of the whole file; on PostgreSQL every table of every schema
    in the catalog, row by row as text."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        return "\n".join(connection.connection.driver_connection.iterdump())
    tables = connection.execute(
        text(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_catalog.pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        )
    ).scalars()
    return "\n".join(
        row
        for table in list(tables)
        for row in connection.execute(text(f"SELECT t::text FROM {table} t")).scalars()
    )


def test_erasing_a_member_never_reaches_a_leads_account(client, session, org):
    """A member whose email is a lead's (made up, or shared) is erased; the lead's account
    is not: only volunteer accounts of föreningar the eraser leads are pseudonymised."""
    from api.models import User

    lead = f.user(session, Role.forening_lead, org.f)
    lead.email = "ordforande@example.org"
    session.flush()
    _upload(client, HEADER + f"7002,Namn Namnsson,,{lead.email},{org.f.id},2026-04-01,active\n")
    m = session.exec(select(Member).where(Member.member_number == "7002")).one()
    erased = client.post(f"/members/{m.id}/erase")
    assert erased.json() == {"erased": m.id, "volunteer_accounts_erased": 0}
    session.expire_all()
    kept = session.get(User, lead.id)
    assert kept.is_active and kept.email == "ordforande@example.org"


def test_export_and_erasure_leave_no_trace_and_every_total(client, session, org, clock):
    from api.models import DeviceToken, User

    name, phone, email = "Hjalmar Hemlig", "070-5551234", "hjalmar.hemlig@example.org"
    # The same person's volunteer account, linked by the import as by email.
    volunteer = f.user(session, Role.volunteer, org.f)
    volunteer.display_name, volunteer.email, volunteer.phone = name, email.upper(), phone
    session.flush()
    f.auth_headers(session, volunteer, clock.now)
    session.execute(
        text("UPDATE device_token SET name = 'Hjalmars telefon' WHERE user_id = :u"),
        {"u": volunteer.id},
    )
    number = "7001"
    imported = _upload(
        client,
        HEADER + f"{number},{name},{phone},{email},{org.f.id},2026-04-01,active\n",
        kommun="2380",
    ).json()
    assert imported["linked_volunteers"] == 1
    m = session.exec(select(Member).where(Member.member_number == number)).one()
    assert m.user_id == volunteer.id
    f.member(session, org.f, "2026-04-01")
    cl = client.post("/call-lists", json={"name": "Ring", "forening_id": org.f.id}).json()
    task = f.followup_of(session, m)
    client.post(f"/member-tasks/{task.id}/claim")
    client.post(f"/member-tasks/{task.id}/outcome", json={"outcome": "reached"})
    course = client.post(
        "/courses",
        json={
            "name": "Grundkurs",
            "starts_on": "2026-04-20",
            "place": "Folkets hus",
            "kommun_id": org.k.id,
        },
    ).json()
    client.post(f"/courses/{course['id']}/attendance", json={"member_ids": [m.id]})
    exported = client.get(f"/members/{m.id}/export").json()
    assert exported["member"]["name"] == name and exported["tasks"] and exported["course_offer"]
    assert exported["courses"][0]["attended_on"] == "2026-04-20"
    progress_url = f"/campaigns/{org.camp.id}/members-progress/kommun/2380"
    before = (client.get(progress_url).json(), client.get(f"/call-lists/{cl['id']}").json())
    assert before[0]["unit"]["new_members"] == 2
    assert name in _dump(session) and email.upper() in _dump(session)
    erased = client.post(f"/members/{m.id}/erase")
    assert erased.json() == {"erased": m.id, "volunteer_accounts_erased": 1}
    session.expire_all()
    dump = _dump(session)
    for trace in (name, "Hjalmar", "Hemlig", phone, "5551234", "hjalmar.hemlig", f"'{number}'"):
        assert trace.casefold() not in dump.casefold(), trace
    account = session.get(User, volunteer.id)
    assert not account.is_active and account.email.endswith("@raderad.invalid")
    assert all(
        t.revoked_at is not None
        for t in session.exec(select(DeviceToken).where(DeviceToken.user_id == volunteer.id))
    )
    assert (client.get(progress_url).json(), client.get(f"/call-lists/{cl['id']}").json()) == before
    assert client.get(f"/members/{m.id}").status_code == 404
    assert any(a.action == "erase" and a.member_id == m.id for a in _audits(session))
    # The register still lists them: the import neither brings them back nor counts them
    # as a new member a second time, and says so.
    again = _upload(
        client,
        HEADER + f"{number},{name},{phone},{email},{org.f.id},2026-04-01,active\n",
        kommun="2380",
    ).json()
    assert (again["created"], again["erased"], again["erased_lines"]) == (0, 1, [2])
    assert again["new_members"] == 0
    assert client.get(progress_url).json() == before[0]
    assert name not in _dump(session)
    # A membership begun after the erasure is a new one.
    clock.advance(days=2)
    rejoined = _upload(
        client,
        HEADER + f"{number},{name},{phone},,{org.f.id},2026-05-05,active\n",
        kommun="2380",
    ).json()
    assert (rejoined["created"], rejoined["erased"], rejoined["new_members"]) == (1, 0, 1)


def test_sqlite_overwrites_what_is_deleted(database_url, tmp_path, settings):
    """secure_delete: an erased member's name is not left in the file's free pages."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's file format")
    path = tmp_path / "erase.sqlite3"
    upgrade(f"sqlite:///{path}")
    engine = make_engine(f"sqlite:///{path}")
    try:
        with Session(engine) as s:
            assert s.execute(text("PRAGMA secure_delete")).scalar() == 1
            k = f.kommun(s, "2380", "Östersund", f.partidistrikt(s))
            m = f.member(s, f.forening(s, k), name="Sigrid Spårlös", phone="070-7654321")
            member_id = m.id
            s.commit()
        with Session(engine) as s:
            privacy.erase_member(
                session=s,
                scope=Scope.operator(s),
                member_id=member_id,
                settings=settings,
                today=date(2026, 5, 4),
                route="test",
            )
            s.commit()
    finally:
        engine.dispose()  # the last connection to close checkpoints the WAL into the file
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("erase.sqlite3*"))
    assert "Spårlös".encode() not in raw and b"7654321" not in raw


def test_retention_purges_old_call_outcomes_and_members_who_left(session, org, settings):
    gone = f.member(session, org.f, "2020-01-01", status="left", left_on=date(2025, 10, 1))
    recent = f.member(session, org.f, "2020-01-01", status="left", left_on=date(2026, 3, 1))
    cl = CallList(name="Gammal", kommun_id=org.k.id, forening_id=org.f.id, ends_on=date(2026, 1, 1))
    session.add(cl)
    session.flush()
    session.add(
        MemberTask(
            kind=TaskKind.call,
            call_list_id=cl.id,
            member_id=recent.id,
            forening_id=org.f.id,
            kommun_id=org.k.id,
        )
    )
    # Follow-ups' call histories: one closed more than 3 months ago, one closed recently.
    caller = f.user(session, Role.volunteer, org.f)
    old_task, new_task = (
        f.followup_of(session, f.member(session, org.f, joined))
        for joined in ("2025-12-01", "2026-03-01")
    )
    for task, closed in ((old_task, "2026-01-20"), (new_task, "2026-03-20")):
        task.closed_at = datetime.fromisoformat(f"{closed}T12:00:00+00:00")
        task.contacted_on = date.fromisoformat(closed)
        session.add(
            MemberAttempt(
                task_id=task.id,
                member_id=task.member_id,
                forening_id=org.f.id,
                user_id=caller.id,
                outcome="reached",
                day=date.fromisoformat(closed),
            )
        )
    session.flush()
    gone_id = gone.id
    counts = privacy.purge(session=session, settings=settings, today=date(2026, 5, 4))
    assert counts == {
        "call_lists": 1,
        "call_tasks": 1,
        "call_attempts": 0,
        "followup_attempts": 1,
        "members_erased": 1,
    }
    session.expire_all()
    assert session.get(Member, gone_id) is None and session.get(Member, recent.id) is not None
    left = session.exec(select(MemberAttempt.task_id)).all()
    assert left == [new_task.id]
    # The day the member was reached stays: the on-time share counts it.
    assert session.get(MemberTask, old_task.id).contacted_on == date(2026, 1, 20)
    assert session.get(CallList, cl.id).purged_at is not None
    assert (
        privacy.purge(session=session, settings=settings, today=date(2026, 5, 4))["call_lists"] == 0
    )


def test_purge_is_a_registered_job():
    from api.jobs import JOBS
    from api.settings import Settings

    job = next(j for j in JOBS if j.name == "members_purge")
    assert job.trigger(Settings(_env_file=None, nightly_hour=23, nightly_minute=45)) == {
        "trigger": "cron",
        "hour": 0,
        "minute": 15,
    }


# -- the demo ------------------------------------------------------------------------------


def test_demo_has_members_followups_a_course_and_a_call_list(session):
    from api.demo import load_demo
    from api.members.models import Course
    from api.members.progress import members_progress_of_units
    from api.models import Campaign, Partidistrikt
    from api.settings import get_settings

    today = date(2026, 5, 4)
    load_demo(session=session, districts_path=get_settings().demo_districts_path, today=today)
    counts = [session.exec(select(func.count()).select_from(m)).one() for m in (Member, MemberTask)]
    load_demo(session=session, districts_path=get_settings().demo_districts_path, today=today)
    assert [
        session.exec(select(func.count()).select_from(m)).one() for m in (Member, MemberTask)
    ] == counts
    pd = session.exec(select(Partidistrikt)).one()
    camp = session.exec(select(Campaign)).one()
    u = members_progress_of_units(
        session=session, campaign=camp, kind="partidistrikt", ids=[pd.id], today=today
    )[pd.id]
    assert u.contacted_7d > 0 and u.contacted_late > 0 and u.due > u.contacted_7d + u.contacted_late
    assert u.attended > 0 and session.exec(select(Course)).first() is not None
    call_list = session.exec(select(CallList)).one()
    assert (
        session.exec(
            select(func.count())
            .select_from(MemberTask)
            .where(MemberTask.call_list_id == call_list.id)
        ).one()
        > 0
    )
    linked = session.exec(select(Member).where(Member.user_id.is_not(None))).all()
    assert linked == []  # demo members use no volunteer's email


def test_nightly_email_shows_each_forenings_new_members_contacted_in_time(session, org):
    from api.reports.render import render_parts
    from api.reports.service import build_report

    reached = f.member(session, org.f, "2026-04-01")
    f.member(session, org.f, "2026-04-01")
    f.followup_of(session, reached).contacted_on = date(2026, 4, 3)
    session.flush()
    lead = f.user(session, Role.kommun_lead, org.k)
    report = build_report(session=session, user=lead, today=date(2026, 5, 4))
    assert [(n.unit_name, n.contacted_7d, n.due) for n in report.new_members] == [
        ("S-föreningen Frösön", 1, 2)
    ]
    text, html = render_parts(report=report, cid="<chart@x>")
    assert "Nya medlemmar kontaktade inom 7 dagar" in text
    assert "S-föreningen Frösön: 1 av 2 i tid" in text and "Frösön" in html
    assert reached.name not in text and reached.name not in html


def test_a_failed_statement_carries_no_member_data_into_the_log(session, org):
    from sqlalchemy.exc import IntegrityError

    first = f.member(session, org.f, new=False)
    twin = Member(**(first.model_dump(exclude={"id"}) | {"name": "Ingrid Igenkännbar"}))
    with pytest.raises(IntegrityError) as failed, session.begin_nested():
        session.add(twin)
        session.flush()
    # (PostgreSQL's own detail names the duplicate key, the member number; never the name.)
    assert "Igenkännbar" not in str(failed.value) and first.phone not in str(failed.value)
