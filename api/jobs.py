"""Scheduled jobs. They run in their own process (``knacka scheduler``), never in web
workers; every job is listed in JOBS. A job runs under a lock that dies with its process
(api/joblock.py), so two processes never run it at once and a killed one never keeps the
next waiting; each night is recorded in ``job_run``.
"""

import logging
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text, update
from sqlmodel import Session, func, select

from api import db
from api.contacts.rules import local_day
from api.joblock import job_lock
from api.mail import MailError, SmtpSender, smtp_session
from api.members.privacy import purge_trigger, run_purge
from api.models import ContactLog, JobRun, JobRunStatus, JobState, OutboxStatus, User, utcnow
from api.progress.service import NIGHTLY_JOB
from api.progress.snapshots import rebuild_changed, rebuild_days
from api.progress.windows import save_windows
from api.reports import outbox
from api.reports.render import render_email
from api.reports.service import ProgressBook, build_report, lead_recipients
from api.settings import Settings, get_settings
from api.turfs.coverage import rebuild_turf_stats

__all__ = ["JOBS", "Job", "Mailer", "retry_outbox", "run_nightly", "run_scheduler", "send_outbox"]

log = logging.getLogger("knacka.jobs")

# Requests commit their change time a little after stamping it; reading back this far
# behind the watermark makes sure a slow commit is never skipped.
WATERMARK_LAG = timedelta(minutes=5)
MAX_CATCH_UP_NIGHTS = 62
OUTBOX_LOCK = "outbox"
# A job host's clock this far ahead of the database's is not worth a warning.
CLOCK_TOLERANCE = timedelta(minutes=1)

# Opens one SMTP connection for a batch of messages (api.mail.smtp_session).
Mailer = Callable[[Settings], AbstractContextManager[SmtpSender]]


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def _locked(name: str) -> Iterator[bool]:
    """The job's lock; job_state.holder names the process holding it, for operators."""
    holder = _holder()
    with job_lock(db.get_engine(), name) as taken:
        if not taken:
            yield False
            return
        with db.session_scope() as session:
            ins = db.conflict_insert(session, JobState)
            session.execute(ins.values(name=name).on_conflict_do_nothing(index_elements=["name"]))
            session.execute(
                update(JobState)
                .where(JobState.name == name)
                .values(holder=holder, lease_until=None)
            )
        try:
            yield True
        finally:
            with db.session_scope() as session:
                session.execute(
                    update(JobState)
                    .where(JobState.name == name, JobState.holder == holder)
                    .values(holder=None)
                )


def _close_stale_runs(name: str) -> int:
    """Runs still 'running' while we hold the job's lock: their process died mid-run."""
    with db.session_scope() as session:
        return session.execute(
            update(JobRun)
            .where(JobRun.job == name, JobRun.status == JobRunStatus.running)
            .values(
                status=JobRunStatus.failed,
                finished_at=utcnow(),
                error="the process running it stopped; closed by the next run",
            )
        ).rowcount


def _undo_unfinished_nights(session: Session, clock: datetime, settings: Settings) -> int:
    """Nights recorded as built that the database's clock has not finished (left by a run
    with a future --now before runs were held to that clock): they hide later logs from
    progress, so they are marked failed to be built again, and a watermark from the future
    is dropped so that the next build reads every log."""
    undone = session.execute(
        update(JobRun)
        .where(
            JobRun.job == NIGHTLY_JOB,
            JobRun.status == JobRunStatus.succeeded,
            JobRun.for_day >= local_day(clock, settings.timezone),
        )
        .values(status=JobRunStatus.failed, error="built before the night had ended")
    ).rowcount
    state = session.get(JobState, NIGHTLY_JOB)
    if state.watermark is not None and state.watermark > clock:
        state.watermark = None
        session.add(state)
    return undone


def _database_now(session: Session) -> datetime:
    """The database server's clock: the one clock every writer's commits are ordered by."""
    value = session.execute(text("SELECT CURRENT_TIMESTAMP")).scalar_one()
    if isinstance(value, str):  # SQLite: "YYYY-MM-DD HH:MM:SS" in UTC
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _seen_through(session: Session) -> datetime | None:
    """How far the logs this run reads are known to go: the newest change time they carry,
    never later than the database's clock (a writer whose clock runs ahead must not push
    the watermark past logs still to come). Read before the rebuild, so that a log
    committed meanwhile is read again next night rather than skipped."""
    latest = session.exec(select(func.max(ContactLog.changed_at))).one()
    return None if latest is None else min(latest, _database_now(session))


def _aggregate(for_day: date, holder: str) -> int:
    """One night's snapshots: every day whose logs changed since the watermark, in one
    transaction with the run's success record."""
    with db.session_scope() as session:
        run = JobRun(job=NIGHTLY_JOB, for_day=for_day, holder=holder, started_at=utcnow())
        session.add(run)
    try:
        with db.session_scope() as session:
            seen = _seen_through(session)
            state = session.get(JobState, NIGHTLY_JOB)
            if state.watermark is None:
                rows = rebuild_days(session, None)  # the first run: everything
            else:
                rows = rebuild_changed(session, state.watermark - WATERMARK_LAG, for_day)
            rows += rebuild_turf_stats(session, state.watermark and state.watermark - WATERMARK_LAG)
            # The logs' own change times, not the job's clock or its --now: a clock ahead
            # of the writers' would skip every log they stamp "earlier" from now on.
            if seen is not None:
                state.watermark = seen
            session.add(state)
            finished = session.get(JobRun, run.id)
            finished.status, finished.rows = JobRunStatus.succeeded, rows
            finished.finished_at = utcnow()
            session.add(finished)
        return rows
    except Exception as exc:
        with db.session_scope() as session:
            failed = session.get(JobRun, run.id)
            failed.status, failed.error = JobRunStatus.failed, repr(exc)[:2000]
            failed.finished_at = utcnow()
            session.add(failed)
        raise


def _send_one(
    *,
    settings: Settings,
    sender: SmtpSender,
    outbox_id: int,
    user_id: int,
    book: ProgressBook,
    now: datetime,
) -> OutboxStatus | None:
    """Build, claim, send and record one email; only this email fails if anything does."""
    error, permanent, skipped, lost = None, False, False, False
    message = None
    try:
        user = book.session.get(User, user_id)
        report = None
        if user.is_active and user.nightly_email:
            report = build_report(session=book.session, user=user, today=book.today, book=book)
        message = None if report is None else render_email(report=report, settings=settings)
        if message is None:
            skipped, error = True, "opted out, inactive, or no running campaign"
    except Exception as exc:  # a broken report must not stop the others
        log.exception("building the email for user %s failed", user_id)
        error, permanent = f"could not build the email: {exc!r}"[:2000], True
    finally:
        book.release()
    if message is not None:
        with db.session_scope() as session:  # committed before any SMTP traffic
            if not outbox.claim(session=session, outbox_id=outbox_id):
                return None  # no longer pending: never send what someone else may have sent
        try:
            sender.send(message)
        except MailError as exc:
            error, permanent, lost = exc.message, exc.permanent, exc.maybe_delivered
    with db.session_scope() as session:
        return outbox.record_result(
            session=session,
            outbox_id=outbox_id,
            now=now,
            error=error,
            permanent=permanent,
            skipped=skipped,
            lost=lost,
        )


def send_outbox(
    *,
    settings: Settings,
    day: date,
    now: Callable[[], datetime] = utcnow,
    mailer: Mailer = smtp_session,
) -> dict[str, int]:
    """Send the day's due emails, a batch per SMTP connection; one bad recipient never
    stops the others. The caller holds the outbox's lock."""
    counts: dict[str, int] = {}
    with db.session_scope() as session:
        counts[OutboxStatus.lost.value] = outbox.mark_lost(session=session)
    after = 0
    # One read-only session for the figures every email shares, computed once a run.
    with db.session_scope() as reading:
        book = ProgressBook(reading, day)
        while True:
            book.release()
            with db.session_scope() as session:
                batch = outbox.due_batch(
                    session=session,
                    day=day,
                    now=now(),
                    after=after,
                    limit=settings.smtp_batch_size,
                )
            if not batch:
                return counts
            after = batch[-1][0]
            with mailer(settings) as sender:
                for outbox_id, user_id in batch:
                    status = _send_one(
                        settings=settings,
                        sender=sender,
                        outbox_id=outbox_id,
                        user_id=user_id,
                        book=book,
                        now=now(),
                    )
                    if status is not None:
                        counts[status.value] = counts.get(status.value, 0) + 1


# The tables whose planner statistics progress depends on (PostgreSQL).
_ANALYZED = ("contact_log", "log_tally", "daily_grain", "daily_stat", "unit_people")


def _refresh_statistics(tables: tuple[str, ...]) -> None:
    """Refresh PostgreSQL's planner statistics after a night's build. Autovacuum analyzes
    contact_log only once a tenth of it has changed (weeks of logs), and until then the
    planner takes the logs since the last night for a handful and reads them through the
    day index, filtering out every other unit's, instead of through the unit's index."""
    with db.session_scope() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text(f"ANALYZE {', '.join(tables)}"))


def run_nightly(
    *,
    settings: Settings | None = None,
    now: datetime | None = None,
    mailer: Mailer = smtp_session,
    emails: bool = True,
) -> dict[str, object]:
    """Build the snapshots of every night not yet done (catching up missed ones), then
    queue and send today's progress emails. Does nothing if another process is running it."""
    settings = settings or get_settings()
    asked = now or utcnow()
    with _locked(NIGHTLY_JOB) as taken:
        if not taken:
            return {"status": "skipped", "reason": "another process is running it"}
        result: dict[str, object] = {"status": "ran"}
        stale = _close_stale_runs(NIGHTLY_JOB)
        if stale:
            result["closed_stale_runs"] = stale
        with db.session_scope() as session:
            clock = _database_now(session)
            undone = _undo_unfinished_nights(session, clock, settings)
            if undone:
                result["undone_nights"] = undone
            last = session.exec(
                select(func.max(JobRun.for_day)).where(
                    JobRun.job == NIGHTLY_JOB, JobRun.status == JobRunStatus.succeeded
                )
            ).one()
        # A night is closed only once the database's clock has passed it: snapshots of a
        # night still going on would hide the rest of its logs from progress.
        now = min(asked, clock)
        if asked - now > CLOCK_TOLERANCE:
            log.warning("now %s is ahead of the database's clock; using %s", asked, now)
            result["now"] = now.isoformat()
        today = local_day(now, settings.timezone)
        night = today - timedelta(days=1)
        earliest = night - timedelta(days=MAX_CATCH_UP_NIGHTS)
        first = night if last is None else max(last + timedelta(days=1), earliest)
        nights = [first + timedelta(days=i) for i in range((night - first).days + 1)]
        holder = _holder()
        result["nights"] = [n.isoformat() for n in nights]
        result["rows"] = sum(_aggregate(n, holder) for n in nights)
        if nights:
            _refresh_statistics(_ANALYZED)
            # Apart from the nights' transactions: a window is keyed by its last snapshot
            # day, so until it is saved requests read the snapshots, never a stale window.
            try:
                with db.session_scope() as session:
                    result["windows"] = save_windows(session=session, today=today)
                _refresh_statistics(("unit_window",))
            except Exception:  # only a shortcut is lost: never the night's emails
                log.exception("saving the progress windows failed; requests read the snapshots")
                result["windows"] = "failed"
        if not emails:
            return result
        with db.session_scope() as session:
            result["queued"] = outbox.enqueue(
                session=session, user_ids=lead_recipients(), day=today, now=now
            )
        result["emails"] = _send_locked(settings=settings, day=today, now=now, mailer=mailer)
        return result


def _send_locked(
    *, settings: Settings, day: date, now: datetime, mailer: Mailer = smtp_session
) -> dict[str, int | str]:
    """Send the outbox under its own lock (not the night's, so that a retry running at
    02:30 can never make the nightly job skip its night)."""
    with _locked(OUTBOX_LOCK) as taken:
        if not taken:
            return {"skipped": "another process is sending; it sends these too"}
        return send_outbox(settings=settings, day=day, now=lambda: now, mailer=mailer)


def retry_outbox(*, settings: Settings | None = None, now: datetime | None = None) -> dict:
    """Send emails whose earlier attempt got a temporary (4xx) answer."""
    settings = settings or get_settings()
    now = now or utcnow()
    return _send_locked(settings=settings, day=local_day(now, settings.timezone), now=now)


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[..., object]
    trigger: Callable[[Settings], dict]  # APScheduler add_job keyword arguments


JOBS = [
    Job(
        "nightly",
        run_nightly,
        lambda s: {"trigger": "cron", "hour": s.nightly_hour, "minute": s.nightly_minute},
    ),
    Job(
        "outbox_retry",
        retry_outbox,
        lambda s: {"trigger": "interval", "minutes": s.outbox_retry_minutes},
    ),
    Job("members_purge", run_purge, purge_trigger),  # api.members.privacy: retention rules
]


def run_scheduler(settings: Settings | None = None) -> None:
    """Run every job on its schedule until stopped; catch up a missed night first."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    settings = settings or get_settings()
    scheduler = BlockingScheduler(timezone=settings.timezone)
    for job in JOBS:
        scheduler.add_job(
            job.run,
            id=job.name,
            name=job.name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=3600,
            **job.trigger(settings),
        )
    log.info("catching up: %s", run_nightly(settings=settings))
    scheduler.start()
