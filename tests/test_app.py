"""The volunteers' app as the server sees it: its files (open, under a strict CSP, only the
app's own), the map library it shares with the leads' map, the service worker's versioned
cache, and a turf's doors in walking order with each one's last visit and the turf's
polygon, for whoever sees the turf."""

import uuid
from datetime import date

import pytest
import shapely

from api.app.router import content_security_policy
from api.map.router import LEAFLET
from api.models import Role, Visit, VisitStatus
from tests import factories as f


@pytest.fixture
def field(anon_client, session, clock):
    """A volunteer of Östersund, a turf of their kommun and one of another partidistrikt."""
    k = f.kommun(session)
    fo = f.forening(session, k)
    d = f.district(session, k, "23800001", 0, fo)
    other_k = f.kommun(session, "0180", "Stockholm", f.partidistrikt(session, "01", "Stockholm"))
    other_d = f.district(session, other_k, "01800001", 3)
    vol = f.user(session, Role.volunteer, fo)
    anon_client.headers.update(f.auth_headers(session, vol, clock.now))
    return {
        "client": anon_client,
        "turf": f.app_turf(session, d, addresses=4),
        "other": f.app_turf(session, other_d),
    }


@pytest.mark.parametrize(
    "path",
    ["/app/", "/app/t/ABC123", "/app/manifest.webmanifest", "/app/sw.js", "/app/static/main.js"],
)
def test_app_files_are_open_and_under_a_strict_csp(anon_client, settings, path):
    response = anon_client.get(path)
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert csp == content_security_policy(settings)
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert "script-src 'self';" in csp and "style-src 'self';" in csp
    assert "worker-src 'self'" in csp


def test_tiles_come_from_the_leads_maps_basemap_and_nowhere_else(anon_client, settings):
    csp = anon_client.get("/app/").headers["content-security-policy"]
    assert "img-src 'self' data: https://tile.openstreetmap.org;" in csp
    settings.basemap_url = "https://{s}.tiles.example.org/{z}/{x}/{y}.png"
    settings.basemap_attribution = '<img src=x onerror="alert(1)">'
    response = anon_client.get("/app/")
    assert (
        "img-src 'self' data: https://*.tiles.example.org;"
        in response.headers["content-security-policy"]
    )
    assert 'data-basemap-url="https://{s}.tiles.example.org/{z}/{x}/{y}.png"' in response.text
    # The attribution is an attribute's text, never markup of the page.
    assert "<img" not in response.text and "&lt;img src=x" in response.text
    settings.basemap_url = ""
    response = anon_client.get("/app/")
    assert "img-src 'self' data:;" in response.headers["content-security-policy"]
    assert 'data-basemap-url=""' in response.text


def test_the_map_library_is_the_leads_maps_one_copy(anon_client):
    page = anon_client.get("/app/").text
    js, css = LEAFLET
    assert js.startswith("/karta/static/vendor/leaflet/") and js.endswith(".js")
    assert f'<link rel="modulepreload" id="map-library" href="{js}">' in page
    assert f'<link rel="stylesheet" href="{css}">' in page
    for url, path in LEAFLET.items():
        got = anon_client.get(url)
        assert got.status_code == 200 and got.content == path.read_bytes()
    # not a second copy under the app's own files
    assert anon_client.get("/app/static/leaflet-src.esm.js").status_code == 404


def test_app_page_has_no_inline_script_and_the_root_redirects(anon_client):
    page = anon_client.get("/app/").text
    assert '<script type="module" src="/app/static/main.js"></script>' in page
    assert "<script>" not in page and "style=" not in page
    assert anon_client.get("/app", follow_redirects=False).headers["location"] == "/app/"


def test_service_worker_caches_a_versioned_shell_in_its_scope(anon_client):
    response = anon_client.get("/app/sw.js")
    assert response.headers["service-worker-allowed"] == "/app/"
    body = response.text
    assert "__VERSION__" not in body and "__ASSETS__" not in body
    assert '"/app/static/main.js"' in body and '"/app/static/icon-192.png"' in body
    assert '"/app/static/map.js"' in body
    # the map library too, from its one URL, so that the walk list's map opens offline
    for url in LEAFLET:
        assert f'"{url}"' in body
    version = body.split('const CACHE = "knacka-app-')[1].split('"')[0]
    assert len(version) == 12
    manifest = anon_client.get("/app/manifest.webmanifest").json()
    assert manifest["scope"] == manifest["start_url"] == "/app/"
    for icon in manifest["icons"]:
        got = anon_client.get(icon["src"])
        assert got.status_code == 200 and got.headers["content-type"] == "image/png"


def test_static_files_are_gzipped_and_revalidated(anon_client):
    plain = anon_client.get("/app/static/main.js", headers={"Accept-Encoding": "identity"})
    packed = anon_client.get("/app/static/main.js", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip" and packed.content == plain.content
    assert int(packed.headers["content-length"]) < len(plain.content) / 2
    assert packed.headers["content-type"] == "text/javascript; charset=utf-8"
    etag = plain.headers["etag"]
    again = anon_client.get("/app/static/main.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize("name", ["../router.py", "..%2Frouter.py", "nope.js", "%2e%2e"])
def test_static_route_serves_only_the_apps_files(anon_client, name):
    assert anon_client.get(f"/app/static/{name}").status_code == 404


def test_turf_doors_in_walking_order_with_the_last_visit(field, session):
    turf = field["turf"]
    doors = field["client"].get(f"/app/api/turfs/{turf.code}/doors").json()
    assert doors["district_code"] == "23800001"
    assert [d["position"] for d in doors["doors"]] == [1, 2, 3, 4]
    assert [d["number"] for d in doors["doors"]] == ["1", "2", "3", "4"]
    assert all(d["last_status"] is None for d in doors["doors"])
    # the turf's polygon, for the map, in WGS84 around its doors
    polygon = shapely.geometry.shape(doors["geometry"])
    assert doors["geometry"]["type"] == "Polygon" and polygon.is_valid
    assert all(polygon.covers(shapely.Point(d["lon"], d["lat"])) for d in doors["doors"])
    second = doors["doors"][1]["address_id"]
    for day, status in [(date(2026, 5, 1), "answered"), (date(2026, 5, 3), "not_home")]:
        session.add(
            Visit(
                client_uuid=uuid.uuid4(),
                address_id=second,
                turf_id=turf.id,
                status=VisitStatus(status),
                day=day,
            )
        )
    session.flush()
    doors = field["client"].get(f"/app/api/turfs/{turf.code}/doors").json()
    assert (doors["doors"][1]["last_status"], doors["doors"][1]["last_day"]) == (
        "not_home",
        "2026-05-03",
    )


def test_turf_outside_reach_is_answered_like_a_missing_one(field):
    client = field["client"]
    outside = client.get(f"/app/api/turfs/{field['other'].code}/doors")
    missing = client.get("/app/api/turfs/99999999-9/doors")
    assert outside.status_code == missing.status_code == 404
    assert outside.json()["detail"].replace(field["other"].code, "X") == missing.json()[
        "detail"
    ].replace("99999999-9", "X")
