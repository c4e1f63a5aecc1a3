"""Routes for election results: the district priority ranking of a kommun."""

from fastapi import APIRouter

from api.db import SessionDep
from api.deps import ScopeDep, SettingsDep
from api.results import service
from api.results.schemas import PriorityRow

router = APIRouter(tags=["results"])


@router.get("/kommuner/{code}/priorities", response_model=list[PriorityRow])
def kommun_priorities(
    session: SessionDep,
    scope: ScopeDep,
    settings: SettingsDep,
    code: str,
    election: str | None = None,
):
    """The kommun's districts ranked by eligible × (1 − turnout) × the party's vote share
    (the party: KNACKA_PRIORITY_PARTY); ``election`` defaults to the latest imported."""
    return service.kommun_priorities(
        session=session,
        scope=scope,
        kommun_code=code,
        election=election,
        party=settings.priority_party,
    )
