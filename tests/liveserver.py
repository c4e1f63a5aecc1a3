"""A real Knacka server for tests that need one: the `knacka` command run as a subprocess
against a database of the test's own, and uvicorn serving `api.main:create_app` on a free
port of 127.0.0.1. The uvicorn process is started directly (no wrapper that forks), so its
pid is the process that holds the database connections and can be killed with SIGKILL."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["LiveServer", "free_port", "knacka", "prepare_demo_database"]

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_SECONDS = 60.0
COMMAND_TIMEOUT_SECONDS = 120.0


def _env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KNACKA_DATABASE_URL"}
    env["DATABASE_URL"] = database_url
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def knacka(database_url: str, *args: str) -> str:
    """Run `python -m api.cli ARGS` against ``database_url``; its stdout, or fail loudly."""
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        env=_env(database_url),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"knacka {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout


def prepare_demo_database(database_url: str, email: str) -> str:
    """Migrate, load the demo and return a new bearer token for ``email``."""
    knacka(database_url, "db", "upgrade")
    knacka(database_url, "load-demo")
    token = knacka(database_url, "issue-token", email).strip()
    if not token.startswith("kn_"):
        raise RuntimeError(f"issue-token printed no token: {token!r}")
    return token


class LiveServer:
    """uvicorn serving the app on one port and one database; it can be killed and restarted
    on the same port and database."""

    def __init__(self, database_url: str, log_path: Path, port: int | None = None) -> None:
        self.database_url = database_url
        self.port = port or free_port()
        self.log_path = log_path
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
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def start(self) -> None:
        assert not self.alive(), "the server is already running"
        self.starts += 1
        with self.log_path.open("a") as log:
            log.write(f"\n--- start {self.starts} ---\n")
            log.flush()
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "api.main:create_app",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--no-access-log",
                ],
                env=_env(self.database_url),
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
            try:
                if httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not answer /health within {START_TIMEOUT_SECONDS}s")

    def kill(self) -> int:
        """SIGKILL the uvicorn process: no shutdown, no rollback, no response; its exit code."""
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
