"""Routes for progress per unit, per child unit, and its export."""

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel

from api.contacts.rules import local_day
from api.db import SessionDep
from api.deps import NowDep, ScopeDep, SettingsDep
from api.models import UnitKind
from api.progress import service
from api.progress.schemas import ChildProgress, UnitProgress
from api.spreadsheet import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE, to_csv, to_xlsx

router = APIRouter(tags=["progress"])


def _json(model: BaseModel) -> Response:
    """The answer serialised once by its model: FastAPI would validate the models again
    (on a worker thread) first, a millisecond for a partidistrikt's kommuner."""
    return Response(model.model_dump_json(), media_type="application/json")


_UNIT_DOC = (
    "The unit: a partidistrikt or förening by its id, a kommun by its four-digit SCB code "
    "(e.g. 2380), a district by its code (e.g. 23800001)."
)


@router.get("/campaigns/{campaign_id}/progress/{unit_kind}/{unit}", response_model=UnitProgress)
def unit_progress(
    session: SessionDep,
    scope: ScopeDep,
    settings: SettingsDep,
    now: NowDep,
    campaign_id: int,
    unit_kind: UnitKind,
    unit: Annotated[str, Path(description=_UNIT_DOC, max_length=40)],
):
    """Actual against target per metric, the pace expected by today, a projection to
    election day from the last two weeks' rate, and the daily figures."""
    found = service.resolve_unit(session=session, scope=scope, kind=unit_kind, ref=unit)
    progress = service.unit_progress(
        session=session,
        scope=scope,
        campaign_id=campaign_id,
        unit_kind=unit_kind,
        unit_id=found.id,
        today=local_day(now, settings.timezone),
        check_scope=False,
    )
    return _json(progress)


@router.get(
    "/campaigns/{campaign_id}/progress/{unit_kind}/{unit}/children", response_model=ChildProgress
)
def child_progress(
    session: SessionDep,
    scope: ScopeDep,
    settings: SettingsDep,
    now: NowDep,
    campaign_id: int,
    unit_kind: UnitKind,
    unit: Annotated[str, Path(description=_UNIT_DOC, max_length=40)],
):
    """The progress of each child unit the caller sees (a partidistrikt's kommuner, a
    kommun's föreningar, a förening's districts), without daily figures."""
    found = service.resolve_unit(session=session, scope=scope, kind=unit_kind, ref=unit)
    kind, children = service.child_progress(
        session=session,
        scope=scope,
        campaign_id=campaign_id,
        unit_kind=unit_kind,
        unit_id=found.id,
        today=local_day(now, settings.timezone),
    )
    return _json(ChildProgress(children_kind=kind, children=children))


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
    level: Literal["kommun", "forening", "district", "turf"] = "kommun",
    format: Literal["csv", "xlsx"] = "csv",
    kommun: str | None = Query(
        None, description="Only this kommun, by its four-digit SCB code (e.g. 2380)."
    ),
) -> Response:
    """Progress of every unit at one level that the caller sees, as CSV or XLSX."""
    today = local_day(now, settings.timezone)
    rows = service.export_rows(
        session=session,
        scope=scope,
        campaign_id=campaign_id,
        level=UnitKind(level),
        today=today,
        kommun=kommun,
    )
    filename = f"progress-{campaign_id}-{level}-{today.isoformat()}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if format == "xlsx":
        return Response(to_xlsx(rows), media_type=XLSX_MEDIA_TYPE, headers=headers)
    return Response(to_csv(rows), media_type=f"{CSV_MEDIA_TYPE}; charset=utf-8", headers=headers)
