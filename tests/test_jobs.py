"""The nightly job and its emails, against databases of their own (the job commits in
several transactions, as it does in production) and a real SMTP server on loopback."""

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlmodel import Session, func, select

from api import db
from api.db import make_engine
from api.jobs import retry_outbox, run_nightly
from api.mail import smtp_session
from api.migrate import upgrade
from api.models import DailyGrain, DailyStat, EmailOutbox, JobRun, JobRunStatus, OutboxStatus, Role
from tests import factories as f
from tests.conftest import BACKENDS, postgres_database

ROOT = Path(__file__).resolve().parents[1]
NIGHT = "2026-05-04T02:30:00+02:00"  # closes the night of 2026-05-03


@pytest.fixture(params=BACKENDS)
def job_db(request, tmp_path, monkeypatch):
    """A fresh, committed database per test; the jobs' sessions use it."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
        upgrade(url)
        engine = make_engine(url)
        monkeypatch.setattr(db, "get_engine", lambda: engine)
        yield url, engine
        engine.dispose()
    else:
        with postgres_database() as url:
            upgrade(url)
            engine = make_engine(url)
            monkeypatch.setattr(db, "get_engine", lambda: engine)
            yield url, engine
            engine.dispose()


def _world(engine) -> dict:
    """Jämtland with two kommuner, leads of every kind, and a week of logging."""
    with Session(engine, expire_on_commit=False) as s:
        pd = f.partidistrikt(s)
        ost, are = f.kommun(s, pd=pd), f.kommun(s, "2321", "Åre", pd)
        frosön = f.forening(s, ost, "S-föreningen Frösön")
        jarpen = f.forening(s, are, "S-föreningen Järpen")
        d_ost = f.district(s, ost, "23800001", 0, frosön)
        d_are = f.district(s, are, "23210001", 3, jarpen)
        camp = f.campaign(s, pd, "2026-03-01", "2026-09-13")
        for unit, value in ((pd, 1000), (ost, 600), (are, 400), (frosön, 600)):
            f.target(s, camp, unit, "conversations", value)
        people = {
            "admin": f.user(s, Role.district_admin, pd),
            "ost_lead": f.user(s, Role.kommun_lead, ost),
            "are_lead": f.user(s, Role.kommun_lead, are),
            "frosön_lead": f.user(s, Role.forening_lead, frosön),
            "vol_a": f.user(s, Role.volunteer, frosön),
            "vol_c": f.user(s, Role.volunteer, jarpen),
        }
        people["vol_a"].display_name = "Volontär på Frösön"
        for day in range(27, 31):
            when = datetime.fromisoformat(f"2026-04-{day}T10:00:00+00:00")
            for _ in range(day - 20):
                f.contact(s, people["vol_a"], d_ost, when)
            f.contact(s, people["vol_c"], d_are, when)
        s.commit()
        return {"people": people, "ost": ost, "are": are, "campaign": camp}


def _count(engine, model, *where) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()


def test_nightly_builds_snapshots_and_emails_each_lead_their_scope(job_db, inbox, settings):
    _, engine = job_db
    w = _world(engine)
    result = run_nightly(settings=settings, now=datetime.fromisoformat(NIGHT))
    assert result["status"] == "ran" and result["nights"] == ["2026-05-03"]
    assert result["emails"] == {"lost": 0, "sent": 4}
    p = w["people"]
    admin_mail = inbox.to(p["admin"].email)[0]
    assert admin_mail.get_content_type() == "multipart/alternative"
    assert admin_mail["Subject"] == "Knacka: läget för Jämtlands län 2026-05-04"
    text = admin_mail.get_body(("plain",)).get_content()
    html_part = admin_mail.get_body(("html",))
    html = html_part.get_content()
    assert "Samtal: 38 av 1 000" in text  # vol_a 7+8+9+10, vol_c 4
    assert "Östersund" in text and "Åre" in text and "Östersund" in html
    images = [part for part in admin_mail.walk() if part.get_content_type() == "image/png"]
    assert len(images) == 1 and images[0].get_content().startswith(b"\x89PNG")
    assert f"cid:{images[0]['Content-ID'][1:-1]}" in html
    ost_text = inbox.to(p["ost_lead"].email)[0].get_body(("plain",)).get_content()
    assert "Samtal: 34 av 600" in ost_text and "S-föreningen Frösön" in ost_text
    assert "Järpen" not in ost_text
    are_text = inbox.to(p["are_lead"].email)[0].get_body(("plain",)).get_content()
    assert "Samtal: 4 av 400" in are_text and "Frösön" not in are_text
    forening_text = inbox.to(p["frosön_lead"].email)[0].get_body(("plain",)).get_content()
    assert "23800001" in forening_text or "Distrikt 23800001" in forening_text
    assert "Volontär på Frösön: 27, 27" in forening_text  # the last 7 days: 04-28 .. 05-04
    assert inbox.to(p["vol_a"].email) == []  # volunteers get no nightly email
    with Session(engine) as s:
        stat = s.exec(
            select(DailyStat).where(
                DailyStat.unit_kind == "kommun", DailyStat.unit_id == w["ost"].id
            )
        ).all()
    assert sum(x.conversations for x in stat) == 34


def test_rerun_sends_nothing_twice_and_rebuilds_identically(job_db, inbox, settings):
    _, engine = job_db
    _world(engine)
    run_nightly(settings=settings, now=datetime.fromisoformat(NIGHT))

    def snapshot():
        with Session(engine) as s:
            stats = sorted(tuple(r) for r in s.exec(select(DailyStat)).all())
            grain = sorted(tuple(r) for r in s.exec(select(DailyGrain)).all())
            return stats, grain

    def grain_indexes():
        found = inspect(engine)
        return found.get_pk_constraint("daily_grain"), found.get_indexes("daily_grain")

    before, indexes = snapshot(), grain_indexes()
    again = run_nightly(settings=settings, now=datetime.fromisoformat(NIGHT))
    assert again["nights"] == [] and again["queued"] == 0
    assert len(inbox.messages) == 4
    from api.progress.snapshots import rebuild_days

    with db.session_scope() as s:
        rebuild_days(
            s, [date(2026, 4, 27), date(2026, 4, 28), date(2026, 4, 29), date(2026, 4, 30)]
        )
    assert snapshot() == before
    # Every day at once: on PostgreSQL, the indexes are dropped for the load and rebuilt.
    with db.session_scope() as s:
        rebuild_days(s, None)
    assert snapshot() == before and before[1]
    assert grain_indexes() == indexes and len(indexes[1]) == 3


def test_missed_nights_are_caught_up(job_db, inbox, settings):
    _, engine = job_db
    w = _world(engine)
    run_nightly(settings=settings, now=datetime.fromisoformat(NIGHT), emails=False)
    with Session(engine) as s:
        when = datetime.fromisoformat("2026-05-05T10:00:00+00:00")
        f.contact(s, w["people"]["vol_c"], s.exec(select(f.District)).all()[-1], when)
        s.commit()
    later = datetime.fromisoformat("2026-05-08T02:30:00+02:00")
    result = run_nightly(settings=settings, now=later, emails=False)
    assert result["nights"] == ["2026-05-04", "2026-05-05", "2026-05-06", "2026-05-07"]
    runs = _count(engine, JobRun, JobRun.status == JobRunStatus.succeeded)
    assert runs == 5
    with Session(engine) as s:
        may5 = s.exec(
            select(DailyStat).where(
                DailyStat.day == date(2026, 5, 5), DailyStat.unit_kind == "kommun"
            )
        ).one()
    assert may5.conversations == 1


def test_two_scheduler_processes_run_the_night_once(job_db, inbox, settings):
    url, engine = job_db
    w = _world(engine)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "KNACKA_SMTP_HOST": "127.0.0.1",
        "KNACKA_SMTP_PORT": str(settings.smtp_port),
    }
    cmd = [sys.executable, "-m", "api.cli", "run-job", "nightly", "--now", NIGHT]
    procs = [
        subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    ran = [r for r in results if r["status"] == "ran" and r.get("nights")]
    assert len(ran) == 1, results
    assert _count(engine, JobRun, JobRun.for_day == date(2026, 5, 3)) == 1
    for lead in ("admin", "ost_lead", "are_lead", "frosön_lead"):
        assert len(inbox.to(w["people"][lead].email)) == 1


def test_temporary_failure_is_retried_and_permanent_one_fails_alone(job_db, inbox, settings):
    _, engine = job_db
    w = _world(engine)
    p = w["people"]
    inbox.replies[p["ost_lead"].email] = ["451 4.3.0 try again later"]
    inbox.replies[p["are_lead"].email] = ["550 5.1.1 no such mailbox"]
    night = datetime.fromisoformat(NIGHT)
    result = run_nightly(settings=settings, now=night)
    assert result["emails"] == {"lost": 0, "sent": 2, "pending": 1, "failed": 1}
    assert len(inbox.to(p["admin"].email)) == 1 and inbox.to(p["ost_lead"].email) == []
    assert retry_outbox(settings=settings, now=night + timedelta(minutes=5)) == {"lost": 0}
    retried = retry_outbox(settings=settings, now=night + timedelta(minutes=20))
    assert retried == {"lost": 0, "sent": 1}
    assert len(inbox.to(p["ost_lead"].email)) == 1 and inbox.to(p["are_lead"].email) == []
    with Session(engine) as s:
        failed = s.exec(select(EmailOutbox).where(EmailOutbox.status == OutboxStatus.failed)).one()
    assert failed.user_id == p["are_lead"].id and "550" in failed.last_error


class Crash(BaseException):
    """Stands in for the process dying."""


def test_crash_mid_send_and_rerun_never_duplicates(job_db, inbox, settings):
    _, engine = job_db
    w = _world(engine)
    sent = []

    @contextmanager
    def dying_mailer(settings):
        with smtp_session(settings) as real:

            class Dying:
                def send(self, message):
                    real.send(message)
                    sent.append(message["To"])
                    if len(sent) == 2:
                        raise Crash  # delivered, but the process dies before recording it

            yield Dying()

    with pytest.raises(Crash):
        run_nightly(settings=settings, now=datetime.fromisoformat(NIGHT), mailer=dying_mailer)
    rerun = run_nightly(settings=settings, now=datetime.fromisoformat(NIGHT))
    assert rerun["emails"] == {"lost": 1, "sent": 2}
    addresses = [m["To"] for m in inbox.messages]
    assert len(addresses) == len(set(addresses)) == 4
    assert {u.email for k, u in w["people"].items() if k not in ("vol_a", "vol_c")} == set(
        addresses
    )


def test_opted_out_leads_get_nothing(job_db, inbox, settings):
    _, engine = job_db
    w = _world(engine)
    with Session(engine) as s:
        admin = s.get(f.User, w["people"]["admin"].id)
        admin.nightly_email = False
        s.add(admin)
        s.commit()
    result = run_nightly(settings=settings, now=datetime.fromisoformat(NIGHT))
    assert result["queued"] == 3 and inbox.to(w["people"]["admin"].email) == []


def test_incremental_run_follows_corrections_and_withdrawals(job_db, inbox, settings):
    _, engine = job_db
    _world(engine)
    run_nightly(settings=settings, now=datetime.fromisoformat(NIGHT), emails=False)
    with Session(engine) as s:
        other = f.district(
            s, s.exec(select(f.Kommun).where(f.Kommun.code == "2380")).one(), "23800002", 1
        )
        logs = s.exec(select(f.ContactLog).where(f.ContactLog.day == date(2026, 4, 30))).all()
        moved, gone = logs[0], logs[1]
        later = datetime.fromisoformat("2026-05-04T12:00:00+00:00")
        moved.district_id, moved.changed_at = other.id, later
        gone.withdrawn_at, gone.changed_at = later, later
        s.add_all([moved, gone])
        s.commit()
        other_id, old_id = other.id, logs[2].district_id
    run_nightly(
        settings=settings, now=datetime.fromisoformat("2026-05-05T02:30:00+02:00"), emails=False
    )

    def day_total(district_id: int) -> int:
        with Session(engine) as s:
            return s.exec(
                select(func.coalesce(func.sum(DailyGrain.conversations), 0)).where(
                    DailyGrain.day == date(2026, 4, 30), DailyGrain.district_id == district_id
                )
            ).one()

    assert day_total(other_id) == 1
    assert day_total(old_id) == 10 - 2  # vol_a's ten that day, one moved, one withdrawn
