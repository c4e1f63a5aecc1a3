"""Authorization, generated from the table in api/access.py: every route, anonymous and
every role, against a resource in the caller's own unit and one in another unit."""

import json
import uuid
from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from api.access import ACCESS, ROLES, TARGETS_BY_KIND
from api.auth.service import issue_device_token
from api.main import create_app
from api.members.models import CallerAssignment
from api.models import ForeningKind, Role
from tests import factories as f

OWN, OTHER = 0, 1


def _routes() -> set[tuple[str, str]]:
    paths = create_app().openapi()["paths"]
    return {(method.upper(), path) for path, ops in paths.items() for method in ops}


def test_every_route_is_in_the_table():
    routes = _routes()
    missing = sorted(routes - ACCESS.keys())
    stale = sorted(ACCESS.keys() - routes)
    assert missing == [], f"routes missing from api/access.py: {missing}"
    assert stale == [], f"api/access.py names routes the app does not have: {stale}"


@pytest.fixture
def world(session, clock):
    """Two of everything: side 0 is the callers' own unit, side 1 another partidistrikt."""
    w = SimpleNamespace(
        P=[], K=[], F=[], D=[], Du=[], vol=[], C=[], camp=[], callers={}, devices={}, A=[]
    )
    for pcode, kcode, kname in (("23", "2380", "Östersund"), ("01", "0180", "Stockholm")):
        p = f.partidistrikt(session, pcode, f"Partidistrikt {pcode}")
        k = f.kommun(session, kcode, kname, p)
        fo = f.forening(session, k, f"S-föreningen {kname}")
        d = f.district(session, k, f"{kcode}0001", 0, fo)
        du = f.district(session, k, f"{kcode}0002", 1)
        vol = f.user(session, Role.volunteer, fo)
        w.P.append(p)
        w.K.append(k)
        w.F.append(fo)
        w.D.append(d)
        w.Du.append(du)
        w.vol.append(vol)
        w.C.append(f.contact(session, vol, d, clock.now))
        w.A.append(f.address(session, d))
        camp = f.campaign(session, p)
        f.target(session, camp, k, "conversations", 1000)
        w.camp.append(camp)
        issue_device_token(session=session, user=vol, name="phone", now=clock.now)
    f.members_world(session, w)
    # The side's caller works its förening's follow-ups (members_world) and its call list.
    for side in (OWN, OTHER):
        session.add(
            CallerAssignment(
                user_id=w.caller[side].id, forening_id=w.F[side].id, call_list_id=w.CL[side].id
            )
        )
    units = {"forening_lead": w.F[0], "kommun_lead": w.K[0], "district_admin": w.P[0]}
    for role in ROLES:
        if role == "volunteer":
            who = w.vol[0]
        elif role == "caller":
            who = w.caller[0]
        else:
            who = f.user(session, Role(role), units[role])
        raw, device = issue_device_token(session=session, user=who, name="test", now=clock.now)
        w.callers[role] = ({"Authorization": f"Bearer {raw}"}, device.id)
    # turfs: a free one and one leased to the side's volunteer, in the förening's district
    w.T, w.TL = [], []
    for side in (OWN, OTHER):
        homes = [f.address(session, w.D[side], number=str(n)) for n in (1, 2)]
        w.T.append(f.turf(session, w.D[side], 1, homes[:1]))
        w.TL.append(f.turf(session, w.D[side], 2, homes[1:]))
        f.lease(session, w.TL[side], w.vol[side], clock.now)
    other_device = issue_device_token(session=session, user=w.vol[1], name="x", now=clock.now)
    w.other_device_id = other_device[1].id
    session.flush()
    return w


def _contact_body(w, side, clock):
    return {
        "client_uuid": str(uuid.uuid4()),
        "kind": "door",
        "outcome": "conversation",
        "district_code": w.D[side].code,
        "occurred_at": clock.now.isoformat(),
    }


def _district_file(w, side) -> bytes:
    feature = f.feature(
        f"{w.K[side].code}9999", geometry={"type": "Polygon", "coordinates": f.square(5)}
    )
    return json.dumps({"type": "FeatureCollection", "features": [feature]}).encode()


# (method, path) -> function(world, side, role, clock) -> request kwargs
REQUESTS = {
    ("GET", "/health"): lambda w, s, r, c: {"url": "/health"},
    ("POST", "/auth/code"): lambda w, s, r, c: {
        "url": "/auth/code",
        "json": {"email": "nobody@example.org"},
    },
    ("POST", "/auth/token"): lambda w, s, r, c: {
        "url": "/auth/token",
        "data": {"username": w.vol[s].email, "password": "000000"},
    },
    ("GET", "/me"): lambda w, s, r, c: {"url": "/me"},
    ("GET", "/me/devices"): lambda w, s, r, c: {"url": "/me/devices"},
    ("PUT", "/me/preferences"): lambda w, s, r, c: {
        "url": "/me/preferences",
        "json": {"nightly_email": False},
    },
    ("DELETE", "/me/devices/{device_id}"): lambda w, s, r, c: {
        "url": "/me/devices/"
        + str(w.callers[r][1] if s == OWN and r in w.callers else w.other_device_id)
    },
    ("POST", "/users"): lambda w, s, r, c: {
        "url": "/users",
        "json": {
            "email": f"ny-{uuid.uuid4().hex[:8]}@example.org",
            "display_name": "Ny",
            "role": "volunteer",
            "unit_kind": "forening",
            "unit_id": w.F[s].id,
        },
    },
    ("GET", "/users"): lambda w, s, r, c: {"url": "/users"},
    ("GET", "/users/{user_id}"): lambda w, s, r, c: {"url": f"/users/{w.vol[s].id}"},
    ("GET", "/users/{user_id}/devices"): lambda w, s, r, c: {
        "url": f"/users/{w.vol[s].id}/devices"
    },
    ("POST", "/users/{user_id}/devices/revoke"): lambda w, s, r, c: {
        "url": f"/users/{w.vol[s].id}/devices/revoke"
    },
    ("GET", "/partidistrikt"): lambda w, s, r, c: {"url": "/partidistrikt"},
    ("POST", "/partidistrikt"): lambda w, s, r, c: {
        "url": "/partidistrikt",
        "json": {"code": "24", "name": "Hallands län"},
    },
    ("GET", "/partidistrikt/{partidistrikt_id}"): lambda w, s, r, c: {
        "url": f"/partidistrikt/{w.P[s].id}"
    },
    ("PATCH", "/partidistrikt/{partidistrikt_id}"): lambda w, s, r, c: {
        "url": f"/partidistrikt/{w.P[s].id}",
        "json": {"name": "Nytt namn"},
    },
    ("GET", "/kommuner"): lambda w, s, r, c: {"url": "/kommuner"},
    ("POST", "/kommuner"): lambda w, s, r, c: {
        "url": "/kommuner",
        "json": {"code": ("2399", "0199")[s], "name": "Ny kommun", "partidistrikt_id": w.P[s].id},
    },
    ("GET", "/kommuner/{code}"): lambda w, s, r, c: {"url": f"/kommuner/{w.K[s].code}"},
    ("PATCH", "/kommuner/{code}"): lambda w, s, r, c: {
        "url": f"/kommuner/{w.K[s].code}",
        "json": {"name": "Nytt namn"},
    },
    ("GET", "/foreningar"): lambda w, s, r, c: {"url": "/foreningar"},
    ("POST", "/foreningar"): lambda w, s, r, c: {
        "url": "/foreningar",
        "json": {
            "name": "S-föreningen Ny",
            "kind": ForeningKind.geographic,
            "kommun_id": w.K[s].id,
        },
    },
    ("GET", "/foreningar/{forening_id}"): lambda w, s, r, c: {"url": f"/foreningar/{w.F[s].id}"},
    ("PATCH", "/foreningar/{forening_id}"): lambda w, s, r, c: {
        "url": f"/foreningar/{w.F[s].id}",
        "json": {"name": "S-föreningen Omdöpt"},
    },
    ("POST", "/districts/import"): lambda w, s, r, c: {
        "url": "/districts/import",
        "files": {"file": ("d.geojson", _district_file(w, s), "x")},
    },
    ("GET", "/districts"): lambda w, s, r, c: {"url": "/districts"},
    ("GET", "/districts.geojson"): lambda w, s, r, c: {"url": "/districts.geojson"},
    ("GET", "/districts/coverage"): lambda w, s, r, c: {"url": "/districts/coverage"},
    ("POST", "/districts/assignments"): lambda w, s, r, c: {
        "url": "/districts/assignments",
        "files": {
            "file": (
                "a.csv",
                f"district_code,forening\n{w.Du[s].code},{w.F[s].id}\n".encode(),
                "text/csv",
            )
        },
    },
    ("GET", "/districts/{code}"): lambda w, s, r, c: {"url": f"/districts/{w.D[s].code}"},
    ("GET", "/districts/{code}/geojson"): lambda w, s, r, c: {
        "url": f"/districts/{w.D[s].code}/geojson"
    },
    ("PUT", "/districts/{code}/forening"): lambda w, s, r, c: {
        "url": f"/districts/{w.Du[s].code}/forening",
        "json": {"forening_id": w.F[s].id},
    },
    ("GET", "/districts/{code}/assignments"): lambda w, s, r, c: {
        "url": f"/districts/{w.D[s].code}/assignments"
    },
    ("GET", "/kommuner/{code}/uncovered-districts"): lambda w, s, r, c: {
        "url": f"/kommuner/{w.K[s].code}/uncovered-districts"
    },
    ("POST", "/contacts"): lambda w, s, r, c: {"url": "/contacts", "json": _contact_body(w, s, c)},
    ("POST", "/contacts/batch"): lambda w, s, r, c: {
        "url": "/contacts/batch",
        "json": {"records": [_contact_body(w, s, c)]},
    },
    ("GET", "/contacts"): lambda w, s, r, c: {"url": "/contacts"},
    ("GET", "/contacts/{contact_id}"): lambda w, s, r, c: {"url": f"/contacts/{w.C[s].id}"},
    ("PATCH", "/contacts/{contact_id}"): lambda w, s, r, c: {
        "url": f"/contacts/{w.C[s].id}",
        "json": {"outcome": "refused"},
    },
    ("POST", "/contacts/{contact_id}/withdraw"): lambda w, s, r, c: {
        "url": f"/contacts/{w.C[s].id}/withdraw"
    },
    ("GET", "/contacts/{contact_id}/audit"): lambda w, s, r, c: {
        "url": f"/contacts/{w.C[s].id}/audit"
    },
    ("GET", "/campaigns"): lambda w, s, r, c: {"url": "/campaigns"},
    ("POST", "/campaigns"): lambda w, s, r, c: {
        "url": "/campaigns",
        "json": {
            "name": "Valet",
            "partidistrikt_id": w.P[s].id,
            "starts_on": "2026-01-01",
            "ends_on": "2026-09-13",
        },
    },
    ("GET", "/campaigns/{campaign_id}"): lambda w, s, r, c: {"url": f"/campaigns/{w.camp[s].id}"},
    ("GET", "/campaigns/{campaign_id}/targets"): lambda w, s, r, c: {
        "url": f"/campaigns/{w.camp[s].id}/targets"
    },
    ("PUT", "/campaigns/{campaign_id}/targets"): lambda w, s, r, c: {
        "url": f"/campaigns/{w.camp[s].id}/targets",
        "json": {
            "unit_kind": "forening",
            "unit_id": w.F[s].id,
            "metric": "conversations",
            "value": 100,
        },
    },
    ("POST", "/campaigns/{campaign_id}/apportion"): lambda w, s, r, c: {
        "url": f"/campaigns/{w.camp[s].id}/apportion",
        "json": {
            "unit_kind": "kommun",
            "unit_id": w.K[s].id,
            "metric": "conversations",
            "basis": "even",
        },
    },
    ("GET", "/campaigns/{campaign_id}/progress/{unit_kind}/{unit}"): lambda w, s, r, c: {
        "url": f"/campaigns/{w.camp[s].id}/progress/forening/{w.F[s].id}"
    },
    ("GET", "/campaigns/{campaign_id}/progress/{unit_kind}/{unit}/children"): lambda w, s, r, c: {
        "url": f"/campaigns/{w.camp[s].id}/progress/forening/{w.F[s].id}/children"
    },
    ("GET", "/campaigns/{campaign_id}/export"): lambda w, s, r, c: {
        "url": f"/campaigns/{w.camp[s].id}/export"
    },
    ("POST", "/addresses/import"): lambda w, s, r, c: {
        "url": "/addresses/import",
        "params": {"kommun": w.K[s].code},
        "files": {"file": ("a.csv", b"adressomrade,lon,lat\nStorgatan,14.605,63.175\n", "x")},
    },
    ("GET", "/districts/{code}/addresses"): lambda w, s, r, c: {
        "url": f"/districts/{w.D[s].code}/addresses"
    },
    ("PATCH", "/addresses/{address_id}"): lambda w, s, r, c: {
        "url": f"/addresses/{w.A[s].id}",
        "json": {"households": 3},
    },
    ("GET", "/kommuner/{code}/priorities"): lambda w, s, r, c: {
        "url": f"/kommuner/{w.K[s].code}/priorities"
    },
    ("GET", "/topics"): lambda w, s, r, c: {"url": "/topics"},
    ("POST", "/topics"): lambda w, s, r, c: {
        "url": "/topics",
        "json": {"code": "culture", "label": "Kultur"},
    },
    ("PATCH", "/topics/{code}"): lambda w, s, r, c: {
        "url": "/topics/jobs",
        "json": {"label": "Arbete"},
    },
    # the volunteers' app
    ("GET", "/app/"): lambda w, s, r, c: {"url": "/app/"},
    ("GET", "/app/t/{link_code}"): lambda w, s, r, c: {"url": f"/app/t/{w.T[s].link_code}"},
    ("GET", "/app/manifest.webmanifest"): lambda w, s, r, c: {"url": "/app/manifest.webmanifest"},
    ("GET", "/app/sw.js"): lambda w, s, r, c: {"url": "/app/sw.js"},
    ("GET", "/app/static/{name}"): lambda w, s, r, c: {"url": "/app/static/main.js"},
    ("GET", "/app/api/turfs/{code}/doors"): lambda w, s, r, c: {
        "url": f"/app/api/turfs/{w.T[s].code}/doors"
    },
    # turfs: T is free, TL leased to the side's volunteer
    ("GET", "/turfs"): lambda w, s, r, c: {"url": f"/turfs?district={w.D[s].code}"},
    ("GET", "/me/turfs"): lambda w, s, r, c: {"url": "/me/turfs"},
    ("GET", "/turfs/{code}"): lambda w, s, r, c: {"url": f"/turfs/{w.T[s].code}"},
    ("POST", "/turfs/{code}/lease"): lambda w, s, r, c: {
        "url": f"/turfs/{w.T[s].code}/lease",
        "json": {"user_id": w.vol[s].id},
    },
    ("DELETE", "/turfs/{code}/lease"): lambda w, s, r, c: {"url": f"/turfs/{w.TL[s].code}/lease"},
    ("POST", "/turfs/claim/{link_code}"): lambda w, s, r, c: {
        "url": f"/turfs/claim/{w.T[s].link_code}"
    },
    ("GET", "/turfs/{code}/qr.svg"): lambda w, s, r, c: {"url": f"/turfs/{w.T[s].code}/qr.svg"},
    ("GET", "/turfs/{code}/walklist.csv"): lambda w, s, r, c: {
        "url": f"/turfs/{w.T[s].code}/walklist.csv"
    },
    ("GET", "/turfs/{code}/walklist"): lambda w, s, r, c: {"url": f"/turfs/{w.T[s].code}/walklist"},
    ("GET", "/karta"): lambda w, s, r, c: {"url": "/karta"},
    ("GET", "/karta/static/{path}"): lambda w, s, r, c: {"url": "/karta/static/karta.js"},
    ("GET", "/map/districts.geojson"): lambda w, s, r, c: {
        "url": f"/map/districts.geojson?campaign={w.camp[s].id}&turfs=true"
    },
    ("GET", "/map/turfs/{code}/addresses.geojson"): lambda w, s, r, c: {
        "url": f"/map/turfs/{w.T[s].code}/addresses.geojson"
    },
    ("GET", "/map/outlines.geojson"): lambda w, s, r, c: {"url": "/map/outlines.geojson"},
    ("GET", "/map/chart.png"): lambda w, s, r, c: {
        "url": f"/map/chart.png?campaign={w.camp[s].id}&unit_kind=forening&unit={w.F[s].id}"
    },
    ("POST", "/turfs/cut"): lambda w, s, r, c: {
        "url": "/turfs/cut",
        "json": {"district": w.D[s].code},
    },
    # members
    ("POST", "/members/import"): lambda w, s, r, c: {
        "url": "/members/import",
        "files": {
            "file": (
                "m.csv",
                "member_number,name,phone,email,forening,joined_on,status\n"
                f"X{s},Ny Medlem,,,{w.F[s].id},2026-04-01,active\n".encode(),
                "text/csv",
            )
        },
    },
    ("GET", "/members"): lambda w, s, r, c: {"url": f"/members?forening_id={w.F[s].id}"},
    ("GET", "/members/followups"): lambda w, s, r, c: {
        "url": f"/members/followups?forening_id={w.F[s].id}"
    },
    ("GET", "/members/audit"): lambda w, s, r, c: {
        "url": f"/members/audit?forening_id={w.F[s].id}"
    },
    ("GET", "/members/{member_id}"): lambda w, s, r, c: {"url": f"/members/{w.M[s].id}"},
    ("PATCH", "/members/{member_id}"): lambda w, s, r, c: {
        "url": f"/members/{w.M[s].id}",
        "json": {"do_not_call": True},
    },
    ("GET", "/members/{member_id}/export"): lambda w, s, r, c: {
        "url": f"/members/{w.M[s].id}/export"
    },
    ("POST", "/members/{member_id}/erase"): lambda w, s, r, c: {
        "url": f"/members/{w.M[s].id}/erase"
    },
    ("POST", "/member-tasks/{task_id}/claim"): lambda w, s, r, c: {
        "url": f"/member-tasks/{w.MT[s].id}/claim"
    },
    ("POST", "/member-tasks/{task_id}/outcome"): lambda w, s, r, c: {
        "url": f"/member-tasks/{w.MT[s].id}/outcome",
        "json": {"outcome": "reached"},
    },
    ("GET", "/callers"): lambda w, s, r, c: {"url": f"/callers?forening_id={w.F[s].id}"},
    ("POST", "/callers"): lambda w, s, r, c: {
        "url": "/callers",
        "json": {"user_id": w.caller[s].id, "forening_id": w.F[s].id, "call_list_id": w.CL[s].id},
    },
    ("DELETE", "/callers/{assignment_id}"): lambda w, s, r, c: {"url": f"/callers/{w.CA[s].id}"},
    ("POST", "/call-lists"): lambda w, s, r, c: {
        "url": "/call-lists",
        "json": {"name": "Ring alla", "forening_id": w.F[s].id, "caller_ids": [w.caller[s].id]},
    },
    ("GET", "/call-lists/{call_list_id}"): lambda w, s, r, c: {"url": f"/call-lists/{w.CL[s].id}"},
    ("GET", "/call-lists/{call_list_id}/entries"): lambda w, s, r, c: {
        "url": f"/call-lists/{w.CL[s].id}/entries"
    },
    ("GET", "/courses"): lambda w, s, r, c: {"url": "/courses"},
    ("POST", "/courses"): lambda w, s, r, c: {
        "url": "/courses",
        "json": {
            "name": "Grundkurs steg 1",
            "starts_on": "2026-06-01",
            "place": "Folkets hus",
            "kommun_id": w.K[s].id,
        },
    },
    ("POST", "/courses/{course_id}/offers"): lambda w, s, r, c: {
        "url": f"/courses/{w.CO[s].id}/offers",
        "json": {"member_ids": [w.M[s].id]},
    },
    ("POST", "/courses/{course_id}/attendance"): lambda w, s, r, c: {
        "url": f"/courses/{w.CO[s].id}/attendance",
        "json": {"member_ids": [w.M[s].id]},
    },
    ("GET", "/campaigns/{campaign_id}/members-progress/{unit_kind}/{unit}"): lambda w, s, r, c: {
        "url": f"/campaigns/{w.camp[s].id}/members-progress/forening/{w.F[s].id}"
    },
    ("GET", "/campaigns/{campaign_id}/members-export"): lambda w, s, r, c: {
        "url": f"/campaigns/{w.camp[s].id}/members-export"
    },
}


def test_every_table_row_has_a_request():
    assert REQUESTS.keys() == ACCESS.keys()


@contextmanager
def _rolled_back(session):
    """Undo whatever one request did, so that every case starts from the same world."""
    savepoint = session.connection().begin_nested()
    try:
        yield
    finally:
        savepoint.rollback()
        session.expire_all()


def _check(anon_client, session, world, clock, method, expect, build) -> list[str]:
    failures = []
    cases = [("anonymous", OWN, expect.anonymous)] + [
        (role, side, getattr(expect, role)[side]) for role in ROLES for side in (OWN, OTHER)
    ]
    for role, side, wanted in cases:
        kwargs = build(world, side, role, clock)
        headers = {} if role == "anonymous" else world.callers[role][0]
        with _rolled_back(session):
            response = anon_client.request(method, headers=headers, **kwargs)
        if response.status_code != wanted:
            failures.append(
                f"{role} {('own', 'other')[side]}: {response.status_code} (expected {wanted}) "
                f"{response.text[:200]}"
            )
    return failures


@pytest.mark.parametrize("route", sorted(ACCESS), ids=lambda r: f"{r[0]} {r[1]}")
def test_route_authorization(route, anon_client, session, world, clock):
    failures = _check(anon_client, session, world, clock, route[0], ACCESS[route], REQUESTS[route])
    assert failures == []


_TARGET_UNITS = {"partidistrikt": "P", "kommun": "K", "forening": "F", "district": "D"}


@pytest.mark.parametrize("kind", sorted(TARGETS_BY_KIND))
def test_target_setting_for_every_unit_kind(kind, anon_client, session, world, clock):
    """The table's one request sets a förening's target; the other kinds are checked here,
    so that the code and TARGETS_BY_KIND cannot disagree unnoticed."""

    def build(w, s, r, c):
        unit = getattr(w, _TARGET_UNITS[kind])[s]
        return {
            "url": f"/campaigns/{w.camp[s].id}/targets",
            "json": {"unit_kind": kind, "unit_id": unit.id, "metric": "doors", "value": 5},
        }

    assert _check(anon_client, session, world, clock, "PUT", TARGETS_BY_KIND[kind], build) == []


# Member lists whose own-unit answer is checked item by item: the key naming the member.
MEMBER_LISTS = {
    ("GET", "/members"): "id",
    ("GET", "/members/followups"): "member_id",
    ("GET", "/call-lists/{call_list_id}/entries"): "member_id",
    ("GET", "/members/audit"): "member_id",  # after the lists above wrote their entries
}


def test_member_lists_show_the_own_unit_and_nothing_of_the_other(
    anon_client, session, world, clock
):
    """A 200 is not enough for a list: it must hold the own side's member and never the
    other side's."""
    checked = 0
    for route, key in MEMBER_LISTS.items():
        for role in ROLES:
            if getattr(ACCESS[route], role)[OWN] != 200:
                continue
            kwargs = REQUESTS[route](world, OWN, role, clock)
            response = anon_client.request(route[0], headers=world.callers[role][0], **kwargs)
            ids = {item[key] for item in response.json()["items"]}
            assert world.M[OWN].id in ids, (route, role)
            assert world.M[OTHER].id not in ids, (route, role)
            checked += 1
    assert checked == 3 + 4 + 4 + 3  # three leads each; the caller on the two task lists
