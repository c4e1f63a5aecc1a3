"""Routes for turfs: listing with coverage and lease state, leases, claiming by short link,
the QR code and the printable walk list."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.contacts.rules import local_day
from api.db import SessionDep
from api.deps import NowDep, ScopeDep, SettingsDep
from api.models import District
from api.turfs import service, walklist
from api.turfs.schemas import LeaseIn, TurfRead

__all__ = ["router"]

router = APIRouter(tags=["turfs"])


def _base_url(settings, request: Request) -> str:
    return settings.public_url or str(request.base_url)


@router.get("/turfs", response_model=list[TurfRead])
def list_turfs(
    session: SessionDep,
    scope: ScopeDep,
    now: NowDep,
    district: Annotated[str | None, Query(description="A district's code")] = None,
    kommun: Annotated[str | None, Query(description="A kommun's four-digit SCB code")] = None,
):
    """The turfs of one district or kommun that the caller sees, with coverage and lease."""
    turfs = service.list_turfs(session=session, scope=scope, district=district, kommun=kommun)
    return service.to_read(session=session, scope=scope, turfs=turfs, now=now)


@router.get("/me/turfs", response_model=list[TurfRead])
def my_turfs(session: SessionDep, scope: ScopeDep, now: NowDep):
    """The turfs leased to the caller, or to their förening as a team."""
    turfs = service.my_turfs(session=session, scope=scope, now=now)
    return service.to_read(session=session, scope=scope, turfs=turfs, now=now)


@router.post("/turfs/claim/{link_code}", response_model=TurfRead, status_code=201)
def claim_turf(
    session: SessionDep, scope: ScopeDep, settings: SettingsDep, now: NowDep, link_code: str
):
    """Take a free turf from its printed QR code (volunteers and förening leads of its
    kommun); 409 naming the holder's förening when it is taken."""
    turf = service.claim_turf(
        session=session, scope=scope, settings=settings, link_code=link_code, now=now
    )
    return service.to_read(session=session, scope=scope, turfs=[turf], now=now)[0]


@router.get("/turfs/{code}", response_model=TurfRead)
def get_turf(session: SessionDep, scope: ScopeDep, now: NowDep, code: str):
    turf = service.get_turf(session=session, scope=scope, code=code)
    return service.to_read(session=session, scope=scope, turfs=[turf], now=now)[0]


@router.post("/turfs/{code}/lease", response_model=TurfRead, status_code=201)
def assign_lease(
    session: SessionDep,
    scope: ScopeDep,
    settings: SettingsDep,
    now: NowDep,
    code: str,
    body: LeaseIn,
):
    """A lead of the turf's district checks it out to a volunteer or a förening (409 while
    it is leased; days default to KNACKA_TURF_LEASE_DAYS)."""
    turf = service.assign_lease(
        session=session, scope=scope, settings=settings, code=code, body=body, now=now
    )
    return service.to_read(session=session, scope=scope, turfs=[turf], now=now)[0]


@router.delete("/turfs/{code}/lease", response_model=TurfRead)
def release_lease(session: SessionDep, scope: ScopeDep, now: NowDep, code: str):
    """A lead of the turf's district, or the holder, releases the lease."""
    turf = service.release_lease(session=session, scope=scope, code=code, now=now)
    return service.to_read(session=session, scope=scope, turfs=[turf], now=now)[0]


@router.get("/turfs/{code}/qr.svg", response_class=Response)
def turf_qr(
    session: SessionDep, scope: ScopeDep, settings: SettingsDep, request: Request, code: str
):
    """The turf's QR code: its short link for claiming it."""
    turf = service.get_turf(session=session, scope=scope, code=code)
    svg = walklist.qr_svg(walklist.claim_url(_base_url(settings, request), turf))
    return Response(svg, media_type="image/svg+xml")


@router.get("/turfs/{code}/walklist.csv", response_class=Response)
def walk_list_csv(session: SessionDep, scope: ScopeDep, code: str):
    """The turf's addresses in walking order, with households and doors already answered."""
    turf = service.get_turf(session=session, scope=scope, code=code)
    rows = walklist.walk_rows(session=session, turf=turf)
    headers = {"Content-Disposition": f'attachment; filename="knacklista-{turf.id}.csv"'}
    return Response(walklist.walk_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/turfs/{code}/walklist", response_class=Response)
def walk_list_html(
    session: SessionDep,
    scope: ScopeDep,
    settings: SettingsDep,
    now: NowDep,
    request: Request,
    code: str,
):
    """The printable walk list (A4, in Swedish): pages of 25 addresses, each with the turf's
    code and map and a box per outcome; served under a strict Content-Security-Policy."""
    turf = service.get_turf(session=session, scope=scope, code=code)
    rows = walklist.walk_rows(session=session, turf=turf)
    page = walklist.walk_html(
        turf=turf,
        district=session.get(District, turf.district_id),
        rows=rows,
        url=walklist.claim_url(_base_url(settings, request), turf),
        stylesheet=_base_url(settings, request).rstrip("/") + walklist.STYLESHEET,
        today=local_day(now, settings.timezone),
    )
    headers = {"Content-Security-Policy": walklist.CSP, "X-Content-Type-Options": "nosniff"}
    return Response(page, media_type="text/html; charset=utf-8", headers=headers)
