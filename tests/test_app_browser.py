"""The volunteers' app in a real browser (Chromium through Playwright) against a live server
with the demo: sign-in by an emailed code, a leased turf's walk list and its map (the leads'
map's library, with no basemap reachable), doors logged offline and kept through a reload,
synced exactly once, a refused record that blocks nothing, stall mode, claiming a turf from
a lead's QR code, an accessibility check, and screenshots at a phone's size.

Chromium is the system's (/usr/bin/chromium); Playwright's own browsers are never installed."""

import re
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, func
from sqlmodel import Session, col, select

from api.models import (
    Address,
    ContactLog,
    DeviceToken,
    District,
    Forening,
    Kommun,
    Role,
    Topic,
    Turf,
    TurfAddress,
    TurfLease,
    User,
    utcnow,
)
from api.testing import ROOT, LiveServer, free_port, issue_token, knacka, load_demo_database
from tests.conftest import Inbox, postgres_database

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
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
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
VOLUNTEER = "volontar001@example.org"
DOORS = 24
# Bounds on waiting (a loaded machine is slow), never a timing asserted.
TIMEOUT_MS = 60_000

if not Path(CHROMIUM).exists():  # pragma: no cover - the machine's set-up, not the code
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)


def _turf_for(url: str, email: str, *, name: str = "app", doors: int = DOORS, leased=True) -> dict:
    """A turf of the volunteer's förening's kommun with ``doors`` addresses, leased to them
    unless ``leased`` is false."""
    import shapely
    from shapely.geometry import box

    engine = create_engine(url)
    try:
        with Session(engine) as session:
            user = session.exec(select(User).where(User.email == email)).one()
            forening = session.get(Forening, user.unit_id)
            district = session.exec(
                select(District)
                .where(District.kommun_id == forening.kommun_id)
                .order_by(District.code)
            ).first()
            turf = Turf(
                code=f"{district.code}-{name}",
                district_id=district.id,
                kommun_id=district.kommun_id,
                households=doors,
                address_count=doors,
                geom_wkb=shapely.to_wkb(
                    box(district.min_lon, district.min_lat, district.max_lon, district.max_lat)
                ),
                min_lon=district.min_lon,
                min_lat=district.min_lat,
                max_lon=district.max_lon,
                max_lat=district.max_lat,
                link_code=f"A{uuid.uuid4().hex[:8]}",
            )
            session.add(turf)
            session.flush()
            for i in range(doors):
                address = Address(
                    key=f"{turf.code}-{i}",
                    district_id=district.id,
                    kommun_id=district.kommun_id,
                    # A name that would be markup if the page ever used innerHTML.
                    street="<b>Byvägen</b>" if i == 0 else "Byvägen",
                    number=str(i + 1),
                    lon=district.min_lon + 0.0005 * (i % 6),
                    lat=district.min_lat + 0.0005 * (i // 6),
                )
                session.add(address)
                session.flush()
                session.add(TurfAddress(turf_id=turf.id, address_id=address.id, position=i + 1))
            if leased:
                session.add(
                    TurfLease(
                        turf_id=turf.id, user_id=user.id, expires_at=utcnow() + timedelta(days=7)
                    )
                )
            topic = session.exec(
                select(Topic).where(Topic.active.is_(True)).order_by(Topic.code)
            ).first()
            session.commit()
            return {
                "code": turf.code,
                "link_code": turf.link_code,
                "user_id": user.id,
                "topic": topic.code,
            }
    finally:
        engine.dispose()


def _neighbours(url: str, email: str) -> dict:
    """The volunteer's förening, their kommun's lead and another volunteer of the kommun (of
    another förening where it has one; the demo's Ragunda has only one)."""
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            user = session.exec(select(User).where(User.email == email)).one()
            forening = session.get(Forening, user.unit_id)
            kommun = session.get(Kommun, forening.kommun_id)
            rival = session.exec(
                select(User)
                .join(Forening, Forening.id == User.unit_id)
                .where(
                    User.role == Role.volunteer,
                    Forening.kommun_id == kommun.id,
                    User.id != user.id,
                )
                # the last: the first (volontar002) is another test's second user, whose
                # devices that test counts
                .order_by(Forening.id == forening.id, col(User.email).desc())
            ).first()
            return {
                "forening": forening.name,
                "lead": f"kommun{kommun.code}@example.org",
                "rival": rival.email,
            }
    finally:
        engine.dispose()


def _lease_holder(url: str, code: str) -> int | None:
    """The user who holds the turf's live lease, if any."""
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            turf = session.exec(select(Turf).where(Turf.code == code)).one()
            lease = session.exec(
                select(TurfLease).where(
                    TurfLease.turf_id == turf.id, TurfLease.released_at.is_(None)
                )
            ).first()
            return None if lease is None else lease.user_id
    finally:
        engine.dispose()


def _server_records(url: str, user_id: int) -> list[ContactLog]:
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            return list(
                session.exec(
                    select(ContactLog).where(ContactLog.user_id == user_id).order_by(ContactLog.id)
                )
            )
    finally:
        engine.dispose()


def _count(url: str, user_id: int) -> int:
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            return session.exec(
                select(func.count()).select_from(ContactLog).where(ContactLog.user_id == user_id)
            ).one()
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The demo on a live server whose emails go to this test's SMTP server."""
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        with postgres_database() as url, pytest.MonkeyPatch.context() as mp:
            load_demo_database(url)
            turf = _turf_for(url, VOLUNTEER)
            claimable = _turf_for(url, VOLUNTEER, name="qr", doors=5, leased=False)
            mp.setenv("KNACKA_SMTP_HOST", "127.0.0.1")
            mp.setenv("KNACKA_SMTP_PORT", str(smtp.port))
            # One volunteer signs in once per test here, more often than the hourly limit.
            mp.setenv("KNACKA_LOGIN_CODES_PER_HOUR", "100")
            # The leads' map's basemap setting, on a port where nothing listens: every tile
            # fails, and the walk list's map must draw the turf and its doors all the same.
            closed = free_port()
            mp.setenv("KNACKA_BASEMAP_URL", f"http://127.0.0.1:{closed}/{{z}}/{{x}}/{{y}}.png")
            log = tmp_path_factory.mktemp("app") / "server.log"
            with LiveServer(url, log) as server:
                yield {
                    "server": server,
                    "url": url,
                    "inbox": inbox,
                    "claimable": claimable,
                    "tiles": f"http://127.0.0.1:{closed}/",
                    **_neighbours(url, VOLUNTEER),
                    **turf,
                }
    finally:
        smtp.stop()


@pytest.fixture(scope="module")
def browser():
    with playwright_sync.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def _code_from(inbox: Inbox, email: str, seen: int) -> str:
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        messages = inbox.to(email)
        if len(messages) > seen:
            text = messages[-1].get_body(("plain",)).get_content()
            return re.search(r"\b(\d{6})\b", text).group(1)
        time.sleep(0.1)
    raise AssertionError(f"no sign-in code reached {email}")


def _sign_in(page, live, email: str) -> None:
    seen = len(live["inbox"].to(email))
    page.fill("#email", email)
    page.click("button:has-text('Skicka kod')")
    page.wait_for_selector("#code")
    page.fill("#code", _code_from(live["inbox"], email, seen))
    page.click("button:has-text('Logga in')")
    page.wait_for_selector("#tabs:not([hidden])")


def _pending(page, n: int, refused: int = 0) -> None:
    page.wait_for_function(
        "([n, r]) => { const p = document.getElementById('pending');"
        " return p.dataset.pending === String(n) && (p.dataset.refused || '0') === String(r); }",
        arg=[n, refused],
        timeout=TIMEOUT_MS,
    )


def _open_turf(page, live) -> None:
    page.evaluate("(code) => { location.hash = 'turf/' + code; }", live["code"])
    page.wait_for_selector(f"#walk li >> nth={DOORS - 1}")


def _axe(page) -> list[str]:
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;true")
    result = page.evaluate("async () => await axe.run(document)")
    return [
        f"{v['id']} ({v['impact']}): {v['help']}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


_OUTBOX = """() => new Promise((resolve, reject) => {
  const open = indexedDB.open('knacka');
  open.onsuccess = () => {
    const req = open.result.transaction('outbox').objectStore('outbox').getAll();
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  };
})"""

_REQUEUE = """(rows) => new Promise((resolve, reject) => {
  const open = indexedDB.open('knacka');
  open.onsuccess = () => {
    const tx = open.result.transaction('outbox', 'readwrite');
    for (const row of rows) tx.objectStore('outbox').put(row);
    tx.oncomplete = () => resolve(true);
    tx.onerror = () => reject(tx.error);
  };
})"""


def _csp_violations(page) -> list[str]:
    """The page's Content-Security-Policy reports, as they come."""
    found: list[str] = []
    page.on(
        "console", lambda m: found.append(m.text) if "Content Security Policy" in m.text else None
    )
    return found


def test_volunteer_logs_doors_offline_and_syncs_each_once(live, browser):
    RESULTS.mkdir(exist_ok=True)
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, locale="sv-SE"
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    csp_violations = _csp_violations(page)
    tiles = []
    page.on("request", lambda r: tiles.append(r.url) if r.url.startswith(live["tiles"]) else None)
    base = live["server"].base_url
    user_id = live["user_id"]

    page.goto(f"{base}/app/")
    page.wait_for_selector("#email")
    assert _axe(page) == [], "the sign-in screen"
    _sign_in(page, live, VOLUNTEER)
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=TIMEOUT_MS)

    # the turf leased to the volunteer, its walk list in walking order
    _open_turf(page, live)
    first = page.locator("#walk li").first
    assert first.inner_text().startswith("1")
    # a street's markup-like name is shown as text, never parsed
    assert "<b>Byvägen</b>" in first.inner_text()
    assert page.locator("#walk b").count() == 0
    assert page.locator("#walk .door.next").count() == 1
    # its map, on the leads' map's library: the turf, the walk, the doors in walking order
    # and the next one highlighted; the basemap's tiles are asked for, fail, and break nothing
    page.wait_for_selector("#walk-map[data-map=ready]")
    assert page.locator("#walk-map.leaflet-container").count() == 1
    assert page.locator("#walk-map path.turf-outline").count() == 1
    assert page.locator("#walk-map path.walk-route").count() == 1
    assert page.locator("#walk-map path.door-dot").count() == DOORS
    assert page.locator("#walk-map path.door-dot.next").count() == 1
    page.wait_for_selector("#walk-map[data-basemap=unreachable]")
    assert tiles, "no tile was asked for at the configured basemap URL"
    page.screenshot(path=str(RESULTS / "app-walk-list.png"), full_page=True)
    page.locator("section.panel").screenshot(path=str(RESULTS / "app-log-buttons.png"))
    assert _axe(page) == [], "the walk list"
    # topics are fetched while online; the conversation form is checked too
    page.click("[data-outcome=conversation]")
    page.wait_for_selector(f"[data-topic={live['topic']}]")
    assert _axe(page) == [], "the conversation form"
    page.click("button:has-text('Avbryt')")
    page.wait_for_selector("[data-outcome=not_home]")

    # 20 doors with no network
    context.set_offline(True)
    page.wait_for_function("() => !navigator.onLine")
    others = ["not_home", "refused", "no_access", "moved"]
    for i in range(20):
        if i % 4 == 0:
            page.click("[data-outcome=conversation]")
            page.click(f"[data-topic={live['topic']}]")
            if i == 0:
                page.click("#new-member")
            page.click("#save-conversation")
        else:
            page.click(f"[data-outcome={others[i % 4]}]")
        _pending(page, i + 1)
    assert page.inner_text("#pending").startswith("20 väntar på att synkas")
    assert page.locator("#walk .door.done").count() == 20
    assert page.locator("#walk-map path.door-dot.done").count() == 20

    # a reload with no network: the app opens from the service worker, the 20 still queued
    page.reload()
    _pending(page, 20)
    _open_turf(page, live)
    # the map too: its library comes from the service worker's cache
    page.wait_for_selector("#walk-map[data-map=ready]")
    assert page.locator("#walk-map path.door-dot.done").count() == 20
    queued = page.evaluate(_OUTBOX)
    assert len(queued) == 20
    assert _count(live["url"], user_id) == 0

    # online: exactly the 20, each once
    context.set_offline(False)
    _pending(page, 0)
    records = _server_records(live["url"], user_id)
    assert sorted(str(r.client_uuid) for r in records) == sorted(q["client_uuid"] for q in queued)
    assert sum(r.conversations for r in records) == 5
    assert sum(r.new_member for r in records) == 1

    # the same queue replayed: answered as duplicates, nothing new on the server
    page.evaluate(_REQUEUE, queued)
    page.evaluate("location.hash = 'queue'")
    page.click("#sync-now")
    _pending(page, 0)
    assert _count(live["url"], user_id) == 20

    # a record the server refuses (its topic retired meanwhile) blocks nothing after it
    _open_turf(page, live)
    context.set_offline(True)
    page.wait_for_function("() => !navigator.onLine")
    page.click("[data-outcome=conversation]")
    page.click(f"[data-topic={live['topic']}]")
    page.click("#save-conversation")
    page.click("[data-outcome=not_home]")
    _pending(page, 2)
    knacka(live["url"], "topic", live["topic"], "--retire")
    context.set_offline(False)
    _pending(page, 0, refused=1)
    assert _count(live["url"], user_id) == 21
    page.evaluate("location.hash = 'queue'")
    refused = page.locator("#queue li.rejected")
    refused.first.wait_for()  # the queue screen renders after the hash changes
    assert refused.count() == 1
    assert "topics" in refused.inner_text() and "Nekad (invalid)" in refused.inner_text()
    assert _axe(page) == [], "the queue"

    # stall mode: 15 conversations counted offline arrive as one total of 15
    page.evaluate("location.hash = 'stall'")
    page.wait_for_selector("#stall-start")
    context.set_offline(True)
    page.wait_for_function("() => !navigator.onLine")
    page.click("#stall-start")
    for _ in range(15):
        page.click("#stall-plus")
    page.wait_for_selector("#stall-count:has-text('15 samtal')")
    assert _axe(page) == [], "stall mode"
    page.click("#stall-end")
    _pending(page, 1, refused=1)
    context.set_offline(False)
    _pending(page, 0, refused=1)
    stall = [r for r in _server_records(live["url"], user_id) if r.kind == "stall"]
    assert [(r.conversations, r.quantity) for r in stall] == [(15, 15)]

    assert csp_violations == []
    context.close()


def test_a_volunteer_claims_a_turf_from_its_qr_code(live, browser):
    """The kommun lead's QR code of a free turf, opened in the app: a signed-in volunteer of
    the kommun takes it and finds it under Mina områden (opening it again simply opens it);
    a volunteer of another förening who opens it, signing in first, is told in the app which
    förening holds it, and the lease stays."""
    base = live["server"].base_url
    turf = live["claimable"]
    lead = issue_token(live["url"], live["lead"])
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {lead}"}) as api:
        assert api.get(f"/turfs/{turf['code']}").json()["lease"] is None
        svg = api.get(f"/turfs/{turf['code']}/qr.svg")
        assert svg.status_code == 200
    # the address the printed code carries
    link = re.search(r"<title>([^<]+)</title>", svg.text).group(1)
    assert link == f"{base}/app/t/{turf['link_code']}"

    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    csp_violations = _csp_violations(page)
    page.goto(f"{base}/app/")
    _sign_in(page, live, VOLUNTEER)
    page.goto(link)
    page.wait_for_selector(f"h2:has-text('Område {turf['code']}')")
    page.wait_for_selector("#walk li >> nth=4")
    assert _lease_holder(live["url"], turf["code"]) == live["user_id"]
    assert page.url == f"{base}/app/#turf/{turf['code']}"  # the link is not claimed twice
    # a door picked on the map is the one to log
    page.wait_for_selector("#walk-map[data-map=ready]")
    page.click("#walk-map path.door-dot[data-position='4']")
    page.wait_for_selector("section.panel h3:has-text('Byvägen 4')")
    page.evaluate("location.hash = 'turfs'")
    page.wait_for_selector(f"a.card[data-turf='{turf['code']}']")
    # scanned again by its holder: it opens, no error
    page.goto(link)
    page.wait_for_selector(f"h2:has-text('Område {turf['code']}')")
    assert page.locator("#claim-refused").count() == 0
    assert csp_violations == []
    context.close()

    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(link)
    page.wait_for_selector("#email")
    _sign_in(page, live, live["rival"])
    refused = page.locator("#claim-refused")
    refused.wait_for()
    assert f"redan utlånat till {live['forening']}" in refused.inner_text()
    assert _lease_holder(live["url"], turf["code"]) == live["user_id"]
    assert page.locator(f"a.card[data-turf='{turf['code']}']").count() == 0
    assert _axe(page) == [], "a refused claim"
    context.close()


def test_another_user_on_the_same_phone_never_sees_the_queue(live, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    base = live["server"].base_url
    page.goto(f"{base}/app/")
    _sign_in(page, live, VOLUNTEER)
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=TIMEOUT_MS)
    page.evaluate("location.hash = 'phone'")
    page.wait_for_selector("[data-outcome=not_home]")
    before = _count(live["url"], live["user_id"])
    # the token dies on the server mid-queue (as an expired one would)
    context.set_offline(True)
    page.wait_for_function("() => !navigator.onLine")
    page.click("[data-outcome=not_home]")
    _pending(page, 1)
    engine = create_engine(live["url"])
    with Session(engine) as session:
        for device in session.exec(
            select(DeviceToken).where(DeviceToken.user_id == live["user_id"])
        ):
            device.revoked_at = utcnow()
            session.add(device)
        session.commit()
    engine.dispose()
    context.set_offline(False)
    page.wait_for_selector("#email")  # asked to sign in again; the queue waits
    # another volunteer signs in on this phone: the first one's queue is neither shown nor sent
    _sign_in(page, live, "volontar002@example.org")
    _pending(page, 0)
    page.evaluate("location.hash = 'queue'")
    page.wait_for_selector("#sync-now")
    page.click("#sync-now")
    assert page.locator("#queue li").count() == 0
    assert _count(live["url"], live["user_id"]) == before
    # ... until the first signs in again: then it is sent
    page.evaluate("location.hash = 'turfs'")
    page.click("button:has-text('Logga ut')")
    page.wait_for_selector("#email")
    engine = create_engine(live["url"])
    with Session(engine) as session:
        second = session.exec(select(User).where(User.email == "volontar002@example.org")).one()
        devices = session.exec(select(DeviceToken).where(DeviceToken.user_id == second.id)).all()
        # signing out revoked the phone's token on the server
        assert [d.revoked_at is not None for d in devices] == [True]
    engine.dispose()
    _sign_in(page, live, VOLUNTEER)
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while _count(live["url"], live["user_id"]) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    _pending(page, 0)
    assert _count(live["url"], live["user_id"]) == before + 1
    context.close()


def test_undo_removes_a_queued_log_and_withdraws_a_synced_one(live, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{live['server'].base_url}/app/")
    _sign_in(page, live, VOLUNTEER)
    _open_turf(page, live)
    before = _count(live["url"], live["user_id"])
    # still queued: undo simply takes it out of the outbox, and the door is open again
    context.set_offline(True)
    page.wait_for_function("() => !navigator.onLine")
    done = page.locator("#walk .door.done").count()
    page.click("[data-outcome=not_home]")
    _pending(page, 1)
    page.click("#undo")
    _pending(page, 0)
    page.wait_for_function(
        "(n) => document.querySelectorAll('#walk .door.done').length === n", arg=done
    )
    # synced: undo withdraws it on the server, within the correction window
    context.set_offline(False)
    page.wait_for_function("() => navigator.onLine")
    page.click("[data-outcome=refused]")
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while _count(live["url"], live["user_id"]) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    _pending(page, 0)
    page.click("#undo")
    page.wait_for_selector("#toast:has-text('återkallat')")
    last = _server_records(live["url"], live["user_id"])[-1]
    assert last.outcome == "refused" and last.withdrawn_at is not None
    assert _count(live["url"], live["user_id"]) == before + 1

    page.evaluate("location.hash = 'phone'")
    page.wait_for_selector("[data-outcome=wrong_number]")
    assert _axe(page) == [], "phone mode"
    page.evaluate("location.hash = 'turfs'")
    page.wait_for_selector("#turfcode")
    assert _axe(page) == [], "my turfs"

    # my numbers: mine and my förening's, today and for the campaign
    page.evaluate("location.hash = 'numbers'")
    page.wait_for_selector("main table >> nth=1")
    assert page.locator("main h3").first.inner_text() == "Jag"
    assert _axe(page) == [], "my numbers"
    context.close()


def test_visits_and_turf_are_sent_once_the_server_declares_them(live, browser):
    """Today's server has no `visits` in its batch body: the phone keeps them. A server whose
    OpenAPI declares them (faked here) gets each door's visit beside its record."""
    import json

    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    schema = {
        "components": {
            "schemas": {
                "BatchIn": {"properties": {"records": {}, "visits": {}}},
                "ContactIn": {"properties": {"turf": {}}},
            }
        }
    }
    sent = []

    def batch(route):
        body = json.loads(route.request.post_data)
        sent.append(body)
        route.fulfill(
            json={
                "results": [
                    {"index": i, "client_uuid": r["client_uuid"], "status": "created", "id": i + 1}
                    for i, r in enumerate(body["records"])
                ],
                "visit_results": [
                    {"index": i, "client_uuid": v["client_uuid"], "status": "created"}
                    for i, v in enumerate(body.get("visits", []))
                ],
                "created": len(body["records"]),
                "duplicate": 0,
                "rejected": 0,
            }
        )

    page.route("**/openapi.json", lambda route: route.fulfill(json=schema))
    page.route("**/contacts/batch", batch)
    page.goto(f"{live['server'].base_url}/app/")
    _sign_in(page, live, VOLUNTEER)
    _open_turf(page, live)
    context.set_offline(True)
    page.wait_for_function("() => !navigator.onLine")
    page.click("[data-outcome=no_access]")
    _pending(page, 1)
    context.set_offline(False)
    _pending(page, 0)
    (body,) = [b for b in sent if b["records"]]
    (record,) = body["records"]
    (visit,) = body["visits"]
    assert record["turf"] == visit["turf"] == live["code"]
    assert (record["kind"], record["outcome"]) == ("door", "no_access")
    assert set(visit) == {"client_uuid", "turf", "address_id", "status", "occurred_at"}
    assert visit["status"] == "no_access" and visit["client_uuid"] != record["client_uuid"]
    left = page.evaluate(_OUTBOX.replace("'outbox'", "'visits'"))
    assert left == []
    context.close()


def test_stall_session_is_sent_every_15_minutes(live, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.clock.install()
    page.goto(f"{live['server'].base_url}/app/")
    _sign_in(page, live, VOLUNTEER)
    page.evaluate("location.hash = 'stall'")
    page.click("#stall-start")
    context.set_offline(True)
    page.wait_for_function("() => !navigator.onLine")
    for _ in range(3):
        page.click("#stall-plus")
    page.wait_for_selector("#stall-count:has-text('3 samtal')")
    page.clock.fast_forward("16:00")
    # the session goes on with a fresh count; the 3 wait in the queue as one record
    page.wait_for_selector("#stall-count:has-text('0 samtal')")
    _pending(page, 1)
    rows = page.evaluate(_OUTBOX)
    mine = [r for r in rows if r["user_id"] == live["user_id"] and r["state"] == "pending"]
    assert [(r["body"]["kind"], r["body"]["count"]) for r in mine] == [("stall", 3)]
    context.close()
