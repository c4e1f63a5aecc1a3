#!/usr/bin/env python3
"""Benchmark: how fast the volunteers' app opens on a slow mobile connection.

Serves Knacka on a fresh SQLite database and opens /app/ in Chromium (the system's,
/usr/bin/chromium, through Playwright) with the network throttled through the DevTools
protocol (Network.emulateNetworkConditions: ``--latency-ms`` round trip, ``--down-kbps``
down, ``--up-kbps`` up). It measures, ``--runs`` times each in fresh browser profiles:

- first load: a browser that never saw the app, until the page's load event (every module
  script has run by then) and the app's first screen is drawn;
- reopen: the same browser once the service worker has cached the app, a new tab, until
  the same point; the files come from the service worker's cache.

The app draws its map as inline SVG, so there are no basemap tiles to leave out. It also
prints the app's own code gzipped (the budget is 100 KB). Targets: first load under 5 s,
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

from api.testing import LiveServer, knacka  # noqa: E402  (the repository is on the path)

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


def open_app(context, url: str, args) -> float:
    """Seconds from navigation until the app's first screen is drawn."""
    page = context.new_page()
    throttle(context, page, args)
    started = time.perf_counter()
    page.goto(url, wait_until="load", timeout=120_000)
    page.wait_for_selector("#email", timeout=120_000)
    elapsed = time.perf_counter() - started
    return elapsed, page


def measure(browser, url: str, args) -> tuple[float, float]:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        first, page = open_app(context, url, args)
        # The service worker caches the app shell after the first load; wait until it has.
        page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=120_000)
        page.close()
        reopen, page = open_app(context, url, args)
        served = page.evaluate(
            "() => performance.getEntriesByType('navigation')[0].workerStart > 0"
        )
        if not served:
            raise RuntimeError("the reopened app was not served by its service worker")
        return first, reopen
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
    print(f"first load: {statistics.median(r[0] for r in runs):.2f} s (target < 5 s)")
    print(f"reopen: {statistics.median(r[1] for r in runs):.2f} s (target < 1 s)")


if __name__ == "__main__":
    main()
