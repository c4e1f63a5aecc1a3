"""Routes for districts: import, GeoJSON views and assignment to s-föreningar."""

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.auth.scope import Forbidden, Scope
from api.db import SessionDep
from api.deps import ScopeDep, SettingsDep
from api.districts import service
from api.districts.schemas import (
    AssignmentRead,
    AssignRequest,
    BulkAssignResult,
    CoverageRow,
    DistrictRead,
    ImportOptions,
    ImportSummary,
)
from api.errors import Unprocessable
from api.pagination import Page, PageDep
from api.uploads import receive_upload, upload_body

router = APIRouter(tags=["districts"])

_SUFFIXES = {".geojson", ".json", ".gpkg", ".zip"}  # a lone .shp lacks its .dbf and .shx


class ImportParams(ImportOptions):
    dry_run: bool = False


class GeoJSONResponse(JSONResponse):
    media_type = "application/geo+json"


def _district_lead(scope: ScopeDep) -> Scope:
    """Only those who lead a kommun (kommun leads, district admins) send district files.

    This runs before the request's body is read, so an upload from anyone else costs the
    server nothing but its headers.
    """
    if not (scope.unrestricted or scope.led_kommun_ids):
        raise Forbidden("role: only kommun leads and district admins import or assign districts")
    return scope


DistrictLeadDep = Annotated[Scope, Depends(_district_lead)]


@router.post(
    "/districts/import",
    response_model=ImportSummary,
    openapi_extra=upload_body("GeoJSON, GeoPackage or zipped Shapefile", "district"),
)
async def import_districts(
    request: Request,
    session: SessionDep,
    scope: DistrictLeadDep,
    settings: SettingsDep,
    params: Annotated[ImportParams, Query()],
):
    """Import districts; the whole file is applied in one transaction, or nothing is.

    Limits: the upload (`KNACKA_IMPORT_MAX_UPLOAD_MB`), what a .zip unpacks to
    (`KNACKA_IMPORT_MAX_UNZIPPED_MB`) and the time reading may take
    (`KNACKA_IMPORT_TIMEOUT_SECONDS`); over any of them the answer is 413.
    """
    options = ImportOptions(**params.model_dump(exclude={"dry_run"}))
    with tempfile.TemporaryDirectory(prefix="knacka-import-") as tmp:
        path, name = await receive_upload(request, Path(tmp), settings)
        if path.suffix not in _SUFFIXES:
            raise Unprocessable(
                f"file: {name!r} is not a GeoJSON (.geojson/.json), GeoPackage (.gpkg) "
                "or zipped Shapefile (.zip)"
            )
        # The file is parsed in a child process (see geo.isolated); this thread only waits
        # for it and then writes, off the event loop.
        return await run_in_threadpool(
            service.import_district_file,
            session=session,
            scope=scope,
            path=path,
            options=options,
            dry_run=params.dry_run,
            isolate_seconds=settings.import_timeout_seconds,
            max_unzipped_bytes=settings.import_max_unzipped_mb * 2**20,
        )


@router.get("/districts", response_model=Page[DistrictRead])
def list_districts(
    session: SessionDep,
    scope: ScopeDep,
    page: PageDep,
    kommun: str | None = None,
    forening_id: int | None = None,
    assigned: bool | None = None,
    q: str | None = None,
):
    items, total = service.list_districts(
        session=session,
        scope=scope,
        page=page,
        kommun_code=kommun,
        forening_id=forening_id,
        assigned=assigned,
        q=q,
    )
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get("/districts.geojson", response_class=GeoJSONResponse)
def districts_geojson(
    session: SessionDep,
    scope: ScopeDep,
    kommun: str | None = None,
    forening_id: int | None = None,
    assigned: bool | None = None,
) -> dict[str, Any]:
    """Districts as a GeoJSON FeatureCollection (WGS84)."""
    return service.feature_collection(
        session=session, scope=scope, kommun_code=kommun, forening_id=forening_id, assigned=assigned
    )


@router.get("/districts/coverage", response_model=list[CoverageRow])
def district_coverage(session: SessionDep, scope: ScopeDep, partidistrikt_id: int | None = None):
    """Per kommun: districts, how many a förening covers, how many none does."""
    return service.coverage(session=session, scope=scope, partidistrikt_id=partidistrikt_id)


@router.post(
    "/districts/assignments",
    response_model=BulkAssignResult,
    openapi_extra=upload_body("CSV with columns district_code,forening", "CSV"),
)
async def assign_districts_bulk(
    request: Request, session: SessionDep, scope: DistrictLeadDep, settings: SettingsDep
):
    """Assign many districts from a CSV; if any row is invalid, none is applied."""
    with tempfile.TemporaryDirectory(prefix="knacka-assign-") as tmp:
        path, _ = await receive_upload(request, Path(tmp), settings)
        raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Unprocessable("file: the CSV is not UTF-8 text") from None
    return await run_in_threadpool(
        service.assign_bulk_csv, session=session, scope=scope, text=text, via="csv"
    )


@router.get("/districts/{code}", response_model=DistrictRead)
def get_district(session: SessionDep, scope: ScopeDep, code: str):
    district = service.get_district(session=session, scope=scope, code=code)
    return service.to_read(district, service.kommun_code_of(session=session, district=district))


@router.get("/districts/{code}/geojson", response_class=GeoJSONResponse)
def district_geojson(session: SessionDep, scope: ScopeDep, code: str) -> dict[str, Any]:
    """One district as a GeoJSON Feature (WGS84)."""
    service.get_district(session=session, scope=scope, code=code)
    return service.feature_collection(session=session, scope=scope, code=code)["features"][0]


@router.put("/districts/{code}/forening", response_model=DistrictRead)
def assign_district(session: SessionDep, scope: ScopeDep, code: str, body: AssignRequest):
    """Assign the district to a geographic förening of its kommun, or null to unassign."""
    district = service.assign_district(
        session=session, scope=scope, code=code, forening_id=body.forening_id
    )
    return service.to_read(district, service.kommun_code_of(session=session, district=district))


@router.get("/districts/{code}/assignments", response_model=list[AssignmentRead])
def district_assignments(session: SessionDep, scope: ScopeDep, code: str):
    """Who assigned the district to which förening, and when."""
    return [
        AssignmentRead(district_code=code, **a.model_dump())
        for a in service.assignment_history(session=session, scope=scope, code=code)
    ]


@router.get("/kommuner/{code}/uncovered-districts", response_class=GeoJSONResponse)
def uncovered_districts(session: SessionDep, scope: ScopeDep, code: str) -> dict[str, Any]:
    """A kommun's districts that no förening covers, with counts under ``summary``."""
    return service.uncovered_districts(session=session, scope=scope, kommun_code=code)
