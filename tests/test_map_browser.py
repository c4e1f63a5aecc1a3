"""The leads' map in a real browser (the system's Chromium, driven by Playwright) against a
live server with the demo: signing in with an emailed code, every district of the scope
drawn, a district's numbers, the colours of every metric, assigning a turf, its walk list and
QR code, a förening lead's scope, the keyboard alone, a volunteer sent away, no basemap
reachable, no script from data, the token in no URL, and no serious accessibility
violation."""

import csv
import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlmodel import Session, select

from api.db import make_engine
from api.models import (
    Campaign,
    District,
    Forening,
    Kommun,
    Role,
    Target,
    Turf,
    UnitKind,
    User,
)
from api.testing import ROOT, LiveServer, free_port, load_demo_database
from api.turfs.walklist import qr_svg
from tests import factories as f
from tests.conftest import Inbox

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RESULTS = ROOT / "test-results"
ADMIN = "distrikt@example.org"
FORENING_LEAD = "ordforande-2380-1@example.org"  # the first geographic förening of Östersund
VOLUNTEER = "volontar001@example.org"
HOSTILE = "<img src=x onerror=window.__xss=1>"
TURF_DISTRICT_KOMMUN = "2380"
METRICS = ("conversations", "doors", "new_members", "coverage", "priority")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium"
)


@dataclass
class Site:
    server: LiveServer
    inbox: Inbox
    url: str
    turf_codes: list[str]
    hostile_district: str
    districts: dict[str, int]  # per kommun code, as stored
    kommun_turfs: int  # live turfs in the turfs' kommun: the demo's cut ones and turf_codes

    def api(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )


def _prepare(url: str) -> tuple[list[str], str, dict[str, int], int]:
    """Rows the demo lacks: turfs with a known coverage in an Östersund district the demo
    did not cut, district targets and results for the three counted metrics, each spread
    differently, so that every metric colours the map its own way, and a förening whose
    name is markup. Also how many live turfs the kommun has with the demo's own."""
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            kommun = session.exec(select(Kommun).where(Kommun.code == TURF_DISTRICT_KOMMUN)).one()
            districts = session.exec(
                select(District).where(District.kommun_id == kommun.id).order_by(District.code)
            ).all()
            cut = set(session.exec(select(Turf.district_id)))
            bare = next(d for d in districts if d.id not in cut)
            turfs = f.map_turfs(session, bare, n=3, households=30, knocked=12)
            kommun_turfs = len(
                session.exec(
                    select(Turf.id).where(Turf.kommun_id == kommun.id, Turf.retired_at.is_(None))
                ).all()
            )
            campaign = session.exec(select(Campaign)).first()
            volunteer_of = {}
            for u, kommun_id in session.exec(
                select(User, Forening.kommun_id)
                .join(Forening, Forening.id == User.unit_id)
                .where(User.role == Role.volunteer, User.unit_kind == UnitKind.forening)
            ):
                volunteer_of.setdefault(kommun_id, u)
            when = datetime.now(UTC) - timedelta(hours=1)
            for i, d in enumerate(session.exec(select(District)).all()):
                target = 100 + 37 * (i % 9)
                targets = {"conversations": target, "doors": 4 + i % 3, "new_members": 2}
                for metric, value in targets.items():
                    session.add(
                        Target(
                            campaign_id=campaign.id,
                            unit_kind=UnitKind.district,
                            unit_id=d.id,
                            metric=metric,
                            value=value,
                        )
                    )
                # Some districts ahead of the pace, some behind: a map with every colour.
                volunteer = volunteer_of[d.kommun_id]
                done = round(target * 0.28 * (i % 7) / 3)
                if done:
                    f.contact(
                        session,
                        volunteer,
                        d,
                        when,
                        kind="stall",
                        quantity=done,
                        conversations=done,
                    )
                # Doors and new members on other cycles than the conversations'.
                for _ in range(i % 5):
                    f.contact(session, volunteer, d, when, outcome="not_home", conversations=0)
                if i % 4 == 1:
                    f.contact(session, volunteer, d, when, new_member=True)
            hostile = next(d for d in districts if d.forening_id is not None and d != bare)
            forening = session.get(Forening, hostile.forening_id)
            forening.name = HOSTILE
            session.add(forening)
            codes, hostile_code = [t.code for t in turfs], hostile.code
            counts: dict[str, int] = {}
            for code in session.exec(
                select(Kommun.code).join(District, District.kommun_id == Kommun.id)
            ):
                counts[code] = counts.get(code, 0) + 1
            session.commit()
    finally:
        engine.dispose()
    return codes, hostile_code, counts, kommun_turfs


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("map_browser")
    url = f"sqlite:///{tmp / 'knacka.sqlite3'}"
    load_demo_database(url)
    turf_codes, hostile, counts, kommun_turfs = _prepare(url)
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    closed = free_port()  # nothing listens here: the basemap cannot be reached
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KNACKA_SMTP_HOST", "127.0.0.1")
        mp.setenv("KNACKA_SMTP_PORT", str(controller.port))
        # Each test signs in through the page, the district admin more than the default
        # five times an hour from one client.
        mp.setenv("KNACKA_LOGIN_CODES_PER_HOUR", "20")
        mp.setenv("KNACKA_BASEMAP_URL", f"http://127.0.0.1:{closed}/{{z}}/{{x}}/{{y}}.png")
        server = LiveServer(url, tmp / "server.log")
        try:
            server.start()
            yield Site(server, inbox, url, turf_codes, hostile, counts, kommun_turfs)
        finally:
            server.stop()
            controller.stop()
            print(f"server log:\n{server.log()}")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # The system's Chromium, never a browser that Playwright downloads.
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


class Page:
    """A browser page on the map, recording what the console says about the policy."""

    def __init__(self, browser, site: Site, **context_options) -> None:
        options = {"viewport": {"width": 1280, "height": 900}} | context_options
        self.context = browser.new_context(**options)
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.site = site
        self.violations: list[str] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        # On the context, not the page: the walk list opens in a page of its own.
        self.context.on("console", self._console)
        self.context.on("weberror", lambda error: self.errors.append(str(error.error)))
        self.context.on("request", lambda request: self.requests.append(request.url))

    def _console(self, message) -> None:
        if "Content Security Policy" in message.text:
            self.violations.append(message.text)

    def close(self) -> None:
        self.context.close()

    def sign_in(self, email: str, *, stays: bool = True) -> str | None:
        """Sign in through the page with the code the server emailed; the token, unless
        the page is expected to go elsewhere once signed in (``stays`` false)."""
        page = self.page
        page.goto(f"{self.site.server.base_url}/karta")
        page.fill("#email", email)
        before = len(self.site.inbox.to(email))
        page.click("#code-form button[type=submit]")
        deadline = time.monotonic() + 30
        while len(self.site.inbox.to(email)) == before:
            assert time.monotonic() < deadline, "no sign-in code arrived"
            time.sleep(0.1)
        message = self.site.inbox.to(email)[-1]
        code = re.search(r"\b(\d{6})\b", message["Subject"]).group(1)
        page.fill("#code", code)
        page.click("#token-form button[type=submit]")
        if not stays:
            return None
        token = None
        deadline = time.monotonic() + 30
        while not token:
            assert time.monotonic() < deadline, "no token was stored"
            token = page.evaluate("localStorage.getItem('knacka.token')")
            time.sleep(0.05)
        return token

    def ready(self) -> None:
        self.page.wait_for_selector("body[data-ready=true]")

    def assert_token_in_no_url(self, token: str) -> None:
        """Every request of every page so far, the map's data and the walk list included."""
        assert any("/map/districts.geojson" in url for url in self.requests)
        assert [url for url in self.requests if token in url or quote(token) in url] == []


@pytest.fixture
def open_page(browser, site):
    pages = []

    def opener(**options) -> Page:
        pages.append(Page(browser, site, **options))
        return pages[-1]

    yield opener
    for p in pages:
        p.close()


def _digits(text: str) -> str:
    return re.sub(r"\s", "", text)


def _district_numbers(page) -> dict[str, list[str]]:
    rows = page.locator("#district-numbers tr")
    out = {}
    for i in range(rows.count()):
        row = rows.nth(i)
        cells = row.locator("td")
        out[row.get_attribute("data-metric")] = [
            _digits(cells.nth(j).inner_text()) for j in range(3)
        ]
    return out


def _expected_numbers(progress: dict) -> dict[str, list[str]]:
    def show(v):
        return "–" if v is None else str(round(v))

    return {
        m["metric"]: [show(m["actual"]), show(m["target"]), show(m["expected"])]
        for m in progress["metrics"]
    }


def _rgb(colour: str) -> str:
    """'#b35806' as the browser computes a colour: 'rgb(179, 88, 6)'."""
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


def _fills(page) -> list[str]:
    """The drawn districts' fill colours, in the order of the GeoJSON's features."""
    return page.locator("path.knacka-district").evaluate_all(
        "paths => paths.map((p) => p.getAttribute('fill'))"
    )


def _legend(page) -> list[str]:
    """The legend's colours, top to bottom."""
    return page.locator("#legend-items .swatch").evaluate_all(
        "spans => spans.map((s) => getComputedStyle(s).backgroundColor)"
    )


LEGEND_TITLES = {
    "conversations": "Samtal",
    "doors": "Dörrar",
    "new_members": "Nya medlemmar",
    "coverage": "Täckning",
    "priority": "Prioritet",
}


def test_the_district_admin_sees_every_district_and_their_numbers(open_page, site):
    p = open_page()
    token = p.sign_in(ADMIN)
    p.ready()
    page = p.page
    with site.api(token) as api:
        campaign = api.get("/campaigns").json()[0]
        data = api.get(f"/map/districts.geojson?campaign={campaign['id']}").json()
        children = api.get(
            f"/campaigns/{campaign['id']}/progress/partidistrikt/{campaign['partidistrikt_id']}/children"
        ).json()["children"]
        codes = [x["id"] for x in data["features"]]
        assert len(codes) == sum(site.districts.values())  # all of Jämtland's
        assert page.locator("path.knacka-district").count() == len(codes)
        # The background outlines: every kommun and the län, with no basemap reachable.
        assert page.locator("path.knacka-outline").count() == len(site.districts) + 1
        page.wait_for_selector("#map[data-basemap=unreachable]")
        uncovered = [x for x in data["features"] if x["properties"]["uncovered"]]
        assert page.locator("path.knacka-uncovered").count() == len(uncovered) > 0

        # Clicking a district shows the progress route's own figures.
        code = codes[10]
        index = codes.index(code)
        page.locator("path.knacka-district").nth(index).dispatch_event("click")
        page.wait_for_selector(f"#district-panel[data-code='{code}'][data-loaded=true]")
        progress = api.get(f"/campaigns/{campaign['id']}/progress/district/{code}").json()
        assert _district_numbers(page) == _expected_numbers(progress)
        assert progress["unit_name"] in page.inner_text("#district-title")

        # The overview: the kommuner side by side, as in the nightly email, and its chart.
        page.wait_for_selector("#overview:not([hidden])")
        assert page.locator("#overview-cards .card").count() == len(children) == len(site.districts)
        names = page.locator("#overview-cards .card h3").all_inner_texts()
        assert names == [c["unit_name"] for c in children]
        page.wait_for_function("document.getElementById('overview-chart').src.startsWith('blob:')")

        # Each metric colours the districts its own way, in its own legend's colours; for
        # the three counted against the pace, a district further ahead of it never has a
        # colour higher up the legend (the legend runs from behind to ahead), and one with
        # no pace has the legend's "Inget mål".
        fills = {}
        for metric in METRICS:
            page.select_option("#metric", metric)
            assert page.inner_text("#legend-title").startswith(LEGEND_TITLES[metric])
            legend = _legend(page)
            fills[metric] = [_rgb(c) for c in _fills(page)]
            assert len(fills[metric]) == len(codes)
            assert set(fills[metric]) <= set(legend), metric
            if metric in ("conversations", "doors", "new_members"):
                no_target = legend[-2]
                paces = [x["properties"]["progress"][metric]["pace"] for x in data["features"]]
                assert any(pace is not None for pace in paces), metric
                ranked = sorted(
                    (pace, legend.index(fill))
                    for pace, fill in zip(paces, fills[metric], strict=True)
                    if pace is not None
                )
                assert [rank for _, rank in ranked] == sorted(rank for _, rank in ranked)
                for pace, fill in zip(paces, fills[metric], strict=True):
                    assert (pace is None) == (fill == no_target), metric
                assert len(set(fills[metric])) >= 2, metric
        # Switching changed the colours every time: no two metrics draw the same map.
        assert len({tuple(v) for v in fills.values()}) == len(METRICS)
        page.select_option("#metric", "conversations")

        RESULTS.mkdir(exist_ok=True)
        page.screenshot(path=str(RESULTS / "karta.png"), full_page=True)
    # The token is never put in a URL, and the policy was never broken.
    p.assert_token_in_no_url(token)
    assert p.violations == [] and p.errors == []


def test_names_from_the_database_are_text(open_page, site):
    p = open_page()
    p.sign_in(ADMIN)
    p.ready()
    page = p.page
    page.select_option("#district-pick", site.hostile_district)
    page.wait_for_selector(f"#district-panel[data-code='{site.hostile_district}']")
    assert HOSTILE in page.inner_text("#district-forening")
    assert page.locator("#district-panel img[src=x]").count() == 0
    assert page.evaluate("window.__xss") is None
    assert p.violations == [] and p.errors == []


def _open_turf(page, code: str) -> None:
    page.select_option("#district-pick", code.rsplit("-", 1)[0])
    page.click(f"#district-turfs button[data-turf='{code}']")
    page.wait_for_selector(f"#turf-panel[data-code='{code}']")


def test_assigning_a_turf_from_the_map(open_page, site):
    p = open_page()
    token = p.sign_in(ADMIN)
    p.ready()
    page = p.page
    code = site.turf_codes[0]
    _open_turf(page, code)
    forening_id = int(page.input_value("#turf-forening"))
    page.click("#turf-assign")
    # A locator, not wait_for_function: the page's CSP forbids the eval that would need.
    page.locator("#turf-message", has_text="tilldelat").wait_for()
    with site.api(token) as api:
        lease = api.get(f"/turfs/{code}").json()["lease"]
        forening = api.get(f"/foreningar/{forening_id}").json()["name"]
        assert lease is not None and lease["holder_kind"] == "forening"
        assert lease["forening"] == forening
        # The lease line is drawn after the message: waited for, not read at once.
        page.locator("#turf-lease", has_text="Utlånat").wait_for()
        page.click("#turf-release")
        page.locator("#turf-message", has_text="släppt").wait_for()
        assert api.get(f"/turfs/{code}").json()["lease"] is None
    p.assert_token_in_no_url(token)
    assert p.violations == [] and p.errors == []


def test_a_turf_shows_its_coverage(open_page, site):
    p = open_page()
    p.sign_in(ADMIN)
    p.ready()
    page = p.page
    code = site.turf_codes[1]
    page.select_option("#district-pick", code.rsplit("-", 1)[0])
    page.wait_for_selector(f"#district-turfs button[data-turf='{code}']")
    # every live turf of the kommun is drawn: these and the demo's own
    assert page.locator("path.knacka-turf").count() == site.kommun_turfs > len(site.turf_codes)
    page.click(f"#district-turfs button[data-turf='{code}']")
    page.wait_for_selector(f"#turf-panel[data-code='{code}']")
    facts = page.inner_text("#turf-facts")
    assert "40 %" in facts  # 12 of 30 households knocked
    assert page.inner_text("#turf-lease") == "Ledigt"


def _poll(check, what: str, timeout: float = 30):
    """``check()`` once it is truthy (the map's policy forbids wait_for_function's eval)."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def test_a_turfs_walk_list_and_qr_code_from_the_map(open_page, site):
    p = open_page()
    token = p.sign_in(ADMIN)
    p.ready()
    page = p.page
    code = site.turf_codes[2]
    _open_turf(page, code)

    # The QR code in the panel: the turf's own (qr.svg, 4 px a module), drawn.
    page.click("#turf-qr-show")
    img = page.locator("#turf-qr")
    img.wait_for(state="visible")
    size = _poll(
        lambda: img.evaluate(
            "i => i.complete && i.naturalWidth > 0 && [i.naturalWidth, i.naturalHeight]"
        ),
        "the QR code to load",
    )
    with site.api(token) as api:
        turf = api.get(f"/turfs/{code}").json()
        svg = api.get(f"/turfs/{code}/qr.svg").text
        walk_csv = api.get(f"/turfs/{code}/walklist.csv").text
    side = int(re.search(r'<svg[^>]*\bwidth="(\d+)"', svg).group(1))
    assert size == [side, side] and side > 80
    box = img.bounding_box()
    assert box["width"] > 80 and box["height"] > 80

    # The walk list opens in a page of its own: a blob: copy of what the map fetched with
    # the token in its header. The copy inherits the map's policy (style-src 'self'), under
    # which it is styled by Knacka's style sheet, not an inline one.
    with p.context.expect_page() as opened:
        page.click("#turf-walklist")
    walk = opened.value
    walk.wait_for_load_state("load")
    assert walk.url.startswith("blob:")
    assert walk.title() == f"Knacklista {code}"
    assert any(url.endswith("/karta/static/walklist.css") for url in p.requests)
    table = walk.locator("table").first
    assert table.evaluate("t => getComputedStyle(t).borderCollapse") == "collapse"
    # 16 pt; 10 pt, as the browser's default of 16 px would be without the style sheet
    assert walk.locator("h1").first.evaluate("h => getComputedStyle(h).fontSize") == "21.3333px"
    assert walk.locator("body").evaluate("b => getComputedStyle(b).fontSize") == "13.3333px"
    # The turf's addresses, in walking order.
    rows = list(csv.reader(io.StringIO(walk_csv)))[1:]
    labels = [" ".join(x for x in (r[2], r[3], r[4]) if x) for r in rows]
    assert labels and walk.locator("tbody tr td:nth-child(2)").all_inner_texts() == labels
    # Its QR code, styled 24 mm square and carrying the turf's claim link.
    claim = re.search(r"Ta området: (\S+)", walk.inner_text("body")).group(1)
    assert claim.endswith(f"/app/t/{turf['link_code']}")
    qr = walk.locator("svg.qr").first
    qr_box = qr.bounding_box()
    assert abs(qr_box["width"] - 90.7) < 1 and abs(qr_box["height"] - 90.7) < 1
    expected_d = re.search(r' d="([^"]+)"', qr_svg(claim, scale=2, inline=True)).group(1)
    assert qr.locator("path").first.get_attribute("d") == expected_d
    walk.screenshot(path=str(RESULTS / "karta-ganglista.png"))
    p.assert_token_in_no_url(token)
    assert p.violations == [] and p.errors == []


def test_the_map_by_keyboard_alone(open_page, site):
    """From the top of the page to a turf's panel and its walk list, by Tab, arrows and
    Enter only."""
    p = open_page()
    token = p.sign_in(FORENING_LEAD)
    p.ready()
    page = p.page
    page.reload()  # focus back at the top, signed in
    p.ready()
    code = site.turf_codes[0]
    district = code.rsplit("-", 1)[0]

    def focused(attribute: str) -> str | None:
        return page.evaluate(
            f"document.activeElement && document.activeElement.getAttribute('{attribute}')"
        )

    # Every district and turf drawn with a tooltip is a tab stop of its own (Leaflet makes
    # them focusable), and the demo's turfs are many: the limit allows for all of them.
    def tab_to(attribute: str, value: str, limit: int = 400) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if focused(attribute) == value:
                return
        raise AssertionError(f"Tab never reached [{attribute}={value}]")

    tab_to("id", "district-pick")
    options = page.locator("#district-pick option").count()
    for _ in range(options):
        if page.input_value("#district-pick") == district:
            break
        page.keyboard.press("ArrowDown")
    assert page.input_value("#district-pick") == district
    page.wait_for_selector(f"#district-panel[data-code='{district}']")
    page.wait_for_selector(f"#district-turfs button[data-turf='{code}']")
    tab_to("data-turf", code)
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#turf-panel[data-code='{code}']")
    assert page.locator("#turf-panel").is_visible()
    tab_to("id", "turf-walklist")
    with p.context.expect_page() as opened:
        page.keyboard.press("Enter")
    walk = opened.value
    walk.wait_for_load_state("load")
    assert walk.title() == f"Knacklista {code}"
    p.assert_token_in_no_url(token)
    assert p.violations == [] and p.errors == []


def test_a_forening_lead_sees_only_their_kommun(open_page, site):
    # On a tablet, upright: the map above, the details below it.
    p = open_page(viewport={"width": 820, "height": 1180}, has_touch=True)
    token = p.sign_in(FORENING_LEAD)
    p.ready()
    with site.api(token) as api:
        data = api.get("/map/districts.geojson").json()
    kommuner = {x["properties"]["kommun_code"] for x in data["features"]}
    assert kommuner == {"2380"}
    drawn = p.page.locator("path.knacka-district").count()
    assert drawn == len(data["features"]) == site.districts["2380"]
    assert p.page.locator("path.knacka-outline").count() == 2  # their kommun, and the län's part
    assert p.page.locator("#overview").is_hidden()
    map_box = p.page.locator("#map").bounding_box()
    legend_box = p.page.locator("#legend").bounding_box()
    assert map_box["width"] > 700 and legend_box["y"] >= map_box["y"] + map_box["height"] - 1
    p.page.screenshot(path=str(RESULTS / "karta-surfplatta.png"))


def test_a_volunteer_is_sent_to_the_volunteers_app(open_page, site):
    p = open_page()
    p.sign_in(VOLUNTEER, stays=False)
    p.page.wait_for_url(re.compile(r"/app/?$"))


def test_no_serious_accessibility_violation(open_page, site):
    """axe-core (vendored under tests/vendor) on the signed-in map; the page's policy is
    bypassed only so that axe itself can be injected."""
    first = open_page()
    first.sign_in(ADMIN)
    first.ready()
    p = open_page(bypass_csp=True, storage_state=first.context.storage_state())
    p.page.goto(f"{site.server.base_url}/karta")
    p.ready()
    p.page.select_option("#district-pick", site.turf_codes[0].rsplit("-", 1)[0])
    p.page.wait_for_selector("#district-panel[data-loaded=true]")
    axe = (ROOT / "tests" / "vendor" / "axe-core" / "axe.min.js").read_text()
    p.page.add_script_tag(content=axe)

    def serious() -> list[str]:
        result = p.page.evaluate("async () => await axe.run(document)")
        return [
            f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:5]}"
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]

    assert serious() == []
    # With a turf's panel open too, its QR code shown.
    p.page.click(f"#district-turfs button[data-turf='{site.turf_codes[0]}']")
    p.page.wait_for_selector(f"#turf-panel[data-code='{site.turf_codes[0]}']")
    p.page.click("#turf-qr-show")
    p.page.locator("#turf-qr").wait_for(state="visible")
    assert p.page.locator("#turf-panel").is_visible()
    assert serious() == []
    # The sign-in form too.
    q = open_page(bypass_csp=True)
    q.page.goto(f"{site.server.base_url}/karta")
    q.page.wait_for_selector("#signin:not([hidden])")
    q.page.add_script_tag(content=axe)
    result = q.page.evaluate("async () => await axe.run(document)")
    assert [v["id"] for v in result["violations"] if v["impact"] in ("serious", "critical")] == []
