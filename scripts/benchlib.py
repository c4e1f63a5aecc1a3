"""What the benchmark scripts share: running knacka commands and a uvicorn server."""

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["ROOT", "free_port", "run", "uvicorn"]

ROOT = Path(__file__).resolve().parent.parent


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
