"""Running Knacka for real, for the tests and the benchmark scripts alike: a throwaway
PostgreSQL database, the ``knacka`` command in a subprocess, uvicorn on a free port, and a
percentile of measured latencies.

It lives in the package because it is the one place both can import without installing
anything more (tests/ and scripts/ are not packages, and neither is on the other's path).
It ships, so it needs nothing beyond the package's own dependencies and the standard
library: psycopg and SQLAlchemy's URLs, subprocess, socket, urllib. What belongs to pytest —
skipping, or failing in CI, when PostgreSQL is not reachable — stays in tests/conftest.py.
"""

import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy.engine import make_url

__all__ = [
    "PG_ADMIN_URL",
    "ROOT",
    "TUNED",
    "LiveServer",
    "GeneratedAddresses",
    "free_port",
    "generated_addresses",
    "generated_kommun",
    "issue_token",
    "knacka",
    "knacka_argv",
    "knacka_env",
    "load_demo_database",
    "percentile",
    "run",
    "throwaway_database",
]

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get(
    "KNACKA_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# uvicorn as `knacka serve` runs it in production, quiet but for warnings: for measuring.
TUNED = ("--loop", "uvloop", "--http", "httptools", "--log-level", "warning")
START_TIMEOUT_SECONDS = 60.0


@contextmanager
def throwaway_database(*, prefix: str = "knacka_test", keep: bool = False) -> Iterator[str]:
    """A new, uniquely named database on the server of PG_ADMIN_URL, dropped on exit unless
    ``keep``; yields its URL. Raises psycopg.OperationalError when the server is not
    reachable."""
    import psycopg

    admin_url = make_url(PG_ADMIN_URL)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conninfo = admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = admin_url.set(drivername="postgresql+psycopg", database=name)
            yield url.render_as_string(hide_password=False)
        finally:
            if keep:
                print(f"kept database {name}")
            else:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (as of now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float | None = 120.0,
    check: bool = True,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root, capturing its output; with ``check``, one
    that fails raises RuntimeError with what it printed."""
    done = subprocess.run(
        list(argv),
        env=env,
        cwd=ROOT,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, argv))} exited {done.returncode}:\n"
            f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    return done


def knacka_argv(*args: str) -> list[str]:
    """The command line of ``knacka ARGS``, with this interpreter."""
    return [sys.executable, "-m", "api.cli", *args]


def knacka_env(database_url: str, **extra: str) -> dict[str, str]:
    """This process's environment with ``database_url`` as the one database."""
    env = {k: v for k, v in os.environ.items() if k != "KNACKA_DATABASE_URL"}
    return {**env, "DATABASE_URL": database_url, **extra}


def knacka(
    database_url: str, *args: str, timeout: float = 120.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``knacka ARGS`` against ``database_url`` (see ``run``)."""
    return run(knacka_argv(*args), env=knacka_env(database_url), timeout=timeout, check=check)


def load_demo_database(database_url: str) -> None:
    """Migrate ``database_url`` and load the demo into it."""
    knacka(database_url, "db", "upgrade")
    knacka(database_url, "load-demo")


def issue_token(database_url: str, email: str, *, device: str | None = None) -> str:
    """A new bearer token for the user ``email``, from ``knacka issue-token``."""
    args = ["issue-token", email, *(["--device", device] if device else [])]
    token = knacka(database_url, *args).stdout.strip()
    if not token.startswith("kn_"):
        raise RuntimeError(f"issue-token printed no token: {token!r}")
    return token


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0.5, 0.99, ...) of ``values``; NaN when there are none."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 1000) - 1]


# Straight to 127.0.0.1: no proxy from the environment in between.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _answers(url: str) -> bool:
    try:
        with _direct.open(url, timeout=2) as response:
            return response.status == 200
    except (OSError, http.client.HTTPException):
        return False


class LiveServer:
    """A server process on a free port of 127.0.0.1 and one database, answering /health
    once started; it can be killed and started again on the same port and database.

    By default uvicorn serves ``app`` and is started directly (no wrapper that forks), so
    that its pid is the process that holds the database connections (with ``workers`` > 1,
    their parent). ``command`` runs something else instead, given ``--port``: for example
    ``knacka_argv("serve")``."""

    def __init__(
        self,
        database_url: str,
        log_path: Path,
        *,
        port: int | None = None,
        app: str = "api.main:create_app",
        workers: int = 1,
        options: Sequence[str] = ("--no-access-log",),
        command: Sequence[str] | None = None,
    ) -> None:
        self.database_url = database_url
        self.log_path = log_path
        self.port = port or free_port()
        self.command = (
            list(command)
            if command is not None
            else [
                *(sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1"),
                *("--workers", str(workers), *options),
            ]
        )
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the server was never started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        """The end of what the server printed."""
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def start(self) -> None:
        """Start the server and wait until it answers /health."""
        assert not self.alive(), "the server is already running"
        self.starts += 1
        with self.log_path.open("a") as log:
            if self.starts > 1:
                log.write(f"\n--- start {self.starts} ---\n")
                log.flush()
            self.proc = subprocess.Popen(
                [*self.command, "--port", str(self.port)],
                env=knacka_env(self.database_url),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {self.proc.returncode} while starting:\n{self.log()}"
                )
            if _answers(f"{self.base_url}/health"):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"the server did not answer /health within {START_TIMEOUT_SECONDS}s:\n{self.log()}"
        )

    def kill(self) -> int:
        """SIGKILL the server process: no shutdown, no rollback, no response; its exit code."""
        assert self.alive(), "the server is not running"
        os.kill(self.pid, signal.SIGKILL)
        return self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Stop the server if it runs (for finally blocks); never raises on a dead server."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)

    def __enter__(self) -> "LiveServer":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# -- generated addresses for turf cutting (tests and scripts/bench_turfs.py) ----------------


class GeneratedAddresses(NamedTuple):
    """Made-up entrances in one district, EPSG:3006 metres: villas of one household along
    their streets and blocks of several entrances of many households each."""

    xy: Any  # numpy array (n, 2)
    households: Any  # numpy int array (n,)
    streets: list[str]
    numbers: list[str]
    entrances: list[str | None]


def generated_addresses(
    district: Any, *, households: int, seed: int, prefix: str = "Gata", villa_share: float = 0.3
) -> GeneratedAddresses:
    """About ``households`` households at entrances inside ``district`` (a shapely polygon in
    EPSG:3006), clustered around a few centres; the same ``seed`` gives the same addresses."""
    import numpy as np
    import shapely

    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = district.bounds
    shapely.prepare(district)

    def inside(n: int) -> Any:
        found = np.empty((0, 2))
        while len(found) < n:
            cand = rng.uniform((minx, miny), (maxx, maxy), size=(max(64, 4 * n), 2))
            found = np.vstack([found, cand[shapely.contains_xy(district, cand[:, 0], cand[:, 1])]])
        return found[:n]

    centres = inside(max(1, households // 400))
    xy, hh, streets, numbers, entrances = [], [], [], [], []
    street_of: dict[tuple[int, bool], tuple[str, int]] = {}
    # A block holds about 36 households: villas are drawn that much more often, so that
    # ``villa_share`` is their share of the households.
    villa_odds = villa_share * 36.0 / (villa_share * 36.0 + (1.0 - villa_share))
    total = 0
    while total < households:
        c = int(rng.integers(len(centres)))
        villa = bool(rng.random() < villa_odds)
        name, next_no = street_of.get((c, villa), (f"{prefix} {c}{'v' if villa else 'b'}", 1))
        spread = 150.0 if villa else 90.0
        at = centres[c] + rng.normal(0.0, spread, 2)
        if not shapely.contains_xy(district, at[0], at[1]):
            at = inside(1)[0]
        if villa:
            parts = [1]
        else:
            parts = [int(v) for v in rng.integers(4, 26, size=int(rng.integers(1, 5)))]
        for e, n in enumerate(parts):
            spot = at + (8.0 * e, 0.0)
            if not shapely.contains_xy(district, spot[0], spot[1]):
                spot = at
            xy.append(spot)
            hh.append(n)
            streets.append(name)
            numbers.append(str(next_no))
            entrances.append(None if villa else "ABCD"[e])
            total += n
        street_of[(c, villa)] = (name, next_no + 1)
    return GeneratedAddresses(
        np.array(xy), np.array(hh, dtype=np.int64), streets, numbers, entrances
    )


def generated_kommun(
    *, households: int = 50_000, districts: int = 40, seed: int = 1
) -> list[tuple[Any, GeneratedAddresses]]:
    """A made-up kommun near Stockholm in EPSG:3006: ``districts`` Voronoi-shaped districts
    with uneven shares of ``households`` generated addresses; (polygon, addresses) each."""
    import numpy as np
    import shapely

    rng = np.random.default_rng(seed)
    box = shapely.box(660_000.0, 6_570_000.0, 680_000.0, 6_585_000.0)
    seeds = rng.uniform((660_000.0, 6_570_000.0), (680_000.0, 6_585_000.0), size=(districts, 2))
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=box, ordered=True)
    )
    polygons = shapely.intersection(cells, box)
    shares = rng.gamma(4.0, size=districts)
    counts = np.maximum(1, np.round(households * shares / shares.sum())).astype(int)
    return [
        (poly, generated_addresses(poly, households=int(n), seed=seed * 1000 + i, prefix=f"D{i}"))
        for i, (poly, n) in enumerate(zip(polygons, counts, strict=True))
    ]
