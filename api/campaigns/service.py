"""Campaigns and their targets: set directly, or apportioned from a parent unit."""

from datetime import datetime

from sqlmodel import Session, col, select

from api.auth.scope import Scope
from api.campaigns.schemas import ApportionRequest, CampaignCreate, Mismatch, TargetSet
from api.db import save_unique
from api.errors import NotFound, Unprocessable
from api.models import (
    Campaign,
    District,
    Forening,
    ForeningKind,
    Kommun,
    Partidistrikt,
    Target,
    UnitKind,
)
from api.org.service import UNIT_MODELS, partidistrikt_of, unit_name

__all__ = [
    "METRICS",
    "apportion",
    "create_campaign",
    "get_campaign",
    "largest_remainder",
    "list_campaigns",
    "set_target",
    "target_tree",
    "units_of",
]

# The metrics progress is computed for; targets may name others (kept for later metrics).
METRICS = ("conversations", "doors", "new_members", "active_volunteers")


def get_campaign(*, session: Session, scope: Scope, campaign_id: int) -> Campaign:
    """A campaign of the caller's partidistrikt."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} not found")
    scope.require(_in_partidistrikt(scope, campaign.partidistrikt_id), f"campaign {campaign_id}")
    return campaign


def _in_partidistrikt(scope: Scope, partidistrikt_id: int) -> bool:
    """Everyone in a partidistrikt may see its campaigns (and nobody outside it)."""
    if scope.unrestricted or partidistrikt_id in scope.partidistrikt_ids:
        return True
    kommun_ids = scope.home_kommun_ids
    if not kommun_ids:
        return False
    session = scope.session
    return (
        session.exec(
            select(Kommun.id).where(
                col(Kommun.id).in_(kommun_ids), Kommun.partidistrikt_id == partidistrikt_id
            )
        ).first()
        is not None
    )


def list_campaigns(*, session: Session, scope: Scope) -> list[Campaign]:
    """Campaigns of the partidistrikt the caller belongs to."""
    campaigns = session.exec(select(Campaign).order_by(Campaign.starts_on, Campaign.id)).all()
    return [c for c in campaigns if _in_partidistrikt(scope, c.partidistrikt_id)]


def create_campaign(*, session: Session, scope: Scope, data: CampaignCreate) -> Campaign:
    """Create a campaign for a partidistrikt the caller administers."""
    if session.get(Partidistrikt, data.partidistrikt_id) is None:
        raise Unprocessable(
            f"partidistrikt_id: partidistrikt {data.partidistrikt_id} does not exist"
        )
    scope.require(
        scope.sees_partidistrikt(data.partidistrikt_id), f"partidistrikt {data.partidistrikt_id}"
    )
    campaign = Campaign(**data.model_dump())
    session.add(campaign)
    session.flush()
    return campaign


def _may_set(scope: Scope, session: Session, kind: UnitKind, unit_id: int) -> bool:
    """A unit's target is set by whoever leads the unit above it (admins: their whole tree)."""
    if kind == UnitKind.partidistrikt:
        return scope.sees_partidistrikt(unit_id)
    if kind == UnitKind.kommun:
        return scope.sees_partidistrikt(partidistrikt_of(session, kind, unit_id))
    if kind == UnitKind.forening:
        return scope.leads_kommun(session.get(Forening, unit_id).kommun_id)
    district = session.get(District, unit_id)
    if scope.leads_kommun(district.kommun_id):
        return True
    if district.forening_id is None:
        return False
    return scope.leads_forening(session.get(Forening, district.forening_id))


def _put(
    session: Session,
    campaign: Campaign,
    kind: UnitKind,
    unit_id: int,
    metric: str,
    value: int,
    basis: str,
    now: datetime,
) -> Target:
    target = session.exec(
        select(Target).where(
            Target.campaign_id == campaign.id,
            Target.unit_kind == kind,
            Target.unit_id == unit_id,
            Target.metric == metric,
        )
    ).first()
    if target is None:
        target = Target(campaign_id=campaign.id, unit_kind=kind, unit_id=unit_id, metric=metric)
    target.value, target.basis, target.updated_at = value, basis, now
    save_unique(session, target, f"{metric}: the target changed at the same time; try again")
    return target


def set_target(
    *, session: Session, scope: Scope, campaign_id: int, data: TargetSet, now: datetime
) -> Target:
    """Set one unit's target directly."""
    campaign = get_campaign(session=session, scope=scope, campaign_id=campaign_id)
    unit_name(session, data.unit_kind, data.unit_id)
    if partidistrikt_of(session, data.unit_kind, data.unit_id) != campaign.partidistrikt_id:
        raise Unprocessable("unit_id: the unit is not in the campaign's partidistrikt")
    scope.require(
        _may_set(scope, session, data.unit_kind, data.unit_id),
        f"setting targets for {data.unit_kind.value} {data.unit_id}",
    )
    target = _put(
        session, campaign, data.unit_kind, data.unit_id, data.metric, data.value, "direct", now
    )
    session.flush()
    return target


def largest_remainder(total: int, weights: list[float]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` into whole numbers that sum to it."""
    if not weights:
        return []
    weight_sum = sum(weights)
    if weight_sum <= 0:
        raise ValueError("weights must have a positive sum")
    exact = [total * w / weight_sum for w in weights]
    shares = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares


def _children(
    session: Session, kind: str, unit_id: int, children: str
) -> tuple[UnitKind, list[tuple[int, list[District]]]]:
    """The child units of a unit, each with the districts whose counts weigh it."""
    if kind == "partidistrikt":
        kommuner = session.exec(
            select(Kommun).where(Kommun.partidistrikt_id == unit_id).order_by(Kommun.code)
        ).all()
        districts = session.exec(
            select(District).where(col(District.kommun_id).in_([k.id for k in kommuner]))
        ).all()
        return UnitKind.kommun, [
            (k.id, [d for d in districts if d.kommun_id == k.id]) for k in kommuner
        ]
    if kind == "kommun" and children == "default":
        foreningar = session.exec(
            select(Forening)
            .where(Forening.kommun_id == unit_id, Forening.kind == ForeningKind.geographic)
            .order_by(Forening.name)
        ).all()
        districts = session.exec(select(District).where(District.kommun_id == unit_id)).all()
        return UnitKind.forening, [
            (f.id, [d for d in districts if d.forening_id == f.id]) for f in foreningar
        ]
    column = District.kommun_id if kind == "kommun" else District.forening_id
    districts = session.exec(select(District).where(column == unit_id).order_by(District.code))
    return UnitKind.district, [(d.id, [d]) for d in districts]


def apportion(
    *, session: Session, scope: Scope, campaign_id: int, data: ApportionRequest, now: datetime
) -> list[Target]:
    """Give the children of a unit targets that add up to the unit's own target."""
    campaign = get_campaign(session=session, scope=scope, campaign_id=campaign_id)
    kind = UnitKind(data.unit_kind)
    unit_name(session, kind, data.unit_id)
    parent = session.exec(
        select(Target).where(
            Target.campaign_id == campaign.id,
            Target.unit_kind == kind,
            Target.unit_id == data.unit_id,
            Target.metric == data.metric,
        )
    ).first()
    if parent is None:
        raise Unprocessable(
            f"metric: {kind.value} {data.unit_id} has no {data.metric!r} target to apportion"
        )
    child_kind, children = _children(session, kind.value, data.unit_id, data.children)
    if not children:
        raise Unprocessable(f"unit_id: {kind.value} {data.unit_id} has no child units")
    for child_id, _ in children:
        scope.require(
            _may_set(scope, session, child_kind, child_id),
            f"setting targets for {child_kind.value} {child_id}",
        )

    def weights(field: str) -> list[float] | None:
        values = [[getattr(d, field) for d in ds] for _, ds in children]
        # Counts are "known" only when every district behind every child has one.
        if any(v is None for vs in values for v in vs) or sum(sum(vs) for vs in values) == 0:
            return None
        return [float(sum(vs)) for vs in values]

    bases = ["voters", "households", "even"] if data.basis == "auto" else [data.basis]
    for basis in bases:
        w = [1.0] * len(children) if basis == "even" else weights(basis)
        if w is not None:
            break
    else:
        raise Unprocessable(
            f"basis: not every district under {kind.value} {data.unit_id} has {data.basis} "
            "counts; use basis=even or import the counts"
        )
    shares = largest_remainder(parent.value, w)
    targets = [
        _put(session, campaign, child_kind, child_id, data.metric, share, basis, now)
        for (child_id, _), share in zip(children, shares, strict=True)
    ]
    session.flush()
    return targets


def units_of(session: Session, kind: UnitKind, ids: set[int]) -> dict[int, str]:
    """Names of units by id."""
    if not ids:
        return {}
    model = UNIT_MODELS[kind]
    return dict(session.exec(select(model.id, model.name).where(col(model.id).in_(ids))).all())


def target_tree(
    *, session: Session, scope: Scope, campaign_id: int, metric: str | None = None
) -> tuple[list[tuple[Target, str]], list[Mismatch]]:
    """All targets of a campaign, and every parent whose children's targets differ from it."""
    campaign = get_campaign(session=session, scope=scope, campaign_id=campaign_id)
    query = select(Target).where(Target.campaign_id == campaign.id)
    if metric:
        query = query.where(Target.metric == metric)
    targets = list(session.exec(query.order_by(Target.metric, Target.unit_kind, Target.unit_id)))
    by_kind: dict[UnitKind, set[int]] = {}
    for t in targets:
        by_kind.setdefault(UnitKind(t.unit_kind), set()).add(t.unit_id)
    names = {k: units_of(session, k, ids) for k, ids in by_kind.items()}
    value = {(UnitKind(t.unit_kind), t.unit_id, t.metric): t.value for t in targets}

    mismatches: list[Mismatch] = []
    for t in targets:
        kind = UnitKind(t.unit_kind)
        levels = {
            UnitKind.partidistrikt: ["default"],
            UnitKind.kommun: ["default", "districts"],
            UnitKind.forening: ["default"],
        }.get(kind, [])
        for level in levels:
            child_kind, children = _children(session, kind.value, t.unit_id, level)
            have = [
                value[(child_kind, cid, t.metric)]
                for cid, _ in children
                if (child_kind, cid, t.metric) in value
            ]
            if have and sum(have) != t.value:
                mismatches.append(
                    Mismatch(
                        unit_kind=kind,
                        unit_id=t.unit_id,
                        unit_name=names[kind][t.unit_id],
                        metric=t.metric,
                        target=t.value,
                        children_kind=child_kind,
                        children_with_targets=len(have),
                        children_total=len(children),
                        children_sum=sum(have),
                        difference=sum(have) - t.value,
                    )
                )
    return [(t, names[UnitKind(t.unit_kind)][t.unit_id]) for t in targets], mismatches
