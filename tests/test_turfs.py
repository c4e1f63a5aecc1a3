"""Turfs: leases and claims, walk lists and QR codes, door visits synced beside contact
records, coverage and its nightly snapshot, and the privacy rule (a visit names an address
and a neutral status, never a person, an outcome or a time)."""

import csv
import io
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime, timedelta

import pytest
from sqlmodel import Session, select

from api.auth.scope import Scope
from api.errors import Conflict
from api.models import ContactLog, District, Kommun, Role, TurfLease, TurfStat, User, Visit
from tests import factories as f
from tests.conftest import BACKENDS, postgres_database


@pytest.fixture
def area(anon_client, session, clock):
    """Östersund: Frösön holds district 23800000 with turf T (three addresses, 2+1+3
    households); Lit holds 23800001; Åre is another kommun."""
    ost = f.kommun(session)
    frosön = f.forening(session, ost, "S-föreningen Frösön")
    lit = f.forening(session, ost, "S-föreningen Lit")
    d0 = f.district(session, ost, "23800000", 0, frosön)
    d1 = f.district(session, ost, "23800001", 1, lit)
    homes = [
        f.address(session, d0, "Storgatan", "1", households=2),
        f.address(session, d0, "Storgatan", "3", households=1),
        f.address(session, d0, "Kyrkgatan", "2", households=3),
    ]
    turf = f.turf(session, d0, 1, homes)
    other = f.turf(session, d1, 1, [f.address(session, d1, "Lillgatan", "5")])
    are = f.kommun(session, "2321", "Åre")
    vol = f.user(session, Role.volunteer, frosön)
    vol.display_name = "Anna Andersson"
    people = {
        "vol": vol,
        "vol2": f.user(session, Role.volunteer, lit),
        "flead": f.user(session, Role.forening_lead, frosön),
        "lit_lead": f.user(session, Role.forening_lead, lit),
        "klead": f.user(session, Role.kommun_lead, ost),
        "are_vol": f.user(session, Role.volunteer, f.forening(session, are, "S-föreningen Åre")),
    }
    session.flush()
    headers = {k: f.auth_headers(session, u, clock.now) for k, u in people.items()}
    return {
        "c": anon_client,
        "h": headers,
        "people": people,
        "kommun": ost,
        "frosön": frosön,
        "lit": lit,
        "d0": d0,
        "d1": d1,
        "homes": homes,
        "turf": turf,
        "other": other,
        "are": are,
    }


def _visit(turf, address, status="answered", when=None, **over):
    return {
        "client_uuid": str(uuid.uuid4()),
        "turf": turf.code,
        "address_id": address.id,
        "status": status,
        "occurred_at": when.isoformat(),
        **over,
    }


def _record(clock, **over):
    return {
        "client_uuid": str(uuid.uuid4()),
        "kind": "door",
        "outcome": "conversation",
        "district_code": "23800000",
        "occurred_at": (clock.now - timedelta(minutes=5)).isoformat(),
        **over,
    }


# -- reading turfs ----------------------------------------------------------------------------


def test_turfs_of_a_district_or_kommun_with_coverage_and_lease(area):
    c, h, turf = area["c"], area["h"], area["turf"]
    listed = c.get("/turfs?district=23800000", headers=h["vol"])
    assert listed.status_code == 200
    (one,) = listed.json()
    assert one == {
        "code": turf.code,
        "district_code": "23800000",
        "households": 6,
        "address_count": 3,
        "walk_length_m": 360.0,
        "coverage": {
            "doors_knocked": 0,
            "addresses": 3,
            "households_knocked": 0,
            "households": 6,
            "share": 0.0,
            "answered": 0,
            "conversations": 0,
            "last_visit": None,
            "status": "not_started",
        },
        "lease": None,
        "link_code": turf.link_code,
    }
    by_kommun = c.get("/turfs?kommun=2380", headers=h["klead"]).json()
    assert [t["code"] for t in by_kommun] == [turf.code, area["other"].code]
    assert c.get(f"/turfs/{turf.code}", headers=h["vol2"]).json()["code"] == turf.code
    # another kommun's turfs are answered like missing ones
    assert c.get(f"/turfs/{turf.code}", headers=h["are_vol"]).status_code == 404
    assert c.get("/turfs?district=23800000", headers=h["are_vol"]).status_code == 403
    assert c.get("/turfs?district=99999999", headers=h["are_vol"]).status_code == 403
    neither = c.get("/turfs", headers=h["vol"])
    assert neither.status_code == 422 and "district" in neither.json()["detail"]
    both = c.get("/turfs?district=23800000&kommun=2380", headers=h["vol"])
    assert both.status_code == 422


# -- leases -----------------------------------------------------------------------------------


def test_a_lead_assigns_and_the_holder_releases(area, clock):
    c, h, turf, vol = area["c"], area["h"], area["turf"], area["people"]["vol"]
    made = c.post(f"/turfs/{turf.code}/lease", headers=h["flead"], json={"user_id": vol.id})
    assert made.status_code == 201, made.text
    lease = made.json()["lease"]
    assert lease["holder_kind"] == "user" and lease["holder"] == "Anna Andersson"
    assert lease["forening"] == "S-föreningen Frösön"
    assert datetime.fromisoformat(lease["expires_at"]) == clock.now + timedelta(days=14)
    # the volunteer sees "you"; another volunteer sees the förening, never the name
    assert c.get(f"/turfs/{turf.code}", headers=h["vol"]).json()["lease"]["holder"] == "you"
    seen = c.get(f"/turfs/{turf.code}", headers=h["vol2"]).json()["lease"]
    assert seen["holder"] == "S-föreningen Frösön" and "Anna" not in str(seen)
    assert [t["code"] for t in c.get("/me/turfs", headers=h["vol"]).json()] == [turf.code]
    assert c.get("/me/turfs", headers=h["vol2"]).json() == []
    again = c.post(f"/turfs/{turf.code}/lease", headers=h["klead"], json={"user_id": vol.id})
    assert again.status_code == 409 and "S-föreningen Frösön" in again.json()["detail"]
    assert "Anna" not in again.json()["detail"]
    # someone else cannot release it; the holder can, once
    assert c.delete(f"/turfs/{turf.code}/lease", headers=h["vol2"]).status_code == 403
    released = c.delete(f"/turfs/{turf.code}/lease", headers=h["vol"])
    assert released.status_code == 200 and released.json()["lease"] is None
    assert c.delete(f"/turfs/{turf.code}/lease", headers=h["vol"]).status_code == 404
    assert c.get("/me/turfs", headers=h["vol"]).json() == []


def test_a_team_lease_and_its_days(area, clock):
    c, h, turf = area["c"], area["h"], area["turf"]
    body = {"forening_id": area["frosön"].id, "days": 3}
    made = c.post(f"/turfs/{turf.code}/lease", headers=h["klead"], json=body)
    assert made.status_code == 201, made.text
    lease = made.json()["lease"]
    assert lease["holder_kind"] == "forening" and lease["holder"] == "S-föreningen Frösön"
    assert datetime.fromisoformat(lease["expires_at"]) == clock.now + timedelta(days=3)
    assert [t["code"] for t in c.get("/me/turfs", headers=h["vol"]).json()] == [turf.code]
    # the förening's lead hands it back as its holder
    assert c.delete(f"/turfs/{turf.code}/lease", headers=h["flead"]).status_code == 200


def test_the_lease_setting_gives_the_default_days(area, clock, settings):
    settings.turf_lease_days = 5
    c, h, turf, vol = area["c"], area["h"], area["turf"], area["people"]["vol"]
    made = c.post(f"/turfs/{turf.code}/lease", headers=h["klead"], json={"user_id": vol.id})
    expires = datetime.fromisoformat(made.json()["lease"]["expires_at"])
    assert expires == clock.now + timedelta(days=5)


def test_who_may_assign_and_to_whom(area, session):
    c, h, turf, people = area["c"], area["h"], area["turf"], area["people"]
    vol_body = {"user_id": people["vol"].id}
    # Lit's lead does not lead Frösön's district; a volunteer leads nothing
    assert (
        c.post(f"/turfs/{turf.code}/lease", headers=h["lit_lead"], json=vol_body).status_code == 403
    )
    assert c.post(f"/turfs/{turf.code}/lease", headers=h["vol"], json=vol_body).status_code == 403
    outsider = {"user_id": people["are_vol"].id}
    refused = c.post(f"/turfs/{turf.code}/lease", headers=h["klead"], json=outsider)
    assert refused.status_code == 403 and refused.json()["detail"].startswith("user_id:")
    missing = c.post(f"/turfs/{turf.code}/lease", headers=h["klead"], json={"user_id": 10**9})
    assert missing.status_code == 403
    other_forening = {"forening_id": f.forening(session, area["are"], "S-föreningen Duved").id}
    refused = c.post(f"/turfs/{turf.code}/lease", headers=h["klead"], json=other_forening)
    assert refused.status_code == 403 and refused.json()["detail"].startswith("forening_id:")
    both = {"user_id": people["vol"].id, "forening_id": area["frosön"].id}
    assert c.post(f"/turfs/{turf.code}/lease", headers=h["klead"], json=both).status_code == 422
    assert c.post(f"/turfs/{turf.code}/lease", headers=h["klead"], json={}).status_code == 422
    long = {"user_id": people["vol"].id, "days": 0}
    assert c.post(f"/turfs/{turf.code}/lease", headers=h["klead"], json=long).status_code == 422
    assert session.exec(select(TurfLease)).all() == []


def test_claiming_by_the_printed_link(area, session, clock):
    c, h, turf = area["c"], area["h"], area["turf"]
    url = f"/turfs/claim/{turf.link_code}"
    won = c.post(url, headers=h["vol"])
    assert won.status_code == 201 and won.json()["lease"]["holder"] == "you"
    lost = c.post(url, headers=h["vol2"])
    assert lost.status_code == 409
    assert "S-föreningen Frösön" in lost.json()["detail"] and "Anna" not in lost.json()["detail"]
    assert c.post(url, headers=h["klead"]).status_code == 403  # leads assign instead
    assert c.post(url, headers=h["are_vol"]).status_code == 404
    assert c.post("/turfs/claim/nosuchlink", headers=h["vol"]).status_code == 404
    # an expired lease counts as free: it is released and the turf taken again
    clock.advance(days=15)
    h2 = f.auth_headers(session, area["people"]["vol2"], clock.now)
    again = c.post(url, headers=h2)
    assert again.status_code == 201, again.text
    leases = session.exec(select(TurfLease).order_by(TurfLease.id)).all()
    assert [le.released_at is not None for le in leases] == [True, False]
    assert leases[1].user_id == area["people"]["vol2"].id


def test_an_insert_losing_the_race_is_a_409_naming_the_forening(area, session, clock):
    """What the losing request meets when the winner's lease was committed after it looked:
    the unique index refuses the second live lease, and the answer names the förening."""
    from api.turfs.service import take_lease

    turf, vol, vol2 = area["turf"], area["people"]["vol"], area["people"]["vol2"]
    f.lease(session, turf, vol, clock.now)
    with pytest.raises(Conflict) as refused:
        take_lease(
            session=session,
            turf=turf,
            user_id=vol2.id,
            forening_id=None,
            by=vol2.id,
            expires_at=clock.now + timedelta(days=1),
            now=clock.now,
        )
    assert "S-föreningen Frösön" in refused.value.message
    assert "Anna" not in refused.value.message
    # the request's transaction is still usable
    assert len(session.exec(select(TurfLease)).all()) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_claims_at_the_same_moment_exactly_one_wins(backend, tmp_path):
    """Two sessions in two threads claim the same free turf; one commits its lease, the
    other gets 409 naming the winner's förening."""
    from api.db import make_engine
    from api.migrate import upgrade
    from api.settings import Settings
    from api.turfs.service import claim_turf

    with ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path / 'race.sqlite3'}"
        else:
            url = stack.enter_context(postgres_database())
        upgrade(url)
        engine = make_engine(url)
        stack.callback(engine.dispose)
        now = datetime.fromisoformat("2026-05-04T10:00:00+00:00")
        with Session(engine, expire_on_commit=False) as s:
            k = f.kommun(s)
            frosön, lit = (
                f.forening(s, k, "S-föreningen Frösön"),
                f.forening(s, k, "S-föreningen Lit"),
            )
            d = f.district(s, k, "23800000", 0, frosön)
            turf = f.turf(s, d, 1, [f.address(s, d)])
            a, b = f.user(s, Role.volunteer, frosön), f.user(s, Role.volunteer, lit)
            a.display_name, b.display_name = "Anna Andersson", "Bertil Berg"
            s.add_all([a, b])
            s.commit()
            link, ids = turf.link_code, (a.id, b.id)
        barrier = threading.Barrier(2)

        def claim(user_id: int) -> str:
            with Session(engine, expire_on_commit=False) as s:
                scope = Scope(session=s, user=s.get(User, user_id))
                s.commit()  # the user is read; the claim starts in a transaction of its own
                barrier.wait()
                try:
                    claim_turf(
                        session=s, scope=scope, settings=Settings(_env_file=None),
                        link_code=link, now=now,
                    )  # fmt: skip
                    s.commit()
                    return "won"
                except Conflict as exc:
                    s.rollback()
                    return exc.message

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(claim, ids))
        assert answers.count("won") == 1, answers
        (lost,) = [x for x in answers if x != "won"]
        winner = ids[answers.index("won")]
        forening = "S-föreningen Frösön" if winner == ids[0] else "S-föreningen Lit"
        assert forening in lost and "Anna" not in lost and "Bertil" not in lost
        with Session(engine) as s:
            (lease,) = s.exec(select(TurfLease)).all()
            assert lease.user_id == winner and lease.released_at is None


# -- QR and walk lists ------------------------------------------------------------------------


def test_the_qr_code_carries_the_absolute_claim_link(area, settings):
    from api.turfs.walklist import qr_svg

    c, h, turf = area["c"], area["h"], area["turf"]
    got = c.get(f"/turfs/{turf.code}/qr.svg", headers=h["vol"])
    assert got.status_code == 200 and got.headers["content-type"] == "image/svg+xml"
    assert got.text == qr_svg(f"http://testserver/app/t/{turf.link_code}")
    settings.public_url = "https://knacka.example.org/"
    got = c.get(f"/turfs/{turf.code}/qr.svg", headers=h["vol"])
    assert got.text == qr_svg(f"https://knacka.example.org/app/t/{turf.link_code}")
    assert "<svg" in got.text


def test_the_walk_list_csv_is_in_walking_order_and_marks_answered_doors(area, session, clock):
    c, h, turf, homes = area["c"], area["h"], area["turf"], area["homes"]
    homes[1].street = "=HYPERLINK(1)"
    session.add(homes[1])
    session.flush()
    visits = [
        _visit(turf, homes[2], "answered", clock.now),
        _visit(turf, homes[0], "not_home", clock.now),
    ]
    assert (
        c.post(
            "/contacts/batch", headers=h["vol"], json={"records": [], "visits": visits}
        ).status_code
        == 200
    )
    got = c.get(f"/turfs/{turf.code}/walklist.csv", headers=h["vol"])
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(got.text)))
    assert rows[0][:3] == ["ordning", "address_id", "gata"]
    assert [(r[0], r[2], r[3], r[7], r[8]) for r in rows[1:]] == [
        ("1", "Storgatan", "1", "2", ""),
        ("2", "'=HYPERLINK(1)", "3", "1", ""),
        ("3", "Kyrkgatan", "2", "3", "ja"),
    ]


def test_the_printable_walk_list(area, session, clock):
    c, h, d0 = area["c"], area["h"], area["d0"]
    homes = [f.address(session, d0, "Ängsvägen", str(n), households=1) for n in range(1, 60)]
    homes.append(f.address(session, d0, "<script>alert(1)</script>", "1"))
    turf = f.turf(session, d0, 7, homes)
    visit = _visit(turf, homes[0], "answered", clock.now)
    c.post("/contacts/batch", headers=h["vol"], json={"records": [], "visits": [visit]})
    got = c.get(f"/turfs/{turf.code}/walklist", headers=h["vol"])
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/html")
    csp = got.headers["content-security-policy"]
    assert csp == "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'"
    page = got.text
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # No inline style: one style sheet, by absolute URL (a copy opened from a blob: URL has
    # no base to resolve a relative one against), and Knacka serves it.
    stylesheet = "http://testserver/karta/static/walklist.css"
    assert "<style" not in page and "style=" not in page
    assert page.count("<link") == 1 and f'<link rel="stylesheet" href="{stylesheet}">' in page
    css = c.get(stylesheet)
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "size: A4" in css.text and "break-after: page" in css.text
    # 60 addresses: three pages of at most 25, each with the code and the map
    assert page.count('<section class="page">') == 3
    assert page.count(f"<h1>Område {turf.code}</h1>") == 3
    assert page.count('<svg class="map"') == 3 and "sida 3 av 3" in page
    for label in ("Svarade", "Ej hemma", "Ej tillträde", "Samtal", "Ny medlem"):
        assert page.count(f">{label}</th>") == 3
    assert page.count("(svarat tidigare)") == 1
    assert "src=" not in page and page.count("href=") == 1
    assert page.count("<tr class=answered>") == 1 and page.count("<tr") == 60 + 3


# -- visits and contact records naming a turf --------------------------------------------------


def test_visits_sync_beside_records_each_exactly_once(area, session, clock):
    c, h, turf, homes = area["c"], area["h"], area["turf"], area["homes"]
    good = _visit(turf, homes[0], "answered", clock.now)
    record = _record(clock, turf=turf.code, outcome="conversation", new_member=True)
    body = {
        "records": [record],
        "visits": [
            good,
            _visit(turf, homes[1], "not_home", clock.now),
            _visit(area["other"], homes[0], "answered", clock.now),  # not in that turf
            _visit(turf, homes[2], "asleep", clock.now),  # no such status
            {"client_uuid": "nonsense"},
            _visit(turf, homes[2], "no_access", clock.now + timedelta(hours=1)),
            _visit(turf, homes[2], "no_access", clock.now - timedelta(days=61)),
        ],
    }
    answer = c.post("/contacts/batch", headers=h["vol"], json=body)
    assert answer.status_code == 200, answer.text
    out = answer.json()
    assert [r["status"] for r in out["results"]] == ["created"]
    assert [r["status"] for r in out["visit_results"]] == [
        "created", "created", "invalid", "invalid", "invalid", "invalid", "invalid",
    ]  # fmt: skip
    assert out["visit_results"][2]["errors"][0]["field"] == "address_id"
    assert out["visit_results"][3]["errors"][0]["field"] == "status"
    assert out["visit_results"][5]["errors"][0]["message"] == "is in the future"
    stored = session.get(ContactLog, out["results"][0]["id"])
    assert stored.turf_id == turf.id and stored.district_id == area["d0"].id
    # a replay is a duplicate; the same uuid with another body a conflict
    changed = good | {"status": "not_home"}
    again = c.post(
        "/contacts/batch", headers=h["vol"], json={"records": [record], "visits": [good, changed]}
    ).json()
    assert again["results"][0]["status"] == "duplicate"
    assert [r["status"] for r in again["visit_results"]] == ["duplicate", "conflict"]
    assert again["visit_results"][0]["id"] == out["visit_results"][0]["id"]
    assert len(session.exec(select(Visit)).all()) == 2
    # the same uuid twice in one batch, differently: the first applies, the second conflicts
    twin = _visit(turf, homes[1], "answered", clock.now)
    both = c.post(
        "/contacts/batch",
        headers=h["vol"],
        json={"records": [], "visits": [twin, twin | {"status": "no_access"}]},
    ).json()
    assert [r["status"] for r in both["visit_results"]] == ["created", "conflict"]


def test_visits_in_turfs_outside_reach_are_refused(area, session, clock):
    c, h, turf, homes = area["c"], area["h"], area["turf"], area["homes"]
    body = {"records": [], "visits": [_visit(turf, homes[0], "answered", clock.now)]}
    out = c.post("/contacts/batch", headers=h["are_vol"], json=body).json()
    assert out["visit_results"][0]["status"] == "forbidden"
    missing = {
        "records": [],
        "visits": [_visit(turf, homes[0], "answered", clock.now) | {"turf": "X-1"}],
    }
    out = c.post("/contacts/batch", headers=h["are_vol"], json=missing).json()
    assert out["visit_results"][0]["status"] == "forbidden"
    assert session.exec(select(Visit)).all() == []


def test_too_many_visits_in_one_batch(area, clock, settings):
    settings.sync_max_records = 2
    c, h, turf, homes = area["c"], area["h"], area["turf"], area["homes"]
    body = {"records": [], "visits": [_visit(turf, homes[0], "answered", clock.now)] * 3}
    got = c.post("/contacts/batch", headers=h["vol"], json=body)
    assert got.status_code == 413 and got.json()["detail"].startswith("visits:")


def test_a_record_names_a_turf_of_its_district_only(area, session, clock):
    c, h, turf = area["c"], area["h"], area["turf"]
    ok = c.post("/contacts", headers=h["vol"], json=_record(clock, turf=turf.code))
    assert ok.status_code == 201, ok.text
    assert session.get(ContactLog, ok.json()["id"]).turf_id == turf.id
    wrong = c.post("/contacts", headers=h["vol"], json=_record(clock, turf=area["other"].code))
    assert wrong.status_code == 422
    assert wrong.json()["errors"] == [
        {"field": "turf", "message": f"turf {area['other'].code} is not in the district"}
    ]
    unknown = c.post("/contacts", headers=h["vol"], json=_record(clock, turf="23800000-99"))
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "turf"
    plain = c.post("/contacts", headers=h["vol"], json=_record(clock))
    assert session.get(ContactLog, plain.json()["id"]).turf_id is None


def test_a_record_read_back_names_its_turf(area, clock):
    c, h, turf = area["c"], area["h"], area["turf"]
    named = c.post("/contacts", headers=h["vol"], json=_record(clock, turf=turf.code)).json()
    plain = c.post("/contacts", headers=h["vol"], json=_record(clock)).json()
    listed = c.get("/contacts?mine=true", headers=h["vol"]).json()["items"]
    assert {r["id"]: r["turf"] for r in listed} == {named["id"]: turf.code, plain["id"]: None}
    # the lead reads it too, one by one; the record names the turf, never an address
    one = c.get(f"/contacts/{named['id']}", headers=h["klead"]).json()
    assert one["turf"] == turf.code and not [k for k in one if "address" in k]


def test_a_record_without_a_turf_hashes_as_before_turfs_existed(clock):
    """A phone replaying a record logged before this release must get 'duplicate'."""
    import hashlib
    import json

    from api.contacts.records import body_hash
    from api.contacts.schemas import ContactIn

    body = _record(clock, topics=["jobs"])
    before = {
        "kind": "door",
        "outcome": "conversation",
        "count": None,
        "topics": ["jobs"],
        "new_member": False,
        "client_uuid": body["client_uuid"],
        "district_code": "23800000",
        "occurred_at": ContactIn.model_validate(body).model_dump(mode="json")["occurred_at"],
    }
    expected = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()
    assert body_hash(ContactIn.model_validate(body)) == expected
    with_turf = ContactIn.model_validate(body | {"turf": "23800000-1"})
    assert body_hash(with_turf) != expected


# -- coverage ---------------------------------------------------------------------------------


def test_coverage_from_not_started_to_done(area, session, clock):
    c, h, turf, homes = area["c"], area["h"], area["turf"], area["homes"]

    def coverage():
        return c.get(f"/turfs/{turf.code}", headers=h["klead"]).json()["coverage"]

    def sync(*visits, records=()):
        body = {"records": list(records), "visits": list(visits)}
        out = c.post("/contacts/batch", headers=h["vol"], json=body).json()
        assert all(r["status"] == "created" for r in out["visit_results"] + out["results"])

    assert coverage()["status"] == "not_started"
    yesterday = clock.now - timedelta(days=1)
    sync(
        _visit(turf, homes[0], "answered", yesterday),
        _visit(turf, homes[1], "not_home", yesterday),
        records=[_record(clock, turf=turf.code), _record(clock, turf=turf.code, outcome="refused")],
    )
    got = coverage()
    assert got == {
        "doors_knocked": 2,
        "addresses": 3,
        "households_knocked": 3,
        "households": 6,
        "share": 0.5,
        "answered": 1,
        "conversations": 1,
        "last_visit": yesterday.date().isoformat(),
        "status": "in_progress",
    }
    # the third door answered; the second not home twice: done
    sync(
        _visit(turf, homes[2], "answered", clock.now), _visit(turf, homes[1], "not_home", clock.now)
    )
    got = coverage()
    assert got["status"] == "done" and got["doors_knocked"] == 3 and got["share"] == 1.0
    assert got["answered"] == 2 and got["last_visit"] == clock.now.date().isoformat()
    listed = c.get("/turfs?district=23800000", headers=h["vol"]).json()
    assert listed[0]["coverage"] == got


def test_an_address_visited_once_without_answer_is_not_done(area, clock):
    c, h, turf, homes = area["c"], area["h"], area["turf"], area["homes"]
    visits = [_visit(turf, a, "answered", clock.now) for a in homes[:2]]
    visits.append(_visit(turf, homes[2], "no_access", clock.now))
    c.post("/contacts/batch", headers=h["vol"], json={"records": [], "visits": visits})
    got = c.get(f"/turfs/{turf.code}", headers=h["vol"]).json()["coverage"]
    assert got["doors_knocked"] == 3 and got["status"] == "in_progress"


def test_turf_stats_are_rebuilt_for_changed_turfs_and_exported(area, session, clock):
    from api.turfs.coverage import rebuild_turf_stats

    c, h, turf, homes = area["c"], area["h"], area["turf"], area["homes"]
    camp = f.campaign(session, f.partidistrikt(session))
    visits = [_visit(turf, homes[0], "answered", clock.now)]
    c.post(
        "/contacts/batch",
        headers=h["vol"],
        json={"records": [_record(clock, turf=turf.code)], "visits": visits},
    )
    assert rebuild_turf_stats(session, None) == 2  # every turf, the first time
    stat = session.get(TurfStat, turf.id)
    assert (stat.doors_knocked, stat.households_knocked, stat.answered) == (1, 2, 1)
    assert stat.conversations == 1
    # later: only turfs with recent visits or changed records naming them
    old = area["other"]
    session.get(TurfStat, old.id).doors_knocked = 99  # would be rebuilt to 0 if touched
    assert rebuild_turf_stats(session, clock.now - timedelta(minutes=1)) == 1
    assert session.get(TurfStat, old.id).doors_knocked == 99
    session.get(TurfStat, old.id).doors_knocked = 0
    session.flush()

    export = c.get(f"/campaigns/{camp.id}/export?level=district", headers=h["klead"])
    rows = list(csv.reader(io.StringIO(export.text)))
    # Districts carry coverage, then their election priority (api.results), at the end.
    at = rows[0].index("dörrar_knackade")
    assert rows[0][at : at + 3] == ["dörrar_knackade", "hushåll", "täckning"]
    d0 = [r for r in rows[1:] if r[10] == "23800000"]
    assert d0 and all(r[at : at + 3] == ["1", "6", "0.3333"] for r in d0)
    turfs = c.get(f"/campaigns/{camp.id}/export?level=turf", headers=h["klead"])
    assert turfs.status_code == 200, turfs.text
    rows = list(csv.reader(io.StringIO(turfs.text)))
    mine = [r for r in rows[1:] if r[10] == turf.code]
    assert mine and mine[0][0] == "turf" and mine[0][2] == turf.code
    talks = [r for r in mine if r[3] == "conversations"]
    assert talks[0][4] == "1" and talks[0][-3:] == ["1", "6", "0.3333"]
    kommun = c.get(f"/campaigns/{camp.id}/export?level=kommun", headers=h["klead"])
    assert "dörrar_knackade" not in kommun.text

    # The progress endpoints carry the same coverage: a district's, a turf's, and each
    # district among a förening's children; a kommun has none.
    base = f"/campaigns/{camp.id}/progress"
    want = {"doors_knocked": 1, "households": 6, "share": 0.3333}
    district = c.get(f"{base}/district/23800000", headers=h["klead"]).json()
    assert district["coverage"] == want
    one = c.get(f"{base}/turf/{turf.code}", headers=h["klead"]).json()
    assert one["coverage"] == want
    kommun_id = session.get(District, turf.district_id).kommun_id
    kommun_code = session.get(Kommun, kommun_id).code
    assert c.get(f"{base}/kommun/{kommun_code}", headers=h["klead"]).json()["coverage"] is None
    forening_id = session.get(District, turf.district_id).forening_id
    children = c.get(f"{base}/forening/{forening_id}/children", headers=h["klead"]).json()
    mine = [u for u in children["children"] if u["unit_id"] == turf.district_id]
    assert mine and mine[0]["coverage"] == want


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_nightly_job_rebuilds_turf_stats(backend, tmp_path, monkeypatch):
    from api import db
    from api.db import make_engine
    from api.jobs import run_nightly
    from api.migrate import upgrade
    from api.settings import Settings

    with ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path / 'night.sqlite3'}"
        else:
            url = stack.enter_context(postgres_database())
        upgrade(url)
        engine = make_engine(url)
        stack.callback(engine.dispose)
        monkeypatch.setattr(db, "get_engine", lambda: engine)
        night = datetime.fromisoformat("2026-05-04T02:30:00+02:00")
        with Session(engine, expire_on_commit=False) as s:
            k = f.kommun(s)
            d = f.district(s, k, "23800000", 0, f.forening(s, k))
            homes = [f.address(s, d), f.address(s, d)]
            turf = f.turf(s, d, 1, homes)
            s.add(Visit(client_uuid=uuid.uuid4(), address_id=homes[0].id, turf_id=turf.id,
                        status="answered", day=night.date() - timedelta(days=1)))  # fmt: skip
            s.commit()
        settings = Settings(_env_file=None)
        run_nightly(settings=settings, now=night, emails=False)
        with Session(engine) as s:
            assert s.get(TurfStat, turf.id).doors_knocked == 1
            s.add(Visit(client_uuid=uuid.uuid4(), address_id=homes[1].id, turf_id=turf.id,
                        status="not_home", day=night.date()))  # fmt: skip
            s.commit()
        run_nightly(settings=settings, now=night + timedelta(days=1), emails=False)
        with Session(engine) as s:
            assert s.get(TurfStat, turf.id).doors_knocked == 2


# -- privacy by design ------------------------------------------------------------------------


def test_a_visit_holds_no_person_outcome_or_time_and_a_record_no_address():
    """Pinned: adding a column here is a privacy decision, not a refactoring."""
    assert [c.name for c in Visit.__table__.columns] == [
        "id",
        "client_uuid",
        "address_id",
        "turf_id",
        "status",
        "day",
    ]
    contact_columns = {c.name for c in ContactLog.__table__.columns}
    assert "turf_id" in contact_columns
    assert not {c for c in contact_columns if "address" in c or "visit" in c}


def test_the_visit_table_in_the_database_matches(engine):
    from sqlalchemy import inspect

    columns = [c["name"] for c in inspect(engine).get_columns("visit")]
    assert sorted(columns) == sorted(
        ["id", "client_uuid", "address_id", "turf_id", "status", "day"]
    )
    assert not [c for c in inspect(engine).get_columns("contact_log") if "address" in c["name"]]


def test_a_log_naming_a_turf_cannot_move_to_another_district(area, session, clock):
    c, h, turf = area["c"], area["h"], area["turf"]
    made = c.post("/contacts", headers=h["vol"], json=_record(clock, turf=turf.code)).json()
    moved = c.patch(f"/contacts/{made['id']}", headers=h["vol"], json={"district_code": "23800001"})
    assert moved.status_code == 422 and moved.json()["detail"].startswith("district_code:")
    assert session.get(ContactLog, made["id"]).district_id == area["d0"].id
    same = c.patch(f"/contacts/{made['id']}", headers=h["vol"], json={"outcome": "refused"})
    assert same.status_code == 200
