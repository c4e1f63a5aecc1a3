"""Partidistrikt, kommuner and s-föreningar over the API."""

import pytest

from api.auth.scope import Scope
from api.errors import Conflict
from api.models import ForeningKind
from api.org.schemas import PartidistriktCreate
from api.org.service import create_partidistrikt
from tests import factories as f


def test_partidistrikt_read_update_list_within_scope(client, session, admin):
    own = admin.unit_id
    other = f.partidistrikt(session, "01", "Stockholms län")
    assert client.get(f"/partidistrikt/{own}").json()["name"] == "Jämtlands län"
    assert client.get(f"/partidistrikt/{other.id}").status_code == 403
    patched = client.patch(f"/partidistrikt/{own}", json={"name": "S i Jämtlands län"})
    assert patched.json()["name"] == "S i Jämtlands län"
    assert client.patch(f"/partidistrikt/{other.id}", json={"name": "X"}).status_code == 403
    page = client.get("/partidistrikt").json()
    assert (page["total"], [p["code"] for p in page["items"]]) == (1, ["23"])
    assert client.get("/partidistrikt", params={"q": "stock"}).json()["total"] == 0
    assert client.get("/partidistrikt/999999").status_code == 404


def test_partidistrikt_are_created_by_operators(client, session):
    bad = client.post("/partidistrikt", json={"code": "2", "name": "X"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == ["body", "code"]
    extra = client.post("/partidistrikt", json={"code": "24", "name": "C", "colour": "red"})
    assert extra.status_code == 422 and extra.json()["errors"][0]["loc"] == ["body", "colour"]
    refused = client.post("/partidistrikt", json={"code": "24", "name": "Hallands län"})
    assert refused.status_code == 403 and "knacka import-kommuner" in refused.json()["detail"]
    operator = Scope.operator(session)
    made = create_partidistrikt(
        session=session, scope=operator, data=PartidistriktCreate(code="24", name="Halland")
    )
    assert made.id is not None
    with pytest.raises(Conflict, match="code: a partidistrikt with code 24 already exists"):
        create_partidistrikt(
            session=session, scope=operator, data=PartidistriktCreate(code="24", name="Y")
        )


def test_kommun_crud_filter_and_errors(client, session):
    jamt = f.partidistrikt(session, "23", "Jämtlands län")
    sthlm = f.partidistrikt(session, "01", "Stockholms län")
    body = {"code": "2380", "name": "Östersund", "partidistrikt_id": jamt.id}
    assert client.post("/kommuner", json=body).status_code == 201
    outside = client.post(
        "/kommuner", json={"code": "0180", "name": "Stockholm", "partidistrikt_id": sthlm.id}
    )
    assert outside.status_code == 403
    f.kommun(session, "0180", "Stockholm", sthlm)
    assert client.post("/kommuner", json=body).status_code == 409
    missing_parent = client.post(
        "/kommuner", json={"code": "2321", "name": "Åre", "partidistrikt_id": 999999}
    )
    assert missing_parent.status_code == 422
    assert missing_parent.json()["detail"].startswith("partidistrikt_id:")
    bad_code = client.post(
        "/kommuner", json={"code": "23x0", "name": "X", "partidistrikt_id": jamt.id}
    )
    assert bad_code.status_code == 422 and bad_code.json()["errors"][0]["loc"] == ["body", "code"]
    listed = client.get("/kommuner", params={"partidistrikt_id": jamt.id}).json()
    assert [k["code"] for k in listed["items"]] == ["2380"]
    assert client.get("/kommuner/2380").json()["name"] == "Östersund"
    assert client.patch("/kommuner/2380", json={"name": "Östersunds kommun"}).json()["name"] == (
        "Östersunds kommun"
    )
    assert client.get("/kommuner/9999").status_code == 404


def test_forening_crud_filter_and_rules(client, session):
    ost = f.kommun(session)
    are = f.kommun(session, "2321", "Åre")
    made = client.post(
        "/foreningar",
        json={"name": "S-föreningen Frösön", "kind": "geographic", "kommun_id": ost.id},
    )
    assert made.status_code == 201 and made.json()["district_count"] == 0
    fid = made.json()["id"]
    client.post(
        "/foreningar",
        json={"name": "S-klubben Östersunds sjukhus", "kind": "workplace", "kommun_id": ost.id},
    )
    client.post(
        "/foreningar",
        json={"name": "S-föreningen Järpen", "kind": "geographic", "kommun_id": are.id},
    )
    dup = client.post(
        "/foreningar",
        json={"name": "S-föreningen Frösön", "kind": "geographic", "kommun_id": ost.id},
    )
    assert dup.status_code == 409 and dup.json()["detail"].startswith("name:")
    bad_kind = client.post("/foreningar", json={"name": "X", "kind": "club", "kommun_id": ost.id})
    assert bad_kind.status_code == 422 and bad_kind.json()["errors"][0]["loc"] == ["body", "kind"]
    assert client.get("/foreningar", params={"kommun_id": ost.id}).json()["total"] == 2
    workplace = client.get("/foreningar", params={"kind": "workplace"}).json()["items"]
    assert [w["name"] for w in workplace] == ["S-klubben Östersunds sjukhus"]
    assert client.get("/foreningar", params={"q": "järp"}).json()["total"] == 1
    renamed = client.patch(f"/foreningar/{fid}", json={"name": "S-föreningen Frösön-Hornsberg"})
    assert renamed.json()["name"] == "S-föreningen Frösön-Hornsberg"


def test_forening_holding_districts_cannot_become_workplace_club(client, session):
    ost = f.kommun(session)
    geo = f.forening(session, ost)
    district = f.district_features(n=1)
    assert f.upload_districts(client, district).status_code == 200
    client.put(
        f"/districts/{district[0]['properties']['Lkfv']}/forening", json={"forening_id": geo.id}
    )
    refused = client.patch(f"/foreningar/{geo.id}", json={"kind": ForeningKind.workplace})
    assert refused.status_code == 409 and "holds 1 districts" in refused.json()["detail"]
    assert client.get(f"/foreningar/{geo.id}").json()["district_count"] == 1
