"""The route that cuts districts into turfs."""

from fastapi import APIRouter

from api.db import SessionDep
from api.deps import NowDep, ScopeDep, SettingsDep
from api.turfs.cutting import cut_request
from api.turfs.cutting_schemas import CutRequest, CutSummary

__all__ = ["router"]

router = APIRouter(tags=["turfs"])


@router.post("/turfs/cut", response_model=CutSummary)
def cut_turfs(
    session: SessionDep, scope: ScopeDep, settings: SettingsDep, now: NowDep, body: CutRequest
) -> CutSummary:
    """Cut one district (`district`), a förening's districts (`forening_id`) or a kommun's
    (`kommun`) into turfs of about `households` households (default
    KNACKA_TURF_HOUSEHOLDS), never across a district border. Turfs with visits or a live
    lease are kept with their addresses; the district's other turfs are retired and the
    rest is cut anew. For whoever leads the districts."""
    return cut_request(
        session=session,
        scope=scope,
        request=body,
        default_households=settings.turf_households,
        now=now,
    )
