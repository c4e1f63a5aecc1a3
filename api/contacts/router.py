"""Routes for logging contacts (one, or a batch from an offline queue), reading, correcting
and withdrawing them."""

from typing import Annotated

from fastapi import APIRouter, Body, Response, status
from fastapi.concurrency import run_in_threadpool

from api.auth.scope import Scope
from api.contacts import corrections, fast, reading, service
from api.contacts.schemas import (
    BatchIn,
    BatchOut,
    ContactCorrection,
    ContactIn,
    ContactRead,
    ContactResult,
)
from api.db import SessionDep, SessionFactoryDep
from api.deps import BearerDep, NowDep, ScopeDep, SettingsDep, current_user
from api.errors import AppError, ErrorBody
from api.fastdb import FastDbDep
from api.pagination import Page, PageDep
from api.turfs import coverage as visits

__all__ = ["router"]

router = APIRouter(tags=["contacts"])

_STATUS = {"created": 201, "duplicate": 200, "conflict": 409, "invalid": 422, "forbidden": 403}


@router.post(
    "/contacts",
    response_model=ContactResult,
    status_code=201,
    responses={
        200: {"model": ContactResult, "description": "A replay: the record was already applied"},
        # A refused record is answered with its result; a malformed request with an error.
        403: {"model": ContactResult | ErrorBody, "description": "Beyond the caller's reach"},
        409: {"model": ContactResult | ErrorBody, "description": "The uuid has another body"},
        422: {"model": ContactResult | ErrorBody, "description": "A field is invalid"},
    },
)
async def log_contact(
    open_session: SessionFactoryDep,
    fast_db: FastDbDep,
    settings: SettingsDep,
    now: NowDep,
    token: BearerDep,
    response: Response,
    body: ContactIn,
):
    """Log one contact. Retrying with the same client_uuid and body is safe: the answer is
    200 with the original's id; a different body under the same uuid is 409."""
    # Phones log one record at a time all day long: a new record goes in with one statement
    # on the event loop, and only the rest opens a session (in a worker thread).
    if fast_db is not None:
        result = await fast.log_contact_fast(
            db=fast_db, settings=settings, raw_token=token, record=body, now=now
        )
        if result is not None:
            return result

    def general() -> ContactResult:
        with open_session() as session:
            scope = Scope(
                session=session,
                user=current_user(session=session, settings=settings, now=now, token=token),
            )
            return service.log_contacts(
                session=session, scope=scope, settings=settings, records=[body], now=now
            )[0]

    result = await run_in_threadpool(general)
    response.status_code = _STATUS[result.status]
    return result


@router.post("/contacts/batch", response_model=BatchOut)
def sync_batch(
    session: SessionDep,
    scope: ScopeDep,
    settings: SettingsDep,
    now: NowDep,
    body: Annotated[BatchIn, Body()],
):
    """Apply a phone's offline queue: each record and each door visit exactly once, with one
    result per record (``results``) and per visit (``visit_results``). Bad items are
    reported on their own; the others still apply."""
    for field, items in (("records", body.records), ("visits", body.visits)):
        if len(items) > settings.sync_max_records:
            raise AppError(
                f"{field}: {len(items)} {field} in one batch; the most is "
                f"{settings.sync_max_records}, so send the rest in another batch",
                status.HTTP_413_CONTENT_TOO_LARGE,
            )
    results = service.log_contacts(
        session=session,
        scope=scope,
        settings=settings,
        records=service.parse_records(body.records),
        now=now,
    )
    created = sum(r.status == "created" for r in results)
    duplicate = sum(r.status == "duplicate" for r in results)
    visit_results = visits.log_visits(
        session=session, scope=scope, settings=settings, raw=body.visits, now=now
    )
    return BatchOut(
        results=results,
        created=created,
        duplicate=duplicate,
        rejected=len(results) - created - duplicate,
        visit_results=visit_results,
    )


@router.get("/contacts", response_model=Page[ContactRead])
def list_contacts(
    session: SessionDep,
    scope: ScopeDep,
    page: PageDep,
    mine: bool = False,
    district_code: str | None = None,
    include_withdrawn: bool = False,
):
    items, total = reading.list_contacts(
        session=session,
        scope=scope,
        page=page,
        mine=mine,
        district_code=district_code,
        include_withdrawn=include_withdrawn,
    )
    return Page(
        items=reading.to_read(session=session, contacts=items),
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/contacts/{contact_id}", response_model=ContactRead)
def get_contact(session: SessionDep, scope: ScopeDep, contact_id: int):
    contact = reading.get_contact(session=session, scope=scope, contact_id=contact_id)
    return reading.to_read(session=session, contacts=[contact])[0]


@router.patch("/contacts/{contact_id}", response_model=ContactRead)
def correct_contact(
    session: SessionDep,
    scope: ScopeDep,
    settings: SettingsDep,
    now: NowDep,
    contact_id: int,
    body: ContactCorrection,
):
    """The author corrects their log within the correction window (24 hours)."""
    contact = corrections.correct_contact(
        session=session, scope=scope, settings=settings, contact_id=contact_id, data=body, now=now
    )
    return reading.to_read(session=session, contacts=[contact])[0]


@router.post("/contacts/{contact_id}/withdraw", response_model=ContactRead)
def withdraw_contact(
    session: SessionDep, scope: ScopeDep, settings: SettingsDep, now: NowDep, contact_id: int
):
    """Withdraw a log: its author within 24 hours, or a lead of its unit. It stops counting."""
    contact = corrections.withdraw_contact(
        session=session, scope=scope, settings=settings, contact_id=contact_id, now=now
    )
    return reading.to_read(session=session, contacts=[contact])[0]


@router.get("/contacts/{contact_id}/audit")
def contact_audit(session: SessionDep, scope: ScopeDep, contact_id: int) -> list[dict]:
    """Who corrected or withdrew the log, when, and what changed."""
    return [
        {"user_id": a.user_id, "action": a.action, "at": a.at, "changes": a.changes}
        for a in corrections.audit_trail(session=session, scope=scope, contact_id=contact_id)
    ]
