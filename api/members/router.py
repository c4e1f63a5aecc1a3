"""Routes for members: the register import, follow-ups and call lists, courses, callers,
new-member progress, and the GDPR routes (export, erasure, the audit log).

Member data is personal data about party membership (GDPR Art. 9): every route that shows
it writes to the audit log, and no member data goes to the server's log (paths carry ids
only; there is no search by name)."""

import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.auth.scope import Forbidden, Scope
from api.contacts.rules import local_day
from api.db import SessionDep
from api.deps import NowDep, ScopeDep, SettingsDep
from api.errors import Unprocessable
from api.members import calls, courses, followup, privacy, progress, service
from api.members.models import MemberStatus, TaskKind
from api.members.schemas import (
    AttendanceRequest,
    AuditRead,
    CallerCreate,
    CallerRead,
    CallListCreate,
    CallListProgress,
    CourseCreate,
    CourseRead,
    MemberImportOptions,
    MemberImportSummary,
    MemberRead,
    MembersProgress,
    MemberUpdate,
    OfferRequest,
    OutcomeRequest,
    TaskRead,
)
from api.models import UnitKind
from api.pagination import Page, PageDep
from api.progress.service import resolve_unit
from api.spreadsheet import to_csv
from api.uploads import receive_upload, upload_body

router = APIRouter(tags=["members"])


def _register_lead(scope: ScopeDep) -> Scope:
    """Only kommun leads and district admins send the register; checked before the body."""
    if not (scope.unrestricted or scope.led_kommun_ids):
        raise Forbidden("role: only kommun leads and district admins import the member register")
    return scope


@router.post(
    "/members/import",
    response_model=MemberImportSummary,
    openapi_extra=upload_body("the party register's CSV export", "CSV"),
)
async def import_members(
    request: Request,
    session: SessionDep,
    scope: Annotated[Scope, Depends(_register_lead)],
    settings: SettingsDep,
    now: NowDep,
    options: Annotated[MemberImportOptions, Query()],
    dry_run: bool = False,
):
    """Import the member register: one transaction, idempotent by member number; with
    `dry_run` nothing is written. The upload is capped at `KNACKA_IMPORT_MAX_UPLOAD_MB`
    (413 over it)."""
    with tempfile.TemporaryDirectory(prefix="knacka-members-") as tmp:
        path, _ = await receive_upload(request, Path(tmp), settings)
        raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Unprocessable("file: the CSV is not UTF-8 text") from None
    return await run_in_threadpool(
        service.import_members,
        session=session,
        scope=scope,
        text=text,
        options=options,
        settings=settings,
        today=local_day(now, settings.timezone),
        dry_run=dry_run,
        route="POST /members/import",
    )


@router.get("/members", response_model=Page[MemberRead])
def list_members(
    session: SessionDep,
    scope: ScopeDep,
    page: PageDep,
    forening_id: int | None = None,
    kommun_id: int | None = None,
    status: MemberStatus | None = None,
):
    """The members of the units the caller leads (audited)."""
    items, total = service.list_members(
        session=session,
        scope=scope,
        page=page,
        forening_id=forening_id,
        kommun_id=kommun_id,
        status=status,
        route="GET /members",
    )
    return Page(
        items=[service.to_read(m) for m in items], total=total, limit=page.limit, offset=page.offset
    )


@router.get("/members/followups", response_model=Page[TaskRead])
def list_followups(
    session: SessionDep,
    scope: ScopeDep,
    settings: SettingsDep,
    now: NowDep,
    page: PageDep,
    forening_id: int | None = None,
    kommun_id: int | None = None,
    open_only: bool = True,
):
    """New members to contact, soonest due first: for leads and assigned callers (audited)."""
    items, total = followup.list_tasks(
        session=session,
        scope=scope,
        page=page,
        kind=TaskKind.followup,
        today=local_day(now, settings.timezone),
        forening_id=forening_id,
        kommun_id=kommun_id,
        open_only=open_only,
        route="GET /members/followups",
    )
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get("/members/audit", response_model=Page[AuditRead])
def member_audit(
    session: SessionDep,
    scope: ScopeDep,
    page: PageDep,
    member_id: int | None = None,
    forening_id: int | None = None,
    kommun_id: int | None = None,
):
    """Who read, listed, exported, changed or erased member data in the units the caller
    leads, newest first."""
    items, total = privacy.list_audit(
        session=session,
        scope=scope,
        page=page,
        member_id=member_id,
        forening_id=forening_id,
        kommun_id=kommun_id,
    )
    return Page(
        items=[AuditRead.model_validate(a, from_attributes=True) for a in items],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/members/{member_id}", response_model=MemberRead)
def get_member(session: SessionDep, scope: ScopeDep, member_id: int):
    """One member of a unit the caller leads (audited)."""
    return service.to_read(
        service.get_member(
            session=session, scope=scope, member_id=member_id, route="GET /members/{member_id}"
        )
    )


@router.patch("/members/{member_id}", response_model=MemberRead)
def update_member(session: SessionDep, scope: ScopeDep, member_id: int, body: MemberUpdate):
    """Set the member's do-not-call flag (their open call-list entries are skipped)."""
    return service.to_read(
        service.update_member(
            session=session,
            scope=scope,
            member_id=member_id,
            do_not_call=body.do_not_call,
            route="PATCH /members/{member_id}",
        )
    )


@router.get("/members/{member_id}/export")
def export_member(session: SessionDep, scope: ScopeDep, member_id: int) -> dict:
    """Everything held about the member, as JSON (GDPR Art. 15; audited)."""
    return privacy.export_member(
        session=session, scope=scope, member_id=member_id, route="GET /members/{member_id}/export"
    )


@router.post("/members/{member_id}/erase", status_code=200)
def erase_member(
    session: SessionDep, scope: ScopeDep, settings: SettingsDep, now: NowDep, member_id: int
) -> dict:
    """Erase the member (GDPR Art. 17): their data goes, and their volunteer account's name
    and email with it; the counts stay."""
    accounts = privacy.erase_member(
        session=session,
        scope=scope,
        member_id=member_id,
        settings=settings,
        today=local_day(now, settings.timezone),
        route="POST /members/{member_id}/erase",
    )
    return {"erased": member_id, "volunteer_accounts_erased": accounts}


@router.post("/member-tasks/{task_id}/claim", response_model=TaskRead)
def claim_task(
    session: SessionDep, scope: ScopeDep, settings: SettingsDep, now: NowDep, task_id: int
):
    """Claim a follow-up or call-list task: nobody else may call the member until the claim
    expires (`KNACKA_MEMBERS_CLAIM_MINUTES`); 409 if someone holds it or it cools down."""
    return followup.claim_task(
        session=session,
        scope=scope,
        task_id=task_id,
        now=now,
        settings=settings,
        route="POST /member-tasks/{task_id}/claim",
    )


@router.post("/member-tasks/{task_id}/outcome", response_model=TaskRead)
def log_outcome(
    session: SessionDep,
    scope: ScopeDep,
    settings: SettingsDep,
    now: NowDep,
    task_id: int,
    body: OutcomeRequest,
):
    """Log the outcome of a call on a task the caller holds."""
    return followup.log_outcome(
        session=session,
        scope=scope,
        task_id=task_id,
        outcome=body.outcome,
        now=now,
        today=local_day(now, settings.timezone),
        settings=settings,
        route="POST /member-tasks/{task_id}/outcome",
    )


@router.get("/callers", response_model=list[CallerRead])
def list_callers(session: SessionDep, scope: ScopeDep, forening_id: int | None = None):
    """Caller assignments in the föreningar the caller leads."""
    rows = followup.list_callers(session=session, scope=scope, forening_id=forening_id)
    return [CallerRead.model_validate(r, from_attributes=True) for r in rows]


@router.post("/callers", response_model=CallerRead, status_code=201)
def assign_caller(session: SessionDep, scope: ScopeDep, body: CallerCreate):
    """Designate a volunteer of a förening the caller leads as a caller: for its new-member
    follow-ups, or (with call_list_id) for a call list."""
    row = followup.assign_caller(
        session=session,
        scope=scope,
        user_id=body.user_id,
        forening_id=body.forening_id,
        call_list_id=body.call_list_id,
    )
    return CallerRead.model_validate(row, from_attributes=True)


@router.delete("/callers/{assignment_id}", status_code=204)
def unassign_caller(session: SessionDep, scope: ScopeDep, assignment_id: int) -> Response:
    followup.unassign_caller(session=session, scope=scope, assignment_id=assignment_id)
    return Response(status_code=204)


@router.post("/call-lists", response_model=CallListProgress, status_code=201)
def create_call_list(
    session: SessionDep, scope: ScopeDep, settings: SettingsDep, now: NowDep, body: CallListCreate
):
    """A call list over the active members of a förening or kommun, split among callers."""
    cl = calls.create_call_list(
        session=session,
        scope=scope,
        body=body,
        today=local_day(now, settings.timezone),
        settings=settings,
    )
    return calls.call_list_progress(session=session, scope=scope, call_list_id=cl.id, now=now)


@router.get("/call-lists/{call_list_id}", response_model=CallListProgress)
def call_list_progress(session: SessionDep, scope: ScopeDep, now: NowDep, call_list_id: int):
    """How far a call list has come (counts only)."""
    return calls.call_list_progress(
        session=session, scope=scope, call_list_id=call_list_id, now=now
    )


@router.get("/call-lists/{call_list_id}/entries", response_model=Page[TaskRead])
def call_list_entries(
    session: SessionDep,
    scope: ScopeDep,
    settings: SettingsDep,
    now: NowDep,
    page: PageDep,
    call_list_id: int,
    open_only: bool = True,
):
    """The list's members to call: all of them for its leads, a caller's own share for a
    caller (audited)."""
    calls.get_call_list(session=session, scope=scope, call_list_id=call_list_id)
    items, total = followup.list_tasks(
        session=session,
        scope=scope,
        page=page,
        kind=TaskKind.call,
        today=local_day(now, settings.timezone),
        call_list_id=call_list_id,
        open_only=open_only,
        route="GET /call-lists/{call_list_id}/entries",
    )
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get("/courses", response_model=list[CourseRead])
def list_courses(session: SessionDep, scope: ScopeDep, kommun_id: int | None = None):
    return [
        CourseRead.model_validate(c, from_attributes=True)
        for c in courses.list_courses(session=session, scope=scope, kommun_id=kommun_id)
    ]


@router.post("/courses", response_model=CourseRead, status_code=201)
def create_course(session: SessionDep, scope: ScopeDep, body: CourseCreate):
    """A course occasion (grundkurs steg 1 and others) with its date and place."""
    return CourseRead.model_validate(
        courses.create_course(session=session, scope=scope, body=body), from_attributes=True
    )


@router.post("/courses/{course_id}/offers")
def offer_course(
    session: SessionDep,
    scope: ScopeDep,
    settings: SettingsDep,
    now: NowDep,
    course_id: int,
    body: OfferRequest,
) -> dict:
    """Record that members were offered this course today."""
    n = courses.offer_course(
        session=session,
        scope=scope,
        course_id=course_id,
        member_ids=body.member_ids,
        today=local_day(now, settings.timezone),
        settings=settings,
        route="POST /courses/{course_id}/offers",
    )
    return {"offered": n}


@router.post("/courses/{course_id}/attendance")
def record_attendance(
    session: SessionDep,
    scope: ScopeDep,
    settings: SettingsDep,
    course_id: int,
    body: AttendanceRequest,
) -> dict:
    """Record that members attended this course."""
    n = courses.record_attendance(
        session=session,
        scope=scope,
        course_id=course_id,
        member_ids=body.member_ids,
        settings=settings,
        route="POST /courses/{course_id}/attendance",
    )
    return {"attended": n}


@router.get(
    "/campaigns/{campaign_id}/members-progress/{unit_kind}/{unit}", response_model=MembersProgress
)
def members_progress(
    session: SessionDep,
    scope: ScopeDep,
    settings: SettingsDep,
    now: NowDep,
    campaign_id: int,
    unit_kind: Literal["partidistrikt", "kommun", "forening"],
    unit: str,
):
    """New members contacted within 7 days, offered a course within 3 months, attending
    one: a unit's shares and its children's (counts only)."""
    found = resolve_unit(session=session, scope=scope, kind=UnitKind(unit_kind), ref=unit)
    return progress.members_progress(
        session=session,
        scope=scope,
        campaign_id=campaign_id,
        unit=found,
        today=local_day(now, settings.timezone),
    )


@router.get(
    "/campaigns/{campaign_id}/members-export",
    response_class=Response,
    responses={
        200: {
            "description": "The new-member figures, as CSV",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
def members_export(
    session: SessionDep,
    scope: ScopeDep,
    settings: SettingsDep,
    now: NowDep,
    campaign_id: int,
    level: Literal["partidistrikt", "kommun", "forening"] = "forening",
) -> Response:
    """The new-member figures of every unit at one level the caller sees, as CSV."""
    today = local_day(now, settings.timezone)
    rows = progress.export_rows(
        session=session, scope=scope, campaign_id=campaign_id, level=UnitKind(level), today=today
    )
    filename = f"members-{campaign_id}-{level}-{today.isoformat()}.csv"
    return Response(
        to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
