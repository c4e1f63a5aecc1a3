"""The nightly job and its emails, against databases of their own (the job commits in
several transactions, as it does in production) and a real SMTP server on loopback."""

import asyncio
import json
import subprocess
import sys
import threading
from contextlib import contextmanager
from datetime import date, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import event, inspect
from sqlmodel import Session, func, select

from api import db, jobs
from api.auth.scope import Scope
from api.contacts.rules import local_day
from api.db import make_engine
from api.jobs import retry_outbox, run_nightly
from api.mail import build_message, smtp_session
from api.migrate import upgrade
from api.models import (
    DailyGrain,
    DailyStat,
    EmailOutbox,
    JobRun,
    JobRunStatus,
    JobState,
    OutboxStatus,
    Role,
    UnitKind,
    utcnow,
)
from api.progress.service import unit_progress
from api.testing import ROOT, free_port, knacka_argv, knacka_env
from tests import factories as f
from tests.conftest import BACKENDS, Inbox, postgres_database

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
    assert result["windows"] == 4  # both kommuner and both föreningar, for today's requests
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
    env = knacka_env(url, KNACKA_SMTP_HOST="127.0.0.1", KNACKA_SMTP_PORT=str(settings.smtp_port))
    cmd = knacka_argv("run-job", "nightly", "--now", NIGHT)
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
        sent = s.exec(select(EmailOutbox).where(EmailOutbox.status == OutboxStatus.sent)).all()
    assert failed.user_id == p["are_lead"].id and "550" in failed.last_error
    assert failed.sent_at is None and failed.attempts == 1
    # the retried email too: sent on its second try, its first error cleared
    assert len(sent) == 3 and all(r.sent_at and r.last_error is None for r in sent)
    assert sorted(r.attempts for r in sent) == [1, 1, 2]


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


class CountingInbox(Inbox):
    """An inbox that counts SMTP connections (one EHLO each), can hold one address's DATA
    until released, and can drop every open connection as an idle timeout would."""

    def __init__(self) -> None:
        super().__init__()
        self.connections = 0
        self.hold: str | None = None
        self.cut: str | None = None
        self.held = threading.Event()
        self.released = threading.Event()
        self.transports: list = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.connections += 1
        self.transports.append(server.transport)
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server, session, envelope):
        if self.cut in envelope.rcpt_tos:  # the message arrived; the reply never leaves
            server.transport.close()
            return "250 OK"
        if self.hold in envelope.rcpt_tos:
            self.held.set()
            while not self.released.is_set():
                await asyncio.sleep(0.05)
            return "451 4.3.0 the sender went away"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def smtp(settings):
    handler = CountingInbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.smtp_host, settings.smtp_port = "127.0.0.1", controller.port
    handler.drop_all = lambda: _drop_all(controller, handler)
    yield handler
    handler.released.set()
    controller.stop()


def _drop_all(controller: Controller, handler: CountingInbox) -> None:
    """Close every open connection on the server's side, and wait until it is done."""
    done = threading.Event()

    def close():
        for transport in handler.transports:
            transport.close()
        handler.transports.clear()
        done.set()

    controller.loop.call_soon_threadsafe(close)
    assert done.wait(10)


def _leads(w) -> list:
    return [w["people"][k] for k in ("admin", "ost_lead", "are_lead", "frosön_lead")]


def test_one_smtp_connection_per_batch(job_db, smtp, settings):
    _, engine = job_db
    w = _world(engine)
    settings.smtp_batch_size = 3
    result = run_nightly(settings=settings, now=datetime.fromisoformat(NIGHT))
    assert result["emails"] == {"lost": 0, "sent": 4}
    assert smtp.connections == 2  # four emails in batches of three
    assert sorted(m["To"] for m in smtp.messages) == sorted(u.email for u in _leads(w))


def test_recipients_are_queued_by_one_statement(job_db, smtp, settings):
    _, engine = job_db
    _world(engine)
    inserts = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO EMAIL_OUTBOX"):
            inserts.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        result = run_nightly(settings=settings, now=datetime.fromisoformat(NIGHT))
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert result["queued"] == 4 and len(inserts) == 1 and "SELECT" in inserts[0]


def test_refusals_fail_their_own_message_on_a_shared_connection(job_db, smtp, settings):
    _, engine = job_db
    w = _world(engine)
    p = w["people"]
    smtp.replies[p["ost_lead"].email] = ["451 4.3.0 try again later"]
    smtp.replies[p["are_lead"].email] = ["550 5.1.1 no such mailbox"]
    result = run_nightly(settings=settings, now=datetime.fromisoformat(NIGHT))
    assert result["emails"] == {"lost": 0, "sent": 2, "pending": 1, "failed": 1}
    assert smtp.connections == 1
    assert {m["To"] for m in smtp.messages} == {p["admin"].email, p["frosön_lead"].email}


def test_a_dropped_connection_is_opened_again(smtp, settings):
    messages = [
        build_message(settings=settings, to=f"lead-{i}@example.org", subject="s", text="t")
        for i in range(3)
    ]
    with smtp_session(settings) as sender:
        sender.send(messages[0])
        smtp.drop_all()  # the server hung up while the sender was busy elsewhere
        sender.send(messages[1])
        sender.send(messages[2])
    assert [m["To"] for m in smtp.messages] == [m["To"] for m in messages]
    assert smtp.connections == 2


def test_a_connection_cut_after_the_message_is_never_resent(job_db, smtp, settings):
    _, engine = job_db
    w = _world(engine)
    cut = w["people"]["ost_lead"]
    smtp.cut = cut.email
    night = datetime.fromisoformat(NIGHT)
    result = run_nightly(settings=settings, now=night)
    assert result["emails"] == {"lost": 1, "sent": 3}  # the server may have it: not resent
    assert smtp.connections == 2  # the rest went over a new connection
    assert retry_outbox(settings=settings, now=night + timedelta(hours=2)) == {"lost": 0}
    with Session(engine) as s:
        row = s.exec(select(EmailOutbox).where(EmailOutbox.user_id == cut.id)).one()
    assert row.status == OutboxStatus.lost and "broke" in row.last_error


def test_an_unreachable_server_fails_the_batch_as_temporary(job_db, settings):
    _, engine = job_db
    _world(engine)
    settings.smtp_host, settings.smtp_port = "127.0.0.1", free_port()  # nobody listens
    result = run_nightly(settings=settings, now=datetime.fromisoformat(NIGHT))
    assert result["emails"] == {"lost": 0, "pending": 4}
    with Session(engine) as s:
        errors = s.exec(select(EmailOutbox.last_error)).all()
    assert all("could not reach 127.0.0.1" in e for e in errors)


def test_without_an_smtp_host_emails_go_to_the_log(job_db, settings, caplog):
    _, engine = job_db
    w = _world(engine)
    settings.smtp_host = ""
    with caplog.at_level("WARNING", logger="knacka.mail"):
        result = run_nightly(settings=settings, now=datetime.fromisoformat(NIGHT))
    assert result["emails"] == {"lost": 0, "sent": 4}
    assert f"not sending this email to {w['people']['admin'].email}" in caplog.text
    assert "Samtal: 38 av 1 000" in caplog.text


def test_the_email_shows_all_three_metrics_in_both_parts(job_db, smtp, settings):
    _, engine = job_db
    w = _world(engine)
    with Session(engine) as s:
        camp = s.get(f.Campaign, w["campaign"].id)
        ost = s.get(f.Kommun, w["ost"].id)
        f.target(s, camp, ost, "active_volunteers", 4)
        f.target(s, camp, ost, "new_members", 10)
        s.commit()
    run_nightly(settings=settings, now=datetime.fromisoformat(NIGHT))
    mail = smtp.to(w["people"]["ost_lead"].email)[0]
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "Samtal: 34 av 600" in text
    assert "Aktiva volontärer: 1 av 4  █████░░░░░░░░░░░░░░░ 25 %" in text
    assert "Nya medlemmar: 0 av 10  ░░░░░░░░░░░░░░░░░░░░ 0 %" in text
    for label, target, pct in (("Samtal", 600, 6), ("Aktiva volontärer", 4, 25)):
        row = html.split(f"<b>{label}</b>")[1].split("</tr>")[0]
        assert f'<td align="right">{target}</td>' in row and f"width:{pct}%" in row
    assert '<td align="right">10</td>' in html.split("<b>Nya medlemmar</b>")[1]


def _conversations(engine, unit, campaign_id: int, today: date) -> int:
    """The unit's conversations as progress shows them on ``today``."""
    with Session(engine) as s:
        found = unit_progress(
            session=s,
            scope=Scope.operator(s),
            campaign_id=campaign_id,
            unit_kind=UnitKind.kommun,
            unit_id=unit.id,
            today=today,
            check_scope=False,
        )
    return next(m.actual for m in found.metrics if m.metric == "conversations")


def _received(engine, author, district, occurred: datetime, received: datetime) -> None:
    with Session(engine) as s:
        log = f.contact(s, s.get(f.User, author.id), s.get(f.District, district.id), occurred)
        log.received_at = log.changed_at = received
        s.add(log)
        s.commit()


def test_a_log_stamped_by_a_lagging_web_clock_is_aggregated_next_night(job_db, settings):
    _, engine = job_db
    w = _world(engine)
    night = datetime.fromisoformat(NIGHT)
    run_nightly(settings=settings, now=night, emails=False)
    # Synced after that run through a web server whose clock is ten minutes behind the
    # job host's, for a day the run has already closed.
    with Session(engine) as s:
        district = s.exec(select(f.District).where(f.District.code == "23800001")).one()
    occurred = datetime.fromisoformat("2026-05-03T10:00:00+00:00")
    _received(engine, w["people"]["vol_a"], district, occurred, night - timedelta(minutes=10))
    run_nightly(settings=settings, now=night + timedelta(days=1), emails=False)
    assert _conversations(engine, w["ost"], w["campaign"].id, date(2026, 5, 5)) == 34 + 1


def test_a_future_now_hides_no_log_committed_after_it(job_db, settings, monkeypatch):
    _, engine = job_db
    real = utcnow()
    today = local_day(real, settings.timezone)
    with Session(engine, expire_on_commit=False) as s:
        pd = f.partidistrikt(s)
        kommun = f.kommun(s, pd=pd)
        forening = f.forening(s, kommun, "S-föreningen Frösön")
        district = f.district(s, kommun, "23800001", 0, forening)
        camp = f.campaign(
            s,
            pd,
            (today - timedelta(days=30)).isoformat(),
            (today + timedelta(days=90)).isoformat(),
        )
        volunteer = f.user(s, Role.volunteer, forening)
        f.contact(s, volunteer, district, real - timedelta(days=2))
        s.commit()
    ahead = run_nightly(settings=settings, now=real + timedelta(days=30), emails=False)
    assert ahead["status"] == "ran" and "now" in ahead  # held back to the database's clock
    # Synced after that run, by the real clock: one log of today, one of yesterday.
    _received(engine, volunteer, district, real, utcnow())
    _received(engine, volunteer, district, real - timedelta(days=1), utcnow())
    assert _conversations(engine, kommun, camp.id, today) >= 2  # today's is live at once
    # The next night, by the database's clock too.
    tomorrow = real + timedelta(days=1)
    monkeypatch.setattr(jobs, "_database_now", lambda session: tomorrow + timedelta(hours=1))
    run_nightly(settings=settings, now=tomorrow, emails=False)
    assert _conversations(engine, kommun, camp.id, today + timedelta(days=1)) == 3


def test_nights_built_ahead_of_the_clock_before_are_built_again(job_db, settings):
    _, engine = job_db
    w = _world(engine)
    night = datetime.fromisoformat(NIGHT)
    run_nightly(settings=settings, now=night, emails=False)
    # What a run with a future --now left behind before runs were held to the database's
    # clock: a night not yet over recorded as built, and a watermark from the future.
    real = utcnow()
    with Session(engine) as s:
        ahead = local_day(real, settings.timezone) + timedelta(days=29)
        s.add(JobRun(job="nightly", for_day=ahead, holder="old", status=JobRunStatus.succeeded))
        state = s.get(JobState, "nightly")
        state.watermark = real + timedelta(days=30)
        s.add(state)
        s.commit()
        district = s.exec(select(f.District).where(f.District.code == "23800001")).one()
    occurred = datetime.fromisoformat("2026-05-03T10:00:00+00:00")
    _received(engine, w["people"]["vol_a"], district, occurred, utcnow())
    again = run_nightly(settings=settings, now=real, emails=False)
    assert again["undone_nights"] == 1
    assert _conversations(engine, w["ost"], w["campaign"].id, date(2026, 5, 5)) == 34 + 1


def _job_env(url: str, settings) -> dict:
    return knacka_env(
        url, KNACKA_SMTP_HOST=settings.smtp_host or "", KNACKA_SMTP_PORT=str(settings.smtp_port)
    )


def test_a_job_killed_mid_send_blocks_no_rerun(job_db, smtp, settings):
    url, engine = job_db
    w = _world(engine)
    p = w["people"]
    smtp.hold = p["ost_lead"].email  # the second email: the job dies during its DATA
    cmd = knacka_argv("run-job", "nightly", "--now", NIGHT)
    proc = subprocess.Popen(cmd, env=_job_env(url, settings), cwd=ROOT)
    try:
        assert smtp.held.wait(120), "the job never reached the second email"
    finally:
        proc.kill()  # SIGKILL: no finally block, no lease released by hand
        proc.wait(60)
    smtp.released.set()
    night = datetime.fromisoformat(NIGHT)
    # Neither the outbox nor the night waits for the dead process.
    retried = retry_outbox(settings=settings, now=night + timedelta(minutes=1))
    assert retried == {"lost": 1, "sent": 2}
    rerun = run_nightly(settings=settings, now=night)
    assert rerun["status"] == "ran" and rerun["nights"] == [] and rerun["queued"] == 0
    assert rerun["emails"] == {"lost": 0}
    delivered = sorted(m["To"] for m in smtp.messages)
    assert delivered == sorted(p[k].email for k in ("admin", "are_lead", "frosön_lead"))
    with Session(engine) as s:
        lost = s.exec(select(EmailOutbox).where(EmailOutbox.status == OutboxStatus.lost)).one()
    assert lost.user_id == p["ost_lead"].id


# The real command, stuck in the middle of building the snapshots until it is killed.
STUCK_JOB = """
import pathlib, sys, time
import api.jobs
marker = pathlib.Path(sys.argv[1])
def stuck(*args, **kwargs):
    marker.touch()
    time.sleep(600)
api.jobs.rebuild_days = api.jobs.rebuild_changed = stuck
from api.cli import main
sys.argv = ["knacka", "run-job", "nightly", "--now", sys.argv[2]]
main()
"""


def test_a_job_killed_mid_aggregate_is_closed_and_rerun_at_once(job_db, settings, tmp_path):
    url, engine = job_db
    _world(engine)
    marker = tmp_path / "aggregating"
    cmd = [sys.executable, "-c", STUCK_JOB, str(marker), NIGHT]
    proc = subprocess.Popen(cmd, env=_job_env(url, settings), cwd=ROOT)
    try:
        for _ in range(1200):
            if marker.exists() or proc.poll() is not None:
                break
            threading.Event().wait(0.1)
        assert marker.exists(), "the job never started aggregating"
    finally:
        proc.kill()
        proc.wait(60)
    assert _count(engine, JobRun, JobRun.status == JobRunStatus.running) == 1
    rerun = run_nightly(settings=settings, now=datetime.fromisoformat(NIGHT), emails=False)
    assert rerun["status"] == "ran" and rerun["nights"] == ["2026-05-03"]
    assert rerun["closed_stale_runs"] == 1
    with Session(engine) as s:
        runs = s.exec(select(JobRun).order_by(JobRun.id)).all()
    assert [r.status for r in runs] == [JobRunStatus.failed, JobRunStatus.succeeded]
    assert "stopped" in runs[0].error and runs[0].finished_at is not None


def _send_swedish_message(settings, to: str) -> None:
    """A message with Swedish words in every part, a long subject and the inline chart."""
    message = build_message(
        settings=settings,
        to=to,
        subject="Läget för Östersund, och en rubrik som är längre än en rad i ett mejl brukar",
        text="Hej Åsa!\n",
        html="<p>Hej Åsa! <img src='cid:chart@x'></p>",
        inline_png=(b"\x89PNG fake", "<chart@x>", "samtal.png"),
    )
    with smtp_session(settings) as sender:
        sender.send(message)


def test_a_message_with_swedish_names_arrives_whole(inbox, settings):
    settings.mail_from = "Socialdemokraterna i Jämtland <noreply@example.org>"
    _send_swedish_message(settings, "Åsa Öberg <asa@example.org>")
    (got,) = inbox.messages
    assert got["From"].addresses[0].display_name == "Socialdemokraterna i Jämtland"
    assert got["To"].addresses[0].display_name == "Åsa Öberg"
    assert got["Subject"] == (
        "Läget för Östersund, och en rubrik som är längre än en rad i ett mejl brukar"
    )
    assert got.get_body(("plain",)).get_content() == "Hej Åsa!\n"
    related = [p for p in got.walk() if p.get_content_type() == "multipart/related"]
    html, image = related[0].get_payload()
    assert "Hej Åsa!" in html.get_content() and image["Content-ID"] == "<chart@x>"
    assert image.get_content() == b"\x89PNG fake"


def test_an_address_beyond_ascii_is_sent_over_smtputf8(settings):
    handler = Inbox()
    server = Controller(handler, hostname="127.0.0.1", port=free_port(), enable_SMTPUTF8=True)
    server.start()
    try:
        settings.smtp_host, settings.smtp_port = "127.0.0.1", server.port
        _send_swedish_message(settings, "Åsa <åsa@exämple.se>")
    finally:
        server.stop()
    (got,) = handler.messages
    # headers in UTF-8 as RFC 6531 has them, which the stdlib parser of bytes cannot show
    assert "To: Åsa <åsa@exämple.se>" in handler.raw[0].decode("utf-8")
    assert "Hej Åsa!" in got.get_body(("plain",)).get_content()
    images = [p for p in got.walk() if p.get_content_type() == "image/png"]
    assert images[0]["Content-ID"] == "<chart@x>"
