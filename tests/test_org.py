"""Partidistrikt, kommuner and s-föreningar over the API."""

import csv
import io

import pytest
from sqlmodel import select

from api.auth.scope import Scope
from api.errors import Conflict, Unprocessable
from api.models import ForeningKind, Kommun
from api.org.kommunlist import check_kommun_rows, shipped_kommun_csv
from api.org.schemas import PartidistriktCreate
from api.org.service import create_partidistrikt, import_kommuner_csv
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


CONTROL_NAMES = ["Rad1\nRad2", "Nul\x00byte", "Tab\tinside", "Zero\u200bwidth", "Sep\u2028line"]


@pytest.mark.parametrize("name", CONTROL_NAMES, ids=["newline", "nul", "tab", "zwsp", "u2028"])
def test_names_with_control_characters_are_refused(client, session, name):
    ost = f.kommun(session)
    made = client.post(
        "/foreningar", json={"name": name, "kind": "geographic", "kommun_id": ost.id}
    )
    assert made.status_code == 422, made.text
    assert made.json()["errors"][0]["loc"] == ["body", "name"]
    assert "control character" in made.json()["errors"][0]["message"]
    geo = f.forening(session, ost)
    renamed = client.patch(f"/foreningar/{geo.id}", json={"name": name})
    assert renamed.status_code == 422 and renamed.json()["errors"][0]["loc"] == ["body", "name"]
    kommun = client.patch("/kommuner/2380", json={"name": name})
    assert kommun.status_code == 422 and kommun.json()["errors"][0]["loc"] == ["body", "name"]


def test_names_are_stripped_and_inner_spaces_kept(client, session):
    ost = f.kommun(session)
    made = client.post(
        "/foreningar",
        json={"name": "  S-föreningen Lit  ", "kind": "geographic", "kommun_id": ost.id},
    )
    assert made.status_code == 201 and made.json()["name"] == "S-föreningen Lit"


@pytest.mark.parametrize("code", ["٢٣٨٠", "２３８０", "238", "23800", " 2380"])
def test_kommun_codes_are_four_ascii_digits(client, session, code):
    jamt = f.partidistrikt(session)
    r = client.post("/kommuner", json={"code": code, "name": "X", "partidistrikt_id": jamt.id})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == ["body", "code"]


def test_shipped_kommun_list_is_scbs_290_kommuner_in_21_lan():
    rows = list(csv.DictReader(io.StringIO(shipped_kommun_csv())))
    codes = [r["municipality_code"] for r in rows]
    assert len(codes) == 290 and len(set(codes)) == 290
    assert all(len(c) == 4 and c.isascii() and c.isdigit() for c in codes)
    lan = {r["county_code"]: r["county_name"] for r in rows}
    assert len(lan) == 21 and all(len(c) == 2 and c.isascii() and c.isdigit() for c in lan)
    assert all(name.endswith(" län") for name in lan.values())
    assert all(r["municipality_code"][:2] == r["county_code"] for r in rows)
    named = {r["municipality_code"]: r["municipality_name_short"] for r in rows}
    assert (named["0180"], named["1480"], named["1280"], named["2380"], named["2584"]) == (
        "Stockholm",
        "Göteborg",
        "Malmö",
        "Östersund",
        "Kiruna",
    )
    assert (lan["01"], lan["23"], lan["25"]) == (
        "Stockholms län",
        "Jämtlands län",
        "Norrbottens län",
    )
    assert (
        check_kommun_rows(
            rows,
            code="municipality_code",
            name="municipality_name_short",
            lan_code="county_code",
            lan_name="county_name",
        )
        == []
    )


KOMMUN_HEADER = "municipality_code,municipality_name_short,county_code,county_name\n"


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ("٢٣٨٠,Östersund,23,Jämtlands län", "municipality_code", "4 ASCII digits"),
        ('2380,"Öster\nsund",23,Jämtlands län', "municipality_name_short", "U+000A"),
        ("2380,Öster\x00sund,23,Jämtlands län", "municipality_name_short", "U+0000"),
        ("2380,Östersund,2x,Jämtlands län", "county_code", "2 ASCII digits"),
        ("2380,Östersund,24,Västerbottens län", "municipality_code", "does not lie in län 24"),
        ("2380,,23,Jämtlands län", "municipality_name_short", "is empty"),
    ],
)
def test_kommun_csv_rows_are_checked_like_the_api(session, row, field, message):
    good = "2321,Åre,23,Jämtlands län\n"
    with pytest.raises(Unprocessable) as refused:
        import_kommuner_csv(session=session, text=KOMMUN_HEADER + good + row + "\n")
    (error,) = refused.value.details
    assert (error["line"], error["field"]) == (3, field) and message in error["message"]
    assert session.exec(select(Kommun)).all() == []


def test_every_body_that_takes_a_name_refuses_control_characters(client, session, admin):
    """Display names end up in email headers; campaign names in subjects and exports."""
    ost = f.kommun(session)
    frosön = f.forening(session, ost)
    invited = client.post(
        "/users",
        json={"email": "ny@example.org", "display_name": "Anna\r\nBcc: x", "unit_id": frosön.id},
    )
    assert invited.status_code == 422
    assert invited.json()["errors"][0]["loc"] == ["body", "display_name"]
    campaign = {
        "name": "Valåret\n2026",
        "partidistrikt_id": admin.unit_id,
        "starts_on": "2026-01-01",
        "ends_on": "2026-09-13",
    }
    made = client.post("/campaigns", json=campaign)
    assert made.status_code == 422 and made.json()["errors"][0]["loc"] == ["body", "name"]
    assert client.post("/campaigns", json=campaign | {"name": "Valåret 2026"}).status_code == 201


def test_units_under_lists_a_level_in_order_and_takes_only_its_own_columns(session):
    from api.models import District, UnitKind
    from api.org import tree

    pd = f.partidistrikt(session)
    f.kommun(session, "2380", "Östersund", pd)
    f.kommun(session, "2321", "Åre", pd)
    rows = tree.units_under(
        session, UnitKind.kommun, UnitKind.partidistrikt, [pd.id], columns=[Kommun.code]
    )
    assert [r.code for r in rows] == ["2321", "2380"]
    # a column of another table would have been read from the kommun table
    with pytest.raises(ValueError, match="attributes of Kommun"):
        tree.units_under(
            session, UnitKind.kommun, UnitKind.partidistrikt, [pd.id], columns=[District.code]
        )
