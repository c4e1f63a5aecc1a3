"""A hostile upload to ``POST /districts/import``: a zip of about 1 MB holding a GeoJSON padded
with over 1 GiB of spaces, sent to a live uvicorn server.

- A volunteer may not import at all: 403, the role being checked before the file is read.
- A district admin may, but not a file that unpacks to more than the limit: 413.
- Meanwhile ``/health`` (polled every 100 ms from another thread) keeps answering within 1 s,
  and the server process survives the request (same pid, nothing 'died' in its log).

The server runs one worker (the live-server helper starts uvicorn without ``--workers``), so
the hostile request and the health checks share one process and its event loop.
"""

import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import Session

from api.auth.service import issue_device_token
from api.db import make_engine, unit_of_work
from api.demo import load_demo
from api.migrate import upgrade
from api.models import User, utcnow
from api.settings import Settings
from api.testing import LiveServer

ADMIN = "distrikt@example.org"  # the district admin of Jämtlands län
VOLUNTEER = "volontar001@example.org"
PADDING_MIB = 1025  # spaces; a little over 1 GiB unpacked, about 1 MB packed
# The unpacked-size limit is a setting; a low one here, so that the padding is over it
# whatever the default is. Unknown settings are ignored by the app.
UNZIPPED_LIMIT_MB = "256"
HEALTH_EVERY_SECONDS = 0.1
HEALTH_TIMEOUT = httpx.Timeout(1.0)
UPLOAD_TIMEOUT = httpx.Timeout(20.0, connect=5.0)


def hostile_zip(path: Path) -> Path:
    """Write the zip streaming: the unpacked GeoJSON never exists on disk or in memory."""
    chunk = b" " * (1 << 20)
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("districts.geojson", "w", force_zip64=True) as member,
    ):
        member.write(b'{"type": "FeatureCollection", "features": [')
        for _ in range(PADDING_MIB):
            member.write(chunk)
        member.write(b"]}")
    return path


@dataclass
class Served:
    server: LiveServer
    tokens: dict[str, str]
    upload: Path


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: pytest.MonkeyPatch
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("hostile-upload")
    upload = folder / "districts.zip"
    # Packing a GiB takes seconds of one core (zlib lets go of the GIL): beside the set-up.
    packing = threading.Thread(target=hostile_zip, args=(upload,), daemon=True)
    packing.start()
    url = f"sqlite:///{folder / 'live.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with Session(engine, expire_on_commit=False) as session, unit_of_work(session):
            load_demo(session=session, districts_path=Settings(_env_file=None).demo_districts_path)
            session.flush()
            tokens = {}
            for email in (VOLUNTEER, ADMIN):
                user = session.execute(select(User).where(User.email == email)).scalar_one()
                tokens[email] = issue_device_token(
                    session=session, user=user, name="test", now=utcnow()
                )[0]
    finally:
        engine.dispose()
    packing.join(timeout=120)
    assert upload.exists() and not packing.is_alive(), "the zip was not written"
    monkeypatch_module.setenv("KNACKA_IMPORT_MAX_UNZIPPED_MB", UNZIPPED_LIMIT_MB)
    # Two workers: a worker that a request could kill would show as a changed pid or a
    # "died" line in the log.
    server = LiveServer(url, folder / "server.log", workers=2)
    server.start()
    try:
        yield Served(server=server, tokens=tokens, upload=upload)
    finally:
        server.stop()
        print(f"server log ({server.log_path}):\n{server.log()}")  # shown if a test failed


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@dataclass
class HealthWatch:
    """Polls /health every 100 ms until stopped; records each miss (no 200 within 1 s)."""

    base_url: str
    polls: int = 0
    misses: list[str] = field(default_factory=list)
    slowest: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=HEALTH_TIMEOUT) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    response = client.get("/health")
                    if response.status_code != 200:
                        self.misses.append(f"{response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as exc:
                    self.misses.append(
                        f"{type(exc).__name__} after {time.monotonic() - started:.2f}s"
                    )
                self.polls += 1
                self.slowest = max(self.slowest, time.monotonic() - started)
                self._stop.wait(HEALTH_EVERY_SECONDS)

    def stop(self) -> None:
        self._stop.set()


def post_while_watching(served: Served, email: str) -> tuple[httpx.Response | str, HealthWatch]:
    """POST the zip as ``email`` with /health polled throughout; the answer (or the transport
    error's name) and what the poller saw."""
    server = served.server
    pid = server.pid
    watch = HealthWatch(server.base_url)
    poller = threading.Thread(target=watch.run, daemon=True)
    poller.start()
    try:
        with (
            httpx.Client(
                base_url=server.base_url,
                headers={"Authorization": f"Bearer {served.tokens[email]}"},
                timeout=UPLOAD_TIMEOUT,
            ) as client,
            served.upload.open("rb") as body,
        ):
            try:
                answer: httpx.Response | str = client.post(
                    "/districts/import",
                    params={"dry_run": "true"},
                    files={"file": ("districts.zip", body, "application/zip")},
                )
            except httpx.HTTPError as exc:
                answer = f"{type(exc).__name__}: {exc}"
        time.sleep(1.0)  # a worker that dies of the request dies now at the latest
    finally:
        watch.stop()
        poller.join(timeout=5)
    print(
        f"\n{email}: {getattr(answer, 'status_code', answer)}; /health polled {watch.polls} "
        f"times, slowest {watch.slowest:.3f}s, {len(watch.misses)} misses"
    )
    assert server.alive() and server.pid == pid, f"the server process died:\n{server.log()}"
    assert "died" not in server.log(), server.log()
    return answer, watch


def test_volunteer_hostile_zip_is_refused_before_it_is_read(served: Served):
    answer, watch = post_while_watching(served, VOLUNTEER)

    assert not watch.misses, f"/health did not answer within 1 s: {watch.misses[:5]}"
    assert watch.polls > 0
    assert isinstance(answer, httpx.Response), f"no answer: {answer}"
    assert answer.status_code == 403, answer.text


def test_admin_hostile_zip_is_refused_as_too_large_unpacked(served: Served):
    answer, watch = post_while_watching(served, ADMIN)

    assert not watch.misses, f"/health did not answer within 1 s: {watch.misses[:5]}"
    assert watch.polls > 0
    assert isinstance(answer, httpx.Response), f"no answer: {answer}"
    assert answer.status_code == 413, answer.text
    assert "file" in answer.json()["detail"], answer.text
