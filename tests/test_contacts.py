"""Logging contacts: single and batch, exactly once, corrections, privacy, bad input."""

import asyncio
import contextlib
import uuid
from datetime import datetime, timedelta

import pytest
from sqlmodel import func, select

from api.models import ContactLog, Partidistrikt, Role
from tests import factories as f


@pytest.fixture
def field(anon_client, session, clock):
    """A volunteer of S-föreningen Frösön in Östersund, with three districts to log in."""
    ost = f.kommun(session)
    frosön = f.forening(session, ost)
    vol = f.user(session, Role.volunteer, frosön)
    anon_client.headers.update(f.auth_headers(session, vol, clock.now))
    districts = [f.district(session, ost, f"2380000{i}", i, frosön) for i in range(3)]
    return {
        "client": anon_client,
        "vol": vol,
        "kommun": ost,
        "forening": frosön,
        "districts": districts,
        "session": session,
        "clock": clock,
    }


def record(clock, **overrides):
    return {
        "client_uuid": str(uuid.uuid4()),
        "kind": "door",
        "outcome": "conversation",
        "district_code": "23800000",
        "occurred_at": (clock.now - timedelta(minutes=5)).isoformat(),
        "topics": ["jobs", "healthcare"],
        "new_member": False,
    } | overrides


def _rows(session) -> int:
    return session.exec(select(func.count()).select_from(ContactLog)).one()


def test_log_replay_and_conflict(field):
    c, clock = field["client"], field["clock"]
    body = record(clock)
    first = c.post("/contacts", json=body)
    assert first.status_code == 201 and first.json()["status"] == "created"
    replay = c.post("/contacts", json=body)
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
    assert replay.json()["id"] == first.json()["id"]
    changed = c.post("/contacts", json=body | {"outcome": "refused"})
    assert changed.status_code == 409 and changed.json()["status"] == "conflict"
    assert _rows(field["session"]) == 1
    stored = c.get(f"/contacts/{first.json()['id']}").json()
    assert stored["outcome"] == "conversation" and stored["topics"] == ["healthcare", "jobs"]
    assert stored["conversations"] == 1 and stored["district_code"] == "23800000"


def test_another_users_uuid_reveals_and_changes_nothing(field, session, clock):
    c = field["client"]
    body = record(clock)
    original = c.post("/contacts", json=body).json()
    other = f.user(session, Role.volunteer, field["forening"])
    c.headers.update(f.auth_headers(session, other, clock.now))
    for attempt in (body, body | {"outcome": "moved"}):
        r = c.post("/contacts", json=attempt)
        assert r.status_code == 409 and r.json()["id"] is None
        assert "already taken" in r.json()["errors"][0]["message"]
    assert c.get(f"/contacts/{original['id']}").status_code == 404
    assert session.get(ContactLog, original["id"]).outcome == "conversation"


def test_district_from_a_location_point(field):
    c, clock = field["client"], field["clock"]
    inside = {"lon": f.LON + 0.015, "lat": f.LAT + 0.005}  # the second square
    r = c.post("/contacts", json=record(clock, district_code=None, location=inside))
    assert r.status_code == 201
    assert c.get(f"/contacts/{r.json()['id']}").json()["district_code"] == "23800001"
    nowhere = c.post(
        "/contacts", json=record(clock, district_code=None, location={"lon": 20.0, "lat": 60.0})
    )
    assert nowhere.status_code == 422
    assert nowhere.json()["errors"] == [
        {"field": "location", "message": "the point is in no district"}
    ]


def test_what_counts_as_conversations(field):
    c, clock = field["client"], field["clock"]
    stall = c.post("/contacts", json=record(clock, kind="stall", count=7)).json()
    refused = c.post("/contacts", json=record(clock, outcome="refused")).json()
    phone = c.post("/contacts", json=record(clock, kind="phone", outcome="not_home")).json()
    counts = [
        c.get(f"/contacts/{r['id']}").json()["conversations"] for r in (stall, refused, phone)
    ]
    assert counts == [7, 0, 0]


BAD = [
    ("unknown district", {"district_code": "99999999"}, "district_code", "no district 99999999"),
    ("future", {"occurred_at": "2026-05-04T12:10:00+02:00"}, "occurred_at", "is in the future"),
    ("too old", {"occurred_at": "2026-03-01T10:00:00+00:00"}, "occurred_at", "more than 60 days"),
    ("unknown topic", {"topics": ["weather"]}, "topics", "unknown: weather"),
]


@pytest.mark.parametrize(("case", "change", "field_name", "message"), BAD, ids=[b[0] for b in BAD])
def test_semantic_bad_input(field, case, change, field_name, message):
    r = field["client"].post("/contacts", json=record(field["clock"], **change))
    assert r.status_code == 422
    (error,) = r.json()["errors"]
    assert error["field"] == field_name and message in error["message"]
    assert _rows(field["session"]) == 0


SHAPE = [
    ("unknown kind", {"kind": "letter"}, ["body", "kind"]),
    ("unknown outcome", {"outcome": "angry"}, ["body", "outcome"]),
    ("malformed uuid", {"client_uuid": "not-a-uuid"}, ["body", "client_uuid"]),
    ("wrong type", {"new_member": "maybe"}, ["body", "new_member"]),
    ("naive time", {"occurred_at": "2026-05-04T09:00:00"}, ["body", "occurred_at"]),
    ("free text", {"note": "voted for X"}, ["body", "note"]),
    ("voter name", {"voter_name": "A Person"}, ["body", "voter_name"]),
    ("count on a door", {"count": 3}, ["body"]),
    ("two places", {"location": {"lon": 14.6, "lat": 63.17}}, ["body"]),
    ("no place", {"district_code": None}, ["body"]),
    (
        "bad point",
        {"district_code": None, "location": {"lon": 700000, "lat": 7000000}},
        ["body", "location", "lon"],
    ),
]


@pytest.mark.parametrize(("case", "change", "loc"), SHAPE, ids=[s[0] for s in SHAPE])
def test_malformed_input_names_the_field(field, case, change, loc):
    r = field["client"].post("/contacts", json=record(field["clock"], **change))
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == loc
    assert _rows(field["session"]) == 0


def test_batch_applies_good_records_and_reports_each(field, settings):
    c, clock = field["client"], field["clock"]
    good = record(clock)
    replayed = record(clock)
    c.post("/contacts", json=replayed)
    batch = [
        good,
        replayed,
        record(clock, kind="letter"),
        "not an object",
        record(clock, district_code="99999999"),
        good,  # the same uuid twice in one batch is applied once
        record(clock, client_uuid=good["client_uuid"], outcome="moved"),
    ]
    r = c.post("/contacts/batch", json={"records": batch})
    assert r.status_code == 200
    body = r.json()
    statuses = [(x["index"], x["status"]) for x in body["results"]]
    assert statuses == [
        (0, "created"),
        (1, "duplicate"),
        (2, "invalid"),
        (3, "invalid"),
        (4, "invalid"),
        (5, "duplicate"),
        (6, "conflict"),
    ]
    assert body["results"][2]["errors"][0]["field"] == "kind"
    assert body["results"][2]["client_uuid"] is not None
    assert body["results"][3]["client_uuid"] is None
    assert body["results"][5]["id"] == body["results"][0]["id"]
    assert (body["created"], body["duplicate"], body["rejected"]) == (1, 2, 4)
    assert _rows(field["session"]) == 2


@pytest.mark.parametrize("code", ["2380\x000000", "2380\n0000", "٢٣٨٠0000", "2380\u200b0000"])
def test_a_bad_district_code_is_one_invalid_record_not_a_failed_batch(field, code):
    c, clock = field["client"], field["clock"]
    batch = [record(clock), record(clock, district_code=code), record(clock)]
    r = c.post("/contacts/batch", json={"records": batch})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["status"] for x in body["results"]] == ["created", "invalid", "created"]
    assert body["results"][1]["errors"][0]["field"] == "district_code"
    assert _rows(field["session"]) == 2
    single = c.post("/contacts", json=record(clock, district_code=code))
    assert single.status_code == 422
    assert single.json()["errors"][0]["loc"] == ["body", "district_code"]


def test_oversized_batch_is_413_and_writes_nothing(field, settings):
    records = [record(field["clock"]) for _ in range(settings.sync_max_records + 1)]
    r = field["client"].post("/contacts/batch", json={"records": records})
    assert r.status_code == 413 and "the most is 500" in r.json()["detail"]
    assert _rows(field["session"]) == 0
    malformed = field["client"].post("/contacts/batch", json={"records": "nope"})
    assert malformed.status_code == 422


def test_logging_outside_the_kommun_is_forbidden(field, session):
    are = f.kommun(session, "2321", "Åre")
    f.district(session, are, "23210001", 9)
    c, clock = field["client"], field["clock"]
    r = c.post("/contacts", json=record(clock, district_code="23210001"))
    assert r.status_code == 403 and r.json()["status"] == "forbidden"
    batch = c.post("/contacts/batch", json={"records": [record(clock, district_code="23210001")]})
    assert batch.json()["results"][0]["status"] == "forbidden"
    assert _rows(session) == 0


def test_author_corrects_within_24_hours_with_an_audit_trail(field):
    c, clock = field["client"], field["clock"]
    made = c.post("/contacts", json=record(clock)).json()
    clock.advance(hours=23)
    fixed = c.patch(
        f"/contacts/{made['id']}",
        json={"kind": "stall", "count": 4, "topics": ["climate"], "district_code": "23800002"},
    )
    assert fixed.status_code == 200, fixed.text
    after = fixed.json()
    assert (after["conversations"], after["topics"], after["district_code"]) == (
        4,
        ["climate"],
        "23800002",
    )
    (audit,) = c.get(f"/contacts/{made['id']}/audit").json()
    assert audit["action"] == "corrected" and audit["user_id"] == field["vol"].id
    assert '"conversations": [1, 4]' in audit["changes"]
    clock.advance(hours=2)
    late = c.patch(f"/contacts/{made['id']}", json={"outcome": "refused"})
    assert late.status_code == 403 and "24 hours" in late.json()["detail"]
    bad = c.patch(f"/contacts/{made['id']}", json={"outcome": "angry"})
    assert bad.status_code == 422


def test_withdrawal_by_author_and_by_lead(field, session):
    c, clock = field["client"], field["clock"]
    mine = c.post("/contacts", json=record(clock)).json()
    old = c.post("/contacts", json=record(clock)).json()
    withdrawn = c.post(f"/contacts/{mine['id']}/withdraw")
    assert withdrawn.status_code == 200 and withdrawn.json()["withdrawn_at"] is not None
    assert c.post(f"/contacts/{mine['id']}/withdraw").status_code == 409
    assert c.patch(f"/contacts/{mine['id']}", json={"outcome": "moved"}).status_code == 409
    listed = c.get("/contacts").json()
    assert [x["id"] for x in listed["items"]] == [old["id"]]
    assert c.get("/contacts", params={"include_withdrawn": True}).json()["total"] == 2
    clock.advance(hours=25)
    assert c.post(f"/contacts/{old['id']}/withdraw").status_code == 403
    lead = f.user(session, Role.forening_lead, field["forening"])
    c.headers.update(f.auth_headers(session, lead, clock.now))
    assert c.patch(f"/contacts/{old['id']}", json={"outcome": "moved"}).status_code == 403
    by_lead = c.post(f"/contacts/{old['id']}/withdraw")
    assert by_lead.status_code == 200
    trail = c.get(f"/contacts/{old['id']}/audit").json()
    assert [(t["action"], t["user_id"]) for t in trail] == [("withdrawn", lead.id)]
    active = select(func.sum(ContactLog.conversations)).where(ContactLog.withdrawn_at.is_(None))
    assert session.exec(active).one() is None


def _tally_follows_the_logs(session) -> int:
    """Assert that log_tally holds the logs that count, summed per (day, district,
    volunteer, kommun, förening, turf); how many tallies count."""
    from api.models import LogTally

    key = ("day", "district_id", "user_id", "kommun_id", "forening_id", "turf_id")
    expected: dict[tuple, list[int]] = {}
    logs = session.execute(
        select(
            *(getattr(ContactLog, k) for k in key),
            ContactLog.kind,
            ContactLog.conversations,
            ContactLog.new_member,
        ).where(ContactLog.withdrawn_at.is_(None))
    )
    for *where, kind, conversations, new_member in logs:
        figures = expected.setdefault(tuple(w or 0 for w in where), [0, 0, 0, 0])
        for i, value in enumerate((1, conversations, kind == "door", new_member)):
            figures[i] += int(value)
    stored = session.execute(
        select(
            *(getattr(LogTally, k) for k in key),
            LogTally.logs,
            LogTally.conversations,
            LogTally.doors,
            LogTally.new_members,
        )
    ).all()
    # No figure below zero: a tally never loses more than it was given.
    assert [row for row in stored if min(row[6:]) < 0] == []
    # A tally whose logs are all withdrawn stays, with nothing in it.
    assert [row for row in stored if row[6] == 0 and any(row[6:])] == []
    assert {tuple(row[:6]): list(row[6:]) for row in stored if row[6] > 0} == expected
    return len(expected)


def test_the_tally_follows_every_write_of_the_logs(field, session):
    """Both logging paths, a correction that moves a log and changes its figures, a
    withdrawal, an update that changes no figure and a delete, each checked against the
    logs themselves (progress reads a live day from the tally)."""
    from sqlalchemy import delete, update

    from api.models import ContactAudit, ContactTopic

    c, clock = field["client"], field["clock"]
    # POST /contacts takes the one-statement path on PostgreSQL; the batch the general one.
    single = c.post("/contacts", json=record(clock, new_member=True)).json()
    assert single["status"] == "created"
    batch = [
        record(clock),
        record(clock, kind="stall", count=5),
        record(clock, district_code="23800001"),
        record(clock, occurred_at=(clock.now - timedelta(days=1)).isoformat()),
    ]
    made = c.post("/contacts/batch", json={"records": batch}).json()["results"]
    assert [m["status"] for m in made] == ["created"] * 4
    assert _tally_follows_the_logs(session) == 3  # three logs share a day, place and volunteer
    fixed = c.patch(
        f"/contacts/{single['id']}", json={"kind": "stall", "count": 3, "district_code": "23800002"}
    )
    assert fixed.status_code == 200, fixed.text
    assert _tally_follows_the_logs(session) == 4
    assert c.post(f"/contacts/{made[2]['id']}/withdraw").status_code == 200
    assert _tally_follows_the_logs(session) == 3
    session.execute(
        update(ContactLog).where(ContactLog.id == made[0]["id"]).values(changed_at=clock.now)
    )
    assert _tally_follows_the_logs(session) == 3
    gone = made[3]["id"]
    for model, column in (
        (ContactTopic, ContactTopic.contact_id),
        (ContactAudit, ContactAudit.contact_id),
        (ContactLog, ContactLog.id),
    ):
        session.execute(delete(model).where(column == gone))
    assert _tally_follows_the_logs(session) == 2


def test_volunteers_see_only_their_own_logs(field, session):
    c, clock = field["client"], field["clock"]
    mine = c.post("/contacts", json=record(clock)).json()
    peer = f.user(session, Role.volunteer, field["forening"])
    theirs = f.contact(session, peer, field["districts"][0], clock.now)
    assert [x["id"] for x in c.get("/contacts").json()["items"]] == [mine["id"]]
    assert c.get(f"/contacts/{theirs.id}").status_code == 404


def test_the_schema_has_no_place_for_a_person_or_an_opinion():
    columns = set(ContactLog.__table__.columns.keys())
    assert columns == {
        "id",
        "client_uuid",
        "body_hash",
        "user_id",
        "district_id",
        "kommun_id",
        "forening_id",
        "kind",
        "outcome",
        "quantity",
        "conversations",
        "new_member",
        "occurred_at",
        "day",
        "received_at",
        "changed_at",
        "withdrawn_at",
        "withdrawn_by_user_id",
        "turf_id",  # the turf walked, never the address (see the visit table)
    }
    text_columns = [
        c.name
        for c in ContactLog.__table__.columns
        if c.type.python_type is str and c.name not in {"body_hash", "kind", "outcome"}
    ]
    assert text_columns == []


def test_topics_are_configured_by_operators(anon_client, session, admin, clock, cli_session):
    from typer.testing import CliRunner

    from api.cli import app

    admin_h = f.auth_headers(session, admin, clock.now)
    ost = f.kommun(session)
    vol = f.user(session, Role.volunteer, f.forening(session, ost))
    f.district(session, ost, "23800000")
    vol_h = f.auth_headers(session, vol, clock.now)
    codes = {t["code"] for t in anon_client.get("/topics", headers=vol_h).json()}
    assert codes == {"healthcare", "jobs", "climate", "elder_care", "safety", "schools", "housing"}
    denied = anon_client.post("/topics", headers=admin_h, json={"code": "culture", "label": "K"})
    assert denied.status_code == 403 and "knacka topic" in denied.json()["detail"]
    runner = CliRunner()
    made = runner.invoke(app, ["topic", "culture", "--label", "Kultur"])
    assert made.exit_code == 0, made.output
    retired = runner.invoke(app, ["topic", "jobs", "--retire"])
    assert "jobs: Jobb, active=False" in retired.stdout
    bad = runner.invoke(app, ["topic", "Bad Code"])
    assert bad.exit_code == 1 and "code" in bad.stderr
    listed = {t["code"] for t in anon_client.get("/topics", headers=vol_h).json()}
    assert "culture" in listed and "jobs" not in listed
    r = anon_client.post("/contacts", headers=vol_h, json=record(clock, topics=["jobs"]))
    assert r.status_code == 422 and r.json()["errors"][0]["message"] == "unknown: jobs"


def test_a_replay_is_answered_even_when_the_record_would_no_longer_validate(field, session):
    c, clock = field["client"], field["clock"]
    body = record(clock, topics=["jobs"])
    first = c.post("/contacts", json=body).json()
    from api.models import Topic

    jobs = session.get(Topic, "jobs")
    jobs.active = False
    session.add(jobs)
    session.flush()
    clock.advance(days=61)  # the phone was offline for two months
    replay = c.post("/contacts", json=body)
    assert replay.status_code == 200 and replay.json()["id"] == first["id"]


def test_one_uuid_twice_in_a_batch_with_one_copy_invalid(field):
    c, clock = field["client"], field["clock"]
    good = record(clock)
    bad = good | {"district_code": "99999999"}
    body = c.post("/contacts/batch", json={"records": [good, bad]}).json()
    assert [r["status"] for r in body["results"]] == ["created", "conflict"]
    assert _rows(field["session"]) == 1


# -- the one-statement path for single records (PostgreSQL) ----------------------------------


def _token(session, who, clock) -> str:
    return f.auth_headers(session, who, clock.now)["Authorization"].removeprefix("Bearer ")


def _fast(session, settings, clock, token, body):
    """Log ``body`` through the one-statement path; its result, or None for the general path."""
    from api.contacts.fast import log_contact_fast
    from api.contacts.schemas import ContactIn
    from tests.conftest import SessionFastDb

    db = SessionFastDb.of(session)
    if db is None:
        pytest.skip("the one-statement path exists on PostgreSQL only")
    record_in = ContactIn.model_validate(body)
    return asyncio.run(
        log_contact_fast(db=db, settings=settings, raw_token=token, record=record_in, now=clock.now)
    )


def test_the_fast_path_stores_what_the_general_path_stores(field, session, settings):
    from api.auth.scope import Scope
    from api.contacts.schemas import ContactIn
    from api.contacts.service import log_contacts
    from api.models import ContactTopic

    clock, vol = field["clock"], field["vol"]
    body = record(clock, kind="stall", count=7, topics=["jobs", "healthcare", "jobs"])
    fast = _fast(session, settings, clock, _token(session, vol, clock), body)
    assert fast is not None and fast.status == "created"
    twin = body | {"client_uuid": str(uuid.uuid4())}
    general = log_contacts(
        session=session,
        scope=Scope(session=session, user=vol),
        settings=settings,
        records=[ContactIn.model_validate(twin)],
        now=clock.now,
    )[0]
    assert general.status == "created"

    def stored(contact_id):
        contact = session.get(ContactLog, contact_id)
        row = {c: getattr(contact, c) for c in ContactLog.model_fields}
        del row["id"], row["client_uuid"]
        topics = session.exec(
            select(ContactTopic.topic).where(ContactTopic.contact_id == contact_id)
        ).all()
        return row, sorted(topics)

    session.expire_all()
    fast_row, general_row = stored(fast.id), stored(general.id)
    assert fast_row[0].pop("body_hash") != general_row[0].pop("body_hash")  # the uuids differ
    assert fast_row == general_row
    assert fast_row[0]["conversations"] == 7 and fast_row[0]["forening_id"] == field["forening"].id
    assert fast_row[1] == ["healthcare", "jobs"]


# Every check of the one-statement path on both sides of its limit, and the cases it leaves to
# the general path: (case, what the general path answers, whether the one-statement path
# takes the record). Both paths run every case from the same state; a rule added to, or a
# limit moved in, one path only makes them answer differently. A new rule gets a row here.
BOTH_PATHS = [
    ("plain", "created", True),
    ("forening_lead", "created", True),
    ("another_forenings_district", "created", True),  # logging is kommun-wide
    ("no_topics", "created", True),
    ("oldest_allowed", "created", True),
    ("too_old", "invalid", False),
    ("latest_allowed", "created", True),
    ("future", "invalid", False),
    ("idle_to_the_limit", "created", True),
    ("idle", 401, False),
    ("revoked", 401, False),
    ("inactive", 401, False),
    ("unknown_token", 401, False),
    ("other_kommun", "forbidden", False),
    ("unknown_district", "invalid", False),
    ("retired_topic", "invalid", False),
    ("unknown_topic", "invalid", False),
    # what only the general path takes
    ("replay", "duplicate", False),
    ("location", "created", False),
    ("kommun_lead", "created", False),
    ("district_admin", "created", False),
    ("turf", "created", False),  # checked against its district on the general path
]


def _general(session, settings, clock, token, body):
    """What the general path answers (as POST /contacts does): a result status, or 401."""
    from api.auth.scope import Scope
    from api.auth.service import authenticate
    from api.contacts.schemas import ContactIn
    from api.contacts.service import log_contacts

    found = authenticate(session=session, settings=settings, raw_token=token, now=clock.now)
    if found is None:
        return 401
    scope = Scope(session=session, user=found[0])
    records = [ContactIn.model_validate(body)]
    return log_contacts(
        session=session, scope=scope, settings=settings, records=records, now=clock.now
    )[0].status


@pytest.mark.parametrize(("case", "general", "fast"), BOTH_PATHS, ids=[c[0] for c in BOTH_PATHS])
def test_both_logging_paths_take_and_refuse_the_same_records(
    field, session, settings, case, general, fast
):
    from api.auth.service import token_idle_cutoff
    from api.contacts.records import time_window
    from api.models import DeviceToken, Topic

    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("the one-statement path exists on PostgreSQL only")
    clock, vol, ost = field["clock"], field["vol"], field["kommun"]
    token, body = _token(session, vol, clock), record(clock)
    device = session.exec(select(DeviceToken).order_by(DeviceToken.id.desc())).first()
    earliest, latest = time_window(settings, clock.now)
    if case == "forening_lead":
        token = _token(session, f.user(session, Role.forening_lead, field["forening"]), clock)
    elif case == "another_forenings_district":
        f.district(session, ost, "23800009", 9, f.forening(session, ost, "S-föreningen Lit"))
        body["district_code"] = "23800009"
    elif case == "no_topics":
        body["topics"] = []
    elif case in ("oldest_allowed", "too_old"):
        body["occurred_at"] = earliest - timedelta(seconds=1 if case == "too_old" else 0)
    elif case in ("latest_allowed", "future"):
        body["occurred_at"] = latest + timedelta(seconds=1 if case == "future" else 0)
    elif case in ("idle_to_the_limit", "idle"):
        cutoff = token_idle_cutoff(settings=settings, now=clock.now)
        device.last_used_at = cutoff - timedelta(seconds=1 if case == "idle" else 0)
    elif case == "revoked":
        device.revoked_at = clock.now
    elif case == "inactive":
        vol.is_active = False
    elif case == "unknown_token":
        token = "kn_" + "x" * 40
    elif case == "other_kommun":
        f.district(session, f.kommun(session, "2321", "Åre"), "23210001", 9)
        body["district_code"] = "23210001"
    elif case == "unknown_district":
        body["district_code"] = "99999999"
    elif case == "retired_topic":
        jobs = session.get(Topic, "jobs")
        jobs.active = False
        session.add(jobs)
    elif case == "unknown_topic":
        body["topics"] = ["weather"]  # a code no topic has
    elif case == "replay":
        assert _general(session, settings, clock, token, body) == "created"
    elif case == "location":
        body = record(clock, district_code=None, location={"lon": f.LON + 0.005, "lat": f.LAT})
    elif case == "kommun_lead":
        token = _token(session, f.user(session, Role.kommun_lead, ost), clock)
    elif case == "turf":
        body["turf"] = f.turf(session, field["districts"][0], 1).code
    elif case == "district_admin":
        pd = session.get(Partidistrikt, ost.partidistrikt_id)
        token = _token(session, f.user(session, Role.district_admin, pd), clock)
    if isinstance(body["occurred_at"], datetime):
        body["occurred_at"] = body["occurred_at"].isoformat()
    session.add_all([device, vol])
    session.flush()
    before = _rows(session)

    def alone(path):
        """Run one path and undo what it wrote, so that the other starts from the same state."""
        attempt = session.begin_nested()
        try:
            return path(session, settings, clock, token, body)
        finally:
            attempt.rollback()
            session.expire_all()

    answers = (alone(_general), alone(_fast) is not None)
    assert answers == (general, fast)
    assert _rows(session) == before


def test_the_fast_path_records_a_devices_use_at_most_once_a_minute(field, session, settings):
    from api.models import DeviceToken

    clock, vol = field["clock"], field["vol"]
    token = _token(session, vol, clock)
    device = session.exec(select(DeviceToken).order_by(DeviceToken.id.desc())).first()
    seen = []
    for minutes in (0.5, 1.5):
        device.last_used_at = clock.now - timedelta(minutes=minutes)
        session.add(device)
        session.flush()
        assert _fast(session, settings, clock, token, record(clock)) is not None
        session.refresh(device)
        seen.append(device.last_used_at)
    assert seen == [clock.now - timedelta(minutes=0.5), clock.now]


def test_the_fast_path_takes_forening_leads_too(field, session, settings):
    clock = field["clock"]
    lead = f.user(session, Role.forening_lead, field["forening"])
    result = _fast(session, settings, clock, _token(session, lead, clock), record(clock))
    assert result is not None and session.get(ContactLog, result.id).user_id == lead.id


# -- grouping concurrent callers into one statement (no database: a stand-in pool) -----------


class _StandInPool:
    """Answers each run with the rows whose key is even, in reverse order, or fails."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.runs: list[dict] = []
        self.fail = fail

    @contextlib.asynccontextmanager
    async def connection(self):
        yield self  # the pool is its own connection, and the connection its own cursor

    async def execute(self, sql, params):
        self.runs.append(params)
        await asyncio.sleep(0.01)  # the statement takes a while: others queue
        if self.fail is not None:
            raise self.fail
        keys = [k for k in params["k"] if k % 2 == 0]
        self.rows = [(k, f"id-{k}") for k in reversed(keys)]
        return self

    async def fetchall(self):
        return self.rows

    async def open(self):
        return None


def _grouped(pool, calls):
    from api.fastdb import PgPool

    db = PgPool("postgresql://nobody@127.0.0.1:1/none", in_flight=2)
    db._pool = pool

    async def main():
        return await asyncio.gather(*(db.fetch_grouped("SQL", row, key="k") for row in calls))

    return asyncio.run(main())


def test_concurrent_callers_share_runs_and_each_gets_its_own_row():
    pool = _StandInPool()
    calls = [{"k": k, "v": -k} for k in range(50)] + [{"k": 8, "v": 0}]
    answers = _grouped(pool, calls)
    assert answers[:50] == [(k, f"id-{k}") if k % 2 == 0 else None for k in range(50)]
    assert answers[50] is None  # the same key while the first is waiting: general path
    assert 1 <= len(pool.runs) <= 2  # 50 callers at once: one or two shared statements
    assert sorted(k for run in pool.runs for k in run["k"]) == list(range(50))
    assert all(run["k"] == sorted(run["k"]) for run in pool.runs)  # one lock order
    assert all(run["v"] == [-k for k in run["k"]] for run in pool.runs)


@pytest.mark.parametrize("error", ["database", "bug"])
def test_a_failed_run_sends_every_caller_to_the_general_path(error):
    import psycopg

    fail = psycopg.OperationalError("gone") if error == "database" else KeyError("k")
    pool = _StandInPool(fail=fail)
    assert _grouped(pool, [{"k": k} for k in range(20)]) == [None] * 20
    assert pool.runs


def test_a_caller_without_a_token_hears_so_before_anything_about_the_body(anon_client):
    r = anon_client.post("/contacts", json={"nope": 1})
    assert r.status_code == 401 and r.json()["detail"].startswith("authorization:")
