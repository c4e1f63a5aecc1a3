"""The benchmark scripts still run (at a tiny size). Their figures are printed for people to
read; no timing is asserted here."""

import re
import sys

import pytest

from api.testing import ROOT, run
from tests.conftest import postgres_database

# script -> (its arguments at a tiny size, what its output holds: a string, or patterns that
# must all match)
SMOKE = {
    "bench_import.py": (["--districts", "60", "--repeat", "1"], "districts/s"),
    "bench_ingest.py": (
        [
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--clients",
            "4",
            "--raw-rows",
            "500",
            "--workers",
            "1",
        ],
        "ratio",
    ),
    "bench_addresses.py": (
        ["--addresses", "2000", "--districts", "60", "--repeat", "1"],
        "ratio",
    ),
    "bench_app_load.py": (
        ["--latency-ms", "20", "--down-kbps", "8000", "--up-kbps", "8000", "--runs", "1"],
        "reopen:",
    ),
    "bench_walklist.py": (["--requests", "20", "--warmup", "2"], "walk list: p50"),
    "bench_map.py": (
        ["--requests", "5", "--warmup", "1"],
        (
            re.compile(r"^geojson: [\d.]+ KB gzipped .*, p99 [\d.]+ ms", re.M),
            re.compile(r"^assets: [\d.]+ KB gzipped", re.M),
        ),
    ),
    "bench_aggregate.py": (
        ["--contacts", "20000", "--new-records", "500", "--requests", "10", "--warmup", "2"],
        "ratio",
    ),
    "bench_members.py": (
        ["--members", "2000", "--kommun-members", "200", "--requests", "10", "--warmup", "2"],
        "p99",
    ),
    "bench_national.py": (
        [
            *("--contacts", "20000", "--new-records", "500", "--leads", "60"),
            *("--requests", "10", "--warmup", "2"),
        ],
        "nightly run:",
    ),
    "bench_turfs.py": (["--households", "3000", "--districts", "4", "--repeat", "1"], "max/target"),
}


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_benchmark_runs_and_prints_its_ratios(script):
    with postgres_database():  # skips, or fails in CI, when PostgreSQL is not reachable
        pass
    args, expected = SMOKE[script]
    done = run([sys.executable, str(ROOT / "scripts" / script), *args], timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    if isinstance(expected, str):
        assert expected in done.stdout
    else:
        for pattern in expected:
            assert pattern.search(done.stdout), (pattern.pattern, done.stdout[-3000:])
