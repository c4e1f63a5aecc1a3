"""Scheduled jobs. They run in their own process (``knacka scheduler``), never in web
workers; every job is listed in JOBS. A job runs under a lease row in ``job_state``, so
two scheduler processes never run it at once, and each night is recorded in ``job_run``.
"""

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, func, select

from api import db
from api.contacts.rules import local_day
from api.mail import MailError, send_message
from api.models import JobRun, JobState, User, utcnow
from api.progress.service import NIGHTLY_JOB
from api.progress.snapshots import rebuild_changed, rebuild_days
from api.reports import outbox
from api.reports.service import build_report, lead_recipients, render_email
from api.settings import Settings, get_settings
from api.turfs.coverage import rebuild_turf_stats

__all__ = ["JOBS", "Job", "run_nightly", "send_outbox", "run_scheduler"]

log = logging.getLogger("knacka.jobs")

# Requests commit their change time a little after stamping it; reading back this far
# behind the watermark makes sure a slow commit is never skipped.
WATERMARK_LAG = timedelta(minutes=5)
MAX_CATCH_UP_NIGHTS = 62
OUTBOX_LEASE = "outbox"


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _acquire(name: str, holder: str, now: datetime, minutes: int) -> bool:
    """Take the job's lease if nobody holds a live one; atomic on both backends."""
    with db.session_scope() as session:
        dialect = session.get_bind().dialect.name
        ins = (pg_insert if dialect == "postgresql" else sqlite_insert)(JobState)
        session.execute(ins.values(name=name).on_conflict_do_nothing(index_elements=["name"]))
    with db.session_scope() as session:
        taken = session.execute(
            update(JobState)
            .where(
                JobState.name == name,
                or_(col(JobState.lease_until).is_(None), col(JobState.lease_until) < now),
            )
            .values(holder=holder, lease_until=now + timedelta(minutes=minutes))
        ).rowcount
    return taken == 1


def _release(name: str, holder: str) -> None:
    with db.session_scope() as session:
        session.execute(
            update(JobState)
            .where(JobState.name == name, JobState.holder == holder)
            .values(holder=None, lease_until=None)
        )


def _aggregate(for_day: date, holder: str, now: datetime) -> int:
    """One night's snapshots: every day whose logs changed since the watermark, in one
    transaction with the run's success record."""
    with db.session_scope() as session:
        run = JobRun(job=NIGHTLY_JOB, for_day=for_day, holder=holder, started_at=utcnow())
        session.add(run)
    try:
        with db.session_scope() as session:
            state = session.get(JobState, NIGHTLY_JOB)
            if state.watermark is None:
                rows = rebuild_days(session, None)  # the first run: everything
            else:
                since = state.watermark - WATERMARK_LAG
                rows = rebuild_changed(session, since, for_day)
            rows += rebuild_turf_stats(session, state.watermark and state.watermark - WATERMARK_LAG)
            state.watermark = now
            session.add(state)
            finished = session.get(JobRun, run.id)
            finished.status, finished.rows, finished.finished_at = "succeeded", rows, utcnow()
            session.add(finished)
        return rows
    except Exception as exc:
        with db.session_scope() as session:
            failed = session.get(JobRun, run.id)
            failed.status, failed.error, failed.finished_at = "failed", repr(exc)[:2000], utcnow()
            session.add(failed)
        raise


def send_outbox(
    *,
    settings: Settings,
    day: date,
    now: Callable[[], datetime] = utcnow,
    send: Callable = send_message,
) -> dict[str, int]:
    """Send the day's due emails one by one; one bad recipient never stops the others."""
    counts: dict[str, int] = {}
    with db.session_scope() as session:
        counts["lost"] = outbox.mark_lost(session=session)
    while True:
        with db.session_scope() as session:
            row = outbox.claim_next(session=session, day=day, now=now())
            if row is None:
                break
            outbox_id, user_id = row.id, row.user_id
        error, permanent, skipped = None, False, False
        try:
            with db.session_scope() as session:
                user = session.get(User, user_id)
                report = None
                if user.is_active and user.nightly_email:
                    report = build_report(session=session, user=user, today=day)
                message = None if report is None else render_email(report=report, settings=settings)
            if message is None:
                skipped, error = True, "opted out, inactive, or no running campaign"
            else:
                send(settings=settings, message=message)
        except MailError as exc:
            error, permanent = exc.message, exc.permanent
        except Exception as exc:  # a broken report must not stop the others
            log.exception("building the email for user %s failed", user_id)
            error, permanent = f"could not build the email: {exc!r}"[:2000], True
        with db.session_scope() as session:
            status = outbox.record_result(
                session=session,
                outbox_id=outbox_id,
                now=now(),
                error=error,
                permanent=permanent,
                skipped=skipped,
            )
        counts[status] = counts.get(status, 0) + 1
    return counts


def run_nightly(
    *,
    settings: Settings | None = None,
    now: datetime | None = None,
    send: Callable = send_message,
    emails: bool = True,
) -> dict[str, object]:
    """Build the snapshots of every night not yet done (catching up missed ones), then
    queue and send today's progress emails. Does nothing if another process holds the lease."""
    settings = settings or get_settings()
    now = now or utcnow()
    holder = _holder()
    if not _acquire(NIGHTLY_JOB, holder, now, settings.job_lease_minutes):
        return {"status": "skipped", "reason": "another process holds the lease"}
    try:
        today = local_day(now, settings.timezone)
        night = today - timedelta(days=1)
        with db.session_scope() as session:
            last = session.exec(
                select(func.max(JobRun.for_day)).where(
                    JobRun.job == NIGHTLY_JOB, JobRun.status == "succeeded"
                )
            ).one()
        earliest = night - timedelta(days=MAX_CATCH_UP_NIGHTS)
        first = night if last is None else max(last + timedelta(days=1), earliest)
        nights = [first + timedelta(days=i) for i in range((night - first).days + 1)]
        rows = sum(_aggregate(n, holder, now) for n in nights)
        if not emails:
            return {"status": "ran", "nights": [n.isoformat() for n in nights], "rows": rows}
        with db.session_scope() as session:
            queued = outbox.enqueue(
                session=session,
                user_ids=[u.id for u in lead_recipients(session)],
                day=today,
                now=now,
            )
        sent = _send_under_lease(settings=settings, day=today, now=now, send=send)
        return {
            "status": "ran",
            "nights": [n.isoformat() for n in nights],
            "rows": rows,
            "queued": queued,
            "emails": sent,
        }
    finally:
        _release(NIGHTLY_JOB, holder)


def _send_under_lease(
    *, settings: Settings, day: date, now: datetime, send: Callable = send_message
) -> dict[str, int | str]:
    """Send the outbox under its own lease (not the night's, so that a retry running at
    02:30 can never make the nightly job skip its night)."""
    holder = _holder()
    if not _acquire(OUTBOX_LEASE, holder, now, settings.job_lease_minutes):
        return {"skipped": "another process is sending; it sends these too"}
    try:
        return send_outbox(settings=settings, day=day, now=lambda: now, send=send)
    finally:
        _release(OUTBOX_LEASE, holder)


def retry_outbox(*, settings: Settings | None = None, now: datetime | None = None) -> dict:
    """Send emails whose earlier attempt got a temporary (4xx) answer."""
    settings = settings or get_settings()
    now = now or utcnow()
    return _send_under_lease(settings=settings, day=local_day(now, settings.timezone), now=now)


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
