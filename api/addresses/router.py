"""Routes for address points: import, a district's addresses, households per address."""

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from api.addresses import service
from api.addresses.schemas import (
    AddressImportOptions,
    AddressImportSummary,
    AddressRead,
    HouseholdsUpdate,
)
from api.db import SessionDep
from api.deps import ScopeDep, SettingsDep
from api.districts.router import DistrictLeadDep
from api.errors import Unprocessable
from api.pagination import Page, PageDep
from api.uploads import receive_upload, upload_body

router = APIRouter(tags=["addresses"])

_SUFFIXES = {".csv", ".geojson", ".json", ".gpkg", ".zip"}


class AddressImportParams(AddressImportOptions):
    kommun: str | None = None
    dry_run: bool = False


@router.post(
    "/addresses/import",
    response_model=AddressImportSummary,
    openapi_extra=upload_body(
        "CSV, GeoJSON, GeoPackage, or a zipped GeoJSON, GeoPackage or Shapefile", "address"
    ),
)
async def import_addresses(
    request: Request,
    session: SessionDep,
    scope: DistrictLeadDep,
    settings: SettingsDep,
    params: Annotated[AddressImportParams, Query()],
):
    """Import address points, each joined to its district; all of the file, or nothing.

    ``kommun`` limits the join to one kommun's districts (by default: every kommun the
    caller leads). The limits are those of POST /districts/import (413 over any of them).
    """
    options = AddressImportOptions(**params.model_dump(exclude={"kommun", "dry_run"}))
    with tempfile.TemporaryDirectory(prefix="knacka-addresses-") as tmp:
        path, name = await receive_upload(request, Path(tmp), settings)
        if path.suffix not in _SUFFIXES:
            raise Unprocessable(
                f"file: {name!r} is not a CSV (.csv), GeoJSON (.geojson/.json), GeoPackage "
                "(.gpkg) or .zip"
            )
        return await run_in_threadpool(
            service.import_address_file,
            session=session,
            scope=scope,
            path=path,
            options=options,
            kommun_code=params.kommun,
            dry_run=params.dry_run,
            isolate_seconds=settings.import_timeout_seconds,
            max_unzipped_bytes=settings.import_max_unzipped_mb * 2**20,
        )


@router.get("/districts/{code}/addresses", response_model=Page[AddressRead])
def district_addresses(
    session: SessionDep, scope: ScopeDep, page: PageDep, code: str, missing: bool = False
):
    """A district's addresses (with ``missing=true`` also those a newer file lacks)."""
    items, total = service.list_district_addresses(
        session=session, scope=scope, code=code, page=page, missing=missing
    )
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.patch("/addresses/{address_id}", response_model=AddressRead)
def set_households(session: SessionDep, scope: ScopeDep, address_id: int, body: HouseholdsUpdate):
    """Set an address's households; later imports keep this figure."""
    return service.set_households(
        session=session, scope=scope, address_id=address_id, households=body.households
    )
