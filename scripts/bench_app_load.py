#!/usr/bin/env python3
"""Benchmark: how fast the volunteers' app opens on a slow mobile connection.

Serves Knacka on a fresh SQLite database and opens /app/ in Chromium (the system's,
/usr/bin/chromium, through Playwright) with the network throttled through the DevTools
protocol (Network.emulateNetworkConditions: ``--latency-ms`` round trip, ``--down-kbps``
down, ``--up-kbps`` up). It measures, ``--runs`` times each in fresh browser profiles:

- first load: a browser that never saw the app, until the page's load event (every module
  script has run by then), the app's first screen is drawn and the walk list's map library
  (the leads' map's vendored Leaflet, which the page preloads) has arrived;
- reopen: the same browser once the service worker has cached the app, a new tab, until
  the same point; the files come from the service worker's cache.

The basemap's tiles are not the app's to load: requests to the tile server are blocked, so
they never count. It also prints the app's own code gzipped (the budget is 100 KB; the map
library aside) and what the map library weighs on the wire. Targets: first load under 5 s,
reopen under 1 s on 400 ms / 400 kbit/s.

Usage: python scripts/bench_app_load.py [--latency-ms 400] [--down-kbps 400] [--runs 3]
"""

import argparse
import gzip
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.map.router import LEAFLET  # noqa: E402  (the repository is on the path)
from api.settings import Settings  # noqa: E402
from api.testing import LiveServer, knacka  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
APP_FILES = ROOT / "api" / "app"


def app_code_gzipped_kb() -> float:
    """The app's own code (page, scripts, style, service worker, manifest), gzipped."""
    files = [
        p
        for p in sorted(APP_FILES.rglob("*"))
        if p.suffix in (".js", ".css", ".html", ".webmanifest")
    ]
    return sum(len(gzip.compress(p.read_bytes(), 9)) for p in files) / 1024


def throttle(context, page, args) -> None:
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    # The basemap is someone else's server: its tiles are left out of every figure.
    tiles = Settings(_env_file=None).basemap_url.split("{", 1)[0]
    cdp.send("Network.setBlockedURLs", {"urls": [f"{tiles}*"]})
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": args.latency_ms,
            "downloadThroughput": args.down_kbps * 1000 / 8,
            "uploadThroughput": args.up_kbps * 1000 / 8,
            "connectionType": "cellular3g",
        },
    )


# Every file of the map library has arrived (the page preloads it while the app starts).
_MAP_LIBRARY = """(urls) => urls.every((u) => {
  const entry = performance.getEntriesByName(new URL(u, location.href).href)[0];
  return entry && entry.responseEnd > 0;
})"""


def open_app(context, url: str, args) -> tuple[float, object]:
    """Seconds from navigation until the app's first screen is drawn and the map library
    has arrived."""
    page = context.new_page()
    throttle(context, page, args)
    started = time.perf_counter()
    page.goto(url, wait_until="load", timeout=120_000)
    page.wait_for_selector("#email", timeout=120_000)
    page.wait_for_function(_MAP_LIBRARY, arg=list(LEAFLET), timeout=120_000, polling=50)
    elapsed = time.perf_counter() - started
    return elapsed, page


def map_library_kb(page) -> float:
    """What the map library weighed on the wire in the first load (gzipped by the server)."""
    sizes = page.evaluate(
        """(urls) => urls.map((u) =>
          performance.getEntriesByName(new URL(u, location.href).href)[0].transferSize)""",
        list(LEAFLET),
    )
    return sum(sizes) / 1024


def measure(browser, url: str, args) -> tuple[float, float, float]:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        first, page = open_app(context, url, args)
        wire = map_library_kb(page)
        # The service worker caches the app shell after the first load; wait until it has.
        page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=120_000)
        page.close()
        reopen, page = open_app(context, url, args)
        served = page.evaluate(
            "() => performance.getEntriesByType('navigation')[0].workerStart > 0"
        )
        if not served:
            raise RuntimeError("the reopened app was not served by its service worker")
        return first, reopen, wire
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-ms", type=float, default=400)
    parser.add_argument("--down-kbps", type=float, default=400)
    parser.add_argument("--up-kbps", type=float, default=400)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.sqlite3"
        knacka(url, "db", "upgrade")
        with LiveServer(url, Path(tmp) / "server.log") as server, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                runs = [measure(browser, f"{server.base_url}/app/", args) for _ in range(args.runs)]
            finally:
                browser.close()
    print(
        f"network: {args.latency_ms:g} ms latency, {args.down_kbps:g} kbit/s down, "
        f"{args.up_kbps:g} kbit/s up; {args.runs} runs, medians"
    )
    print(f"app code: {app_code_gzipped_kb():.1f} KB gzipped (budget 100 KB)")
    print(
        f"map library (the leads' map's Leaflet): {statistics.median(r[2] for r in runs):.1f} KB"
        " on the wire in the first load; basemap tiles blocked"
    )
    print(f"first load: {statistics.median(r[0] for r in runs):.2f} s (target < 5 s)")
    print(f"reopen: {statistics.median(r[1] for r in runs):.2f} s (target < 1 s)")


if __name__ == "__main__":
    main()
