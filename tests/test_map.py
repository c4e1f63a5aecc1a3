"""The leads' map: its GeoJSON (scope, progress, coverage, priority, turfs and leases,
addresses, outlines), validators and compression, the chart, and the page's policy."""

import gzip
import re
from datetime import timedelta

import pytest
import shapely

from api.map import service
from api.map.router import STATIC, content_security_policy
from api.models import ElectionResult, Role, TurfLease
from api.settings import Settings
from tests import factories as f


@pytest.fixture
def lan(session, admin, clock):
    """Two kommuner of Jämtland, a förening with districts in Östersund, an uncovered
    district, a district in Åre, turfs, an election result and a campaign with targets."""
    pd = f.partidistrikt(session)
    ost, are = f.kommun(session, pd=pd), f.kommun(session, "2321", "Åre", pd)
    fo = f.forening(session, ost, "S-föreningen <img src=x onerror=alert(1)>")
    d1 = f.district(session, ost, "23800001", 0, fo)
    d2 = f.district(session, ost, "23800002", 1)
    d3 = f.district(session, are, "23210001", 5)
    turfs = f.map_turfs(session, d1, n=2, households=40, knocked=10)
    session.add(
        ElectionResult(
            election="Riksdag 2022",
            district_id=d1.id,
            eligible=1000,
            voted=800,
            valid=790,
            turnout=0.8,
            votes="{}",
        )
    )
    camp = f.campaign(session, pd)
    for d, value in ((d1, 100), (d2, 50), (d3, 70)):
        f.target(session, camp, d, "conversations", value)
    vol = f.user(session, Role.volunteer, fo)
    for _ in range(3):
        f.contact(session, vol, d1, clock.now - timedelta(hours=1))
    lead = f.user(session, Role.forening_lead, fo)
    session.flush()
    return type(
        "Lan",
        (),
        dict(pd=pd, ost=ost, are=are, fo=fo, ds=(d1, d2, d3), turfs=turfs, camp=camp, lead=lead),
    )


def _geojson(client, url, **kwargs):
    response = client.get(url, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/geo+json"
    return response.json()


def test_districts_carry_progress_forening_coverage_and_priority(client, lan):
    data = _geojson(client, f"/map/districts.geojson?campaign={lan.camp.id}")
    by_code = {feat["id"]: feat["properties"] for feat in data["features"]}
    assert set(by_code) == {"23800001", "23800002", "23210001"}
    one = by_code["23800001"]
    assert one["forening"] == lan.fo.name and one["uncovered"] is False
    assert by_code["23800002"]["uncovered"] is True and by_code["23800002"]["forening"] is None
    assert one["coverage"] == {"turfs": 2, "households": 80, "knocked": 20, "share": 0.25}
    assert one["priority"] == pytest.approx(200.0)
    assert by_code["23800002"]["priority"] is None
    # The same figures as the progress route's, with the pace against today's expectation.
    progress = client.get(f"/campaigns/{lan.camp.id}/progress/district/23800001").json()
    for m in progress["metrics"]:
        mine = one["progress"][m["metric"]]
        assert (mine["actual"], mine["target"], mine["status"]) == (
            m["actual"],
            m["target"],
            m["status"],
        )
    conv = one["progress"]["conversations"]
    assert conv["actual"] == 3
    assert conv["pace"] == pytest.approx(0.03 / progress["expected_share"], abs=1e-3)
    assert data["meta"]["expected_share"] == pytest.approx(progress["expected_share"], abs=1e-4)


def test_a_forening_lead_sees_only_their_kommuns_districts(anon_client, session, lan, clock):
    headers = f.auth_headers(session, lan.lead, clock.now)
    data = _geojson(anon_client, "/map/districts.geojson", headers=headers)
    assert {feat["id"] for feat in data["features"]} == {"23800001", "23800002"}
    outlines = _geojson(anon_client, "/map/outlines.geojson", headers=headers)
    assert [
        o["properties"]["code"]
        for o in outlines["features"]
        if o["properties"]["layer"] == "kommun"
    ] == ["2380"]
    # Their own kommun with its turfs, which the page asks for when a district is clicked.
    own = _geojson(anon_client, "/map/districts.geojson?kommun=2380&turfs=true", headers=headers)
    assert {x["properties"]["layer"] for x in own["features"]} == {"district", "turf"}
    # Another kommun named explicitly is answered as if it did not exist.
    response = anon_client.get("/map/districts.geojson?kommun=2321", headers=headers)
    assert response.status_code == 404


def test_turfs_with_coverage_and_the_live_lease(client, session, lan, clock):
    t1, t2 = lan.turfs
    session.add(
        TurfLease(turf_id=t1.id, forening_id=lan.fo.id, expires_at=clock.now + timedelta(days=3))
    )
    # A released lease and an expired one are not live.
    session.add(
        TurfLease(
            turf_id=t2.id,
            forening_id=lan.fo.id,
            expires_at=clock.now + timedelta(days=3),
            released_at=clock.now,
        )
    )
    session.flush()
    data = _geojson(client, "/map/districts.geojson?kommun=2380&turfs=true")
    turfs = {
        x["id"]: x["properties"] for x in data["features"] if x["properties"]["layer"] == "turf"
    }
    assert set(turfs) == {t1.code, t2.code}
    assert turfs[t1.code]["lease"]["forening"] == lan.fo.name
    assert turfs[t1.code]["lease"]["holder"] == "forening"
    assert turfs[t2.code]["lease"] is None
    assert turfs[t1.code]["coverage"]["households_knocked"] == 10
    assert turfs[t1.code]["coverage"]["share"] == 0.25
    districts = [x for x in data["features"] if x["properties"]["layer"] == "district"]
    assert {x["id"] for x in districts} == {"23800001", "23800002"}


def test_a_turfs_addresses_in_walking_order(client, anon_client, session, lan, clock):
    data = _geojson(client, f"/map/turfs/{lan.turfs[0].code}/addresses.geojson")
    assert [a["properties"]["position"] for a in data["features"]] == [1]
    assert data["features"][0]["geometry"]["type"] == "Point"
    assert client.get("/map/turfs/nope/addresses.geojson").status_code == 404
    other = f.partidistrikt(session, "01", "Stockholm")
    outsider = f.user(session, Role.district_admin, other)
    headers = f.auth_headers(session, outsider, clock.now)
    url = f"/map/turfs/{lan.turfs[0].code}/addresses.geojson"
    assert anon_client.get(url, headers=headers).status_code == 404


def test_outlines_are_the_union_of_each_kommuns_districts(client, lan):
    data = _geojson(client, "/map/outlines.geojson?zoom=14")
    layers = {(x["properties"]["layer"], x["properties"].get("code")) for x in data["features"]}
    assert layers == {("kommun", "2380"), ("kommun", "2321"), ("partidistrikt", None)}
    ost = next(x for x in data["features"] if x["properties"].get("code") == "2380")
    shape = shapely.geometry.shape(ost["geometry"])
    union = shapely.union_all(
        [shapely.from_wkb(d.geom_wkb) for d in lan.ds if d.kommun_id == lan.ost.id]
    )
    # Two side-by-side squares become one polygon; simplification moves it by metres only.
    assert shape.geom_type == "Polygon"
    assert shape.symmetric_difference(union).area / union.area < 0.01


def test_etag_answers_304_and_bodies_are_gzipped(client, lan):
    url = f"/map/districts.geojson?campaign={lan.camp.id}&turfs=true"
    first = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert first.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in first.headers["vary"]
    etag = first.headers["etag"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.json() == first.json()


def test_simplification_follows_the_zoom_and_a_changed_district(client, session, lan):
    district = lan.ds[0]
    # A wiggly edge: many vertices a few metres off a straight line.
    xs = [district.min_lon + i * 0.0001 for i in range(101)]
    wiggle = [(x, district.min_lat + (0.00002 if i % 2 else 0)) for i, x in enumerate(xs)]
    poly = shapely.Polygon([*wiggle, (xs[-1], district.max_lat), (xs[0], district.max_lat)])
    district.geom_wkb = shapely.to_wkb(poly)
    district.updated_at = district.updated_at + timedelta(seconds=1)
    session.add(district)
    session.flush()

    def vertices(zoom: int) -> int:
        data = _geojson(client, f"/map/districts.geojson?kommun=2380&zoom={zoom}")
        geometry = next(x for x in data["features"] if x["id"] == district.code)["geometry"]
        return len(geometry["coordinates"][0])

    coarse, fine = vertices(8), vertices(18)
    assert coarse < 10 < fine
    assert service.tolerance_m(8) > service.tolerance_m(18)


def test_the_chart_of_a_unit(client, lan):
    url = f"/map/chart.png?campaign={lan.camp.id}&unit_kind=partidistrikt&unit={lan.pd.id}"
    response = client.get(url)
    assert response.status_code == 200
    assert response.content.startswith(b"\x89PNG")
    missing = client.get(f"/map/chart.png?campaign={lan.camp.id}&unit_kind=kommun&unit=9999")
    assert missing.status_code == 404


def test_the_page_has_a_strict_policy_and_no_inline_code(anon_client, settings):
    response = anon_client.get("/karta")
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "img-src 'self' blob: data: https://tile.openstreetmap.org" in csp
    html = response.text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline script"
    assert not re.search(r"\son[a-z]+=", html), "an inline event handler"
    assert not re.search(r"\sstyle=", html), "an inline style"
    assert 'data-basemap-url="https://tile.openstreetmap.org/{z}/{x}/{y}.png"' in html


def test_the_basemap_is_configurable_and_can_be_disabled(anon_client, settings):
    settings.basemap_url = "https://{s}.tiles.example.org/{z}/{x}/{y}.png"
    csp = anon_client.get("/karta").headers["content-security-policy"]
    assert "img-src 'self' blob: data: https://*.tiles.example.org;" in csp
    settings.basemap_url = ""
    response = anon_client.get("/karta")
    assert "img-src 'self' blob: data:;" in response.headers["content-security-policy"]
    assert 'data-basemap-url=""' in response.text
    assert content_security_policy(Settings(_env_file=None, basemap_url="javascript:x"))


def test_static_files_and_no_way_out_of_them(anon_client):
    js = anon_client.get("/karta/static/karta.js", headers={"Accept-Encoding": "gzip"})
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    assert anon_client.get("/karta/static/vendor/leaflet/leaflet-src.esm.js").status_code == 200
    assert anon_client.get("/karta/static/vendor/leaflet/LICENSE").status_code == 200
    for bad in ("../router.py", "..%2Frouter.py", "vendor/../../service.py", "nope.js"):
        assert anon_client.get(f"/karta/static/{bad}").status_code == 404


def test_the_pages_own_code_writes_no_html_from_data():
    """Names from the database reach the page only through textContent."""
    for path in STATIC.glob("*.js"):
        code = path.read_text()
        assert "innerHTML" not in code and "insertAdjacentHTML" not in code, path.name
        assert "eval(" not in code and "new Function" not in code, path.name


def test_the_pages_own_assets_are_small():
    own = [p for p in STATIC.iterdir() if p.is_file()]
    packed = sum(len(gzip.compress(p.read_bytes())) for p in own)
    assert packed < 100 * 1024
