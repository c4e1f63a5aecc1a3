"""What the benchmark scripts share: running knacka commands and a uvicorn server."""

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PG_ADMIN", "ROOT", "fresh_database", "free_port", "run", "uvicorn"]

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get(
    "KNACKA_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@contextlib.contextmanager
def fresh_database(*, keep: bool = False) -> Iterator[str]:
    """A new PostgreSQL database of the benchmark's own, dropped on exit unless ``keep``;
    yields its name. Raises psycopg.OperationalError when PostgreSQL is not reachable."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin_url = make_url(PG_ADMIN).set(drivername="postgresql").render_as_string(False)
    dbname = f"knacka_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
        try:
            yield dbname
        finally:
            if keep:
                print(f"kept database {dbname}")
            else:
                admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def run(args: list[str], env: dict, timeout: float) -> str:
    """Run a command from the repository root; its stdout, or an error with its stderr."""
    out = subprocess.run(
        args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args[1:])} failed:\n{out.stderr[-2000:]}")
    return out.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def uvicorn(
    env: dict, log: Path, *, app: str = "api.main:create_app", workers: int = 1
) -> Iterator[tuple[subprocess.Popen, str]]:
    """A uvicorn server on uvloop + httptools on a free loopback port, answering /health;
    stopped on exit. Yields the process and its base URL."""
    import httpx

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", app, "--factory"),
                *("--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)),
                *("--loop", "uvloop", "--http", "httptools", "--log-level", "warning"),
            ],
            env=env,
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {server.returncode}:\n{log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not answer /health:\n{log.read_text()}")
            time.sleep(0.1)
        yield server, base_url
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=5)
