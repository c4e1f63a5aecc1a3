"""Routes for campaigns and their targets."""

from fastapi import APIRouter, status

from api.campaigns import service
from api.campaigns.schemas import (
    ApportionRequest,
    CampaignCreate,
    CampaignRead,
    TargetRead,
    TargetSet,
    TargetTree,
)
from api.db import SessionDep
from api.deps import NowDep, ScopeDep
from api.models import Target
from api.org.service import unit_name

router = APIRouter(tags=["campaigns"])


def _read(session: SessionDep, target: Target) -> TargetRead:
    name = unit_name(session, target.unit_kind, target.unit_id)
    return TargetRead(**target.model_dump(warnings=False), unit_name=name)


@router.get("/campaigns", response_model=list[CampaignRead])
def list_campaigns(session: SessionDep, scope: ScopeDep):
    return service.list_campaigns(session=session, scope=scope)


@router.post("/campaigns", response_model=CampaignRead, status_code=status.HTTP_201_CREATED)
def create_campaign(session: SessionDep, scope: ScopeDep, body: CampaignCreate):
    return service.create_campaign(session=session, scope=scope, data=body)


@router.get("/campaigns/{campaign_id}", response_model=CampaignRead)
def get_campaign(session: SessionDep, scope: ScopeDep, campaign_id: int):
    return service.get_campaign(session=session, scope=scope, campaign_id=campaign_id)


@router.get("/campaigns/{campaign_id}/targets", response_model=TargetTree)
def list_targets(session: SessionDep, scope: ScopeDep, campaign_id: int, metric: str | None = None):
    """Every target, and every unit whose children's targets do not add up to its own."""
    targets, mismatches = service.target_tree(
        session=session, scope=scope, campaign_id=campaign_id, metric=metric
    )
    return TargetTree(
        targets=[TargetRead(**t.model_dump(warnings=False), unit_name=n) for t, n in targets],
        mismatches=mismatches,
    )


@router.put("/campaigns/{campaign_id}/targets", response_model=TargetRead)
def set_target(
    session: SessionDep, scope: ScopeDep, now: NowDep, campaign_id: int, body: TargetSet
):
    """Set one unit's target for one metric (a lead of the unit above it sets it)."""
    target = service.set_target(
        session=session, scope=scope, campaign_id=campaign_id, data=body, now=now
    )
    return _read(session, target)


@router.post("/campaigns/{campaign_id}/apportion", response_model=list[TargetRead])
def apportion(
    session: SessionDep, scope: ScopeDep, now: NowDep, campaign_id: int, body: ApportionRequest
):
    """Split a unit's target over its children by voters, households or evenly; the
    children's targets add up exactly to the parent's."""
    targets = service.apportion(
        session=session, scope=scope, campaign_id=campaign_id, data=body, now=now
    )
    return [_read(session, t) for t in targets]
