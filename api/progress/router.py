"""Routes for progress per unit and its export."""

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import Response

from api.contacts.rules import local_day
from api.db import SessionDep
from api.deps import NowDep, ScopeDep, SettingsDep
from api.models import UnitKind
from api.progress import service
from api.progress.schemas import UnitProgress
from api.spreadsheet import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE, to_csv, to_xlsx

router = APIRouter(tags=["progress"])


@router.get("/campaigns/{campaign_id}/progress/{unit_kind}/{unit_id}", response_model=UnitProgress)
def unit_progress(
    session: SessionDep,
    scope: ScopeDep,
    settings: SettingsDep,
    now: NowDep,
    campaign_id: int,
    unit_kind: UnitKind,
    unit_id: int,
):
    """Actual against target per metric, the pace expected by today, a projection to
    election day from the last two weeks' rate, and the daily figures."""
    return service.unit_progress(
        session=session,
        scope=scope,
        campaign_id=campaign_id,
        unit_kind=unit_kind,
        unit_id=unit_id,
        today=local_day(now, settings.timezone),
    )


@router.get(
    "/campaigns/{campaign_id}/export",
    response_class=Response,
    responses={
        200: {
            "description": "The progress table, as the format asked for",
            "content": {
                CSV_MEDIA_TYPE: {"schema": {"type": "string"}},
                XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
def export_progress(
    session: SessionDep,
    scope: ScopeDep,
    settings: SettingsDep,
    now: NowDep,
    campaign_id: int,
    level: Literal["kommun", "forening", "district"] = "kommun",
    format: Literal["csv", "xlsx"] = "csv",
) -> Response:
    """Progress of every unit at one level that the caller sees, as CSV or XLSX."""
    today = local_day(now, settings.timezone)
    rows = service.export_rows(
        session=session, scope=scope, campaign_id=campaign_id, level=UnitKind(level), today=today
    )
    filename = f"progress-{campaign_id}-{level}-{today.isoformat()}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if format == "xlsx":
        return Response(to_xlsx(rows), media_type=XLSX_MEDIA_TYPE, headers=headers)
    return Response(to_csv(rows), media_type=f"{CSV_MEDIA_TYPE}; charset=utf-8", headers=headers)
