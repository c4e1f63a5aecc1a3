"""Schema fuzzing: every operation of the app's own OpenAPI schema (``/openapi.json``) gets
generated requests (valid and invalid ones), once as the district admin and once as a volunteer
of the Jämtland demo, in-process against a throwaway SQLite database with the demo loaded.

A run fails on any 5xx, on any answer the schema does not declare (its status code, its
content type, its body), and on any error the app logged or raised. Generation is
derandomized, so a failure found once is found again; shrinking is off and the example counts
are small, so that the whole module stays at about two minutes on two cores.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from api.auth.service import issue_device_token
from api.db import make_engine, session_factory, unit_of_work
from api.demo import load_demo
from api.deps import settings as settings_dep
from api.fastdb import fast_db
from api.main import create_app
from api.migrate import upgrade
from api.models import DeviceToken, User, utcnow
from api.settings import Settings

ADMIN = "distrikt@example.org"  # the district admin of Jämtlands län
VOLUNTEER = "volontar001@example.org"  # a volunteer of a förening in Ragunda
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
REQUEST_SECONDS = 30
# Per operation and caller, besides the coverage phase's cases (about 30 per operation): about
# 8,000 requests, a minute and a half of CPU (longer on a machine that is busy otherwise).
FUZZ = settings(
    max_examples=50,
    deadline=None,  # a slow answer is not a failure here; timings are no assertions
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded time on failures too
    suppress_health_check=list(HealthCheck),
)

# The schema is the one the app serves; fetched without starting the app's lifespan, so that
# collecting this module touches no database.
APP = create_app()
SCHEMA = schemathesis.openapi.from_dict(TestClient(APP).get("/openapi.json").json())
SCHEMA.app = APP
# Fixed, so that schemathesis's own choices (its coverage phase) repeat from run to run too.
SCHEMA.config.seed = 2026


class ErrorLog(logging.Handler):
    """Collects the app's log records of level ERROR and above (tracebacks included)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> list[str]:
        taken = [self.format(r) for r in self.records]
        self.records.clear()
        return taken


@dataclass
class Caller:
    email: str
    token: str
    device_id: int


@dataclass
class Fuzzed:
    """The app's database and the two demo users' tokens."""

    engine: Engine
    callers: dict[str, Caller]
    errors: ErrorLog

    def restore_tokens(self) -> None:
        """A fuzzed revocation may hit the callers' own tokens (ids are small numbers): they
        are made live again after each request to a device route, so that the run keeps
        fuzzing as them."""
        ids = [c.device_id for c in self.callers.values()]
        with self.engine.begin() as conn:
            conn.execute(
                update(DeviceToken)
                .where(col(DeviceToken.id).in_(ids))
                .values(revoked_at=None, revoked_by_user_id=None, last_used_at=utcnow())
            )
            conn.execute(
                update(User)
                .where(col(User.email).in_([c.email for c in self.callers.values()]))
                .values(is_active=True)
            )


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    """A new SQLite file with the demo and a device token for each caller; the app's
    requests run on it. Requests are real units of work: destructive ones stick."""
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'knacka.sqlite3'}"
    app_settings = Settings(_env_file=None, database_url=url)
    upgrade(url)
    engine = make_engine(url)
    callers = {}
    with Session(engine, expire_on_commit=False) as session, unit_of_work(session):
        load_demo(session=session, districts_path=app_settings.demo_districts_path)
        session.flush()
        for email in (ADMIN, VOLUNTEER):
            user = session.exec(select(User).where(User.email == email)).one()
            raw, device = issue_device_token(session=session, user=user, name="fuzz", now=utcnow())
            callers[email] = Caller(email=email, token=raw, device_id=device.id)

    @contextmanager
    def open_session() -> Iterator[Session]:
        with Session(engine, expire_on_commit=False) as session, unit_of_work(session):
            yield session

    async def no_fast_db() -> None:
        return None

    async def fixed_settings() -> Settings:
        return app_settings

    async def factory():
        return open_session

    APP.dependency_overrides[session_factory] = factory
    APP.dependency_overrides[fast_db] = no_fast_db
    APP.dependency_overrides[settings_dep] = fixed_settings
    errors = ErrorLog()
    root = logging.getLogger()
    root.addHandler(errors)
    try:
        yield Fuzzed(engine=engine, callers=callers, errors=errors)
    finally:
        root.removeHandler(errors)
        APP.dependency_overrides.clear()
        engine.dispose()


def _call_and_validate(case: schemathesis.Case, fuzzed: Fuzzed, email: str) -> None:
    headers = {"Authorization": f"Bearer {fuzzed.callers[email].token}"}
    # An exception inside the app propagates out of this call: a failure of the test too. A
    # request that hangs fails after REQUEST_SECONDS instead of holding up the suite.
    try:
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=REQUEST_SECONDS)
    finally:
        if "/devices" in case.path:
            fuzzed.restore_tokens()
    logged = fuzzed.errors.take()
    assert not logged, f"{case.method} {case.formatted_path}: the app logged errors:\n" + "\n".join(
        logged
    )


@SCHEMA.parametrize()
@FUZZ
def test_fuzz_as_district_admin(case: schemathesis.Case, fuzzed: Fuzzed):
    _call_and_validate(case, fuzzed, ADMIN)


@SCHEMA.parametrize()
@FUZZ
def test_fuzz_as_volunteer(case: schemathesis.Case, fuzzed: Fuzzed):
    _call_and_validate(case, fuzzed, VOLUNTEER)
