"""Routes for districts: import, GeoJSON views and assignment to s-föreningar."""

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.db import SessionDep
from api.deps import ScopeDep
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
from api.errors import AppError, Unprocessable
from api.pagination import Page, PageDep

router = APIRouter(tags=["districts"])

MAX_UPLOAD_BYTES = 200 * 1024 * 1024
_SUFFIXES = {".geojson", ".json", ".gpkg", ".zip"}  # a lone .shp lacks its .dbf and .shx


class ImportParams(ImportOptions):
    dry_run: bool = False


class GeoJSONResponse(JSONResponse):
    media_type = "application/geo+json"


async def _save_upload(upload: UploadFile, directory: Path) -> Path:
    suffix = Path(upload.filename or "").suffix.lower()
    if suffix not in _SUFFIXES:
        raise Unprocessable(
            f"file: {upload.filename!r} is not a GeoJSON (.geojson/.json), GeoPackage (.gpkg) "
            "or zipped Shapefile (.zip)"
        )
    target = directory / f"upload{suffix}"
    size = 0
    with target.open("wb") as out:
        while chunk := await upload.read(1 << 20):
            size += len(chunk)
            if size > MAX_UPLOAD_BYTES:
                raise AppError(f"file: larger than {MAX_UPLOAD_BYTES // 2**20} MiB", 413)
            out.write(chunk)
    return target


@router.post("/districts/import", response_model=ImportSummary)
async def import_districts(
    session: SessionDep,
    scope: ScopeDep,
    file: Annotated[UploadFile, File(description="GeoJSON, GeoPackage or zipped Shapefile")],
    params: Annotated[ImportParams, Query()],
):
    """Import districts; the whole file is applied in one transaction, or nothing is."""
    options = ImportOptions(**params.model_dump(exclude={"dry_run"}))
    with tempfile.TemporaryDirectory(prefix="knacka-import-") as tmp:
        path = await _save_upload(file, Path(tmp))
        # Reading and validating a large file takes seconds: off the event loop.
        return await run_in_threadpool(
            service.import_district_file,
            session=session,
            scope=scope,
            path=path,
            options=options,
            dry_run=params.dry_run,
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


@router.post("/districts/assignments", response_model=BulkAssignResult)
async def assign_districts_bulk(
    session: SessionDep,
    scope: ScopeDep,
    file: Annotated[UploadFile, File(description="CSV with columns district_code,forening")],
):
    """Assign many districts from a CSV; if any row is invalid, none is applied."""
    raw = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(raw) > MAX_UPLOAD_BYTES:
        raise AppError(f"file: larger than {MAX_UPLOAD_BYTES // 2**20} MiB", 413)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Unprocessable("file: the CSV is not UTF-8 text") from None
    return service.assign_bulk_csv(session=session, scope=scope, text=text, via="csv")


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
