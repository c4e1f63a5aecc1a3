"""Campaigns and their targets: set directly, or apportioned from a parent unit."""

from collections import defaultdict
from datetime import datetime

from sqlalchemy import true
from sqlmodel import Session, select

from api.auth.scope import Forbidden, Scope
from api.campaigns.schemas import ApportionRequest, CampaignCreate, Mismatch, TargetSet
from api.db import save_unique
from api.errors import NotFound, Unprocessable
from api.models import (
    Campaign,
    District,
    Forening,
    ForeningKind,
    Target,
    UnitKind,
)
from api.org import tree
from api.org.service import partidistrikt_of

__all__ = [
    "METRICS",
    "apportion",
    "create_campaign",
    "get_campaign",
    "largest_remainder",
    "list_campaigns",
    "set_target",
    "target_tree",
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
    return scope.unrestricted or scope.partidistrikt_id == partidistrikt_id


def list_campaigns(*, session: Session, scope: Scope) -> list[Campaign]:
    """Campaigns of the partidistrikt the caller belongs to."""
    campaigns = session.exec(select(Campaign).order_by(Campaign.starts_on, Campaign.id)).all()
    return [c for c in campaigns if _in_partidistrikt(scope, c.partidistrikt_id)]


def create_campaign(*, session: Session, scope: Scope, data: CampaignCreate) -> Campaign:
    """Create a campaign for a partidistrikt the caller administers."""
    scope.require(scope.is_lead, "creating campaigns")
    scope.require_unit(
        tree.LEVELS[0].kind,
        data.partidistrikt_id,
        f"partidistrikt {data.partidistrikt_id}",
        lead=True,
        field="partidistrikt_id",
    )
    campaign = Campaign(**data.model_dump())
    session.add(campaign)
    session.flush()
    return campaign


def _may_set(scope: Scope, unit: object) -> bool:
    """A unit's target is set by whoever leads a unit above it: its parent in the tree or
    a further membership (a district's förening); the top level's by those who lead it."""
    lv = tree.level(tree.kind_of(unit))
    if not lv.parents:
        return scope.leads(unit)
    return any(
        getattr(unit, column) is not None and scope.leads(getattr(unit, column), parent)
        for parent, column in lv.parents
    )


def _unit(session: Session, scope: Scope, kind: UnitKind, data, what: str) -> object:
    """The unit a body names by unit_id or unit_code, answered alike whether it is missing
    or out of the caller's reach."""
    if data.unit_code is not None:
        if tree.level(kind).key != "code":
            raise Unprocessable(f"unit_code: a {kind.value} is named by its unit_id")
        try:
            unit_id = tree.resolve(session, kind, data.unit_code).id
        except NotFound:
            if scope.unrestricted:
                raise Unprocessable(
                    f"unit_code: no {kind.value} has code {data.unit_code}"
                ) from None
            raise Forbidden(f"{what}: it does not exist or is outside your unit") from None
    else:
        unit_id = data.unit_id
    return scope.require_unit(kind, unit_id, what)


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
    what = f"setting targets for {data.unit_kind.value} {data.unit_code or data.unit_id}"
    unit = _unit(session, scope, data.unit_kind, data, what)
    if partidistrikt_of(session, data.unit_kind, unit.id) != campaign.partidistrikt_id:
        raise Unprocessable("unit_id: the unit is not in the campaign's partidistrikt")
    scope.require(_may_set(scope, unit), what)
    target = _put(
        session, campaign, data.unit_kind, unit.id, data.metric, data.value, "direct", now
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


def _child_levels(kind: UnitKind) -> list[tuple[str, UnitKind]]:
    """The ways a unit's target may be split: among its children in the tree ("default"),
    and directly among its field units ("districts") where they hang off it directly."""
    child = tree.child_kind(kind)
    if child is None:
        return []
    levels = [("default", child)]
    counted = tree.COUNTED_KIND
    if counted != child and any(p == kind for p, _ in tree.level(counted).parents):
        levels.append(("districts", counted))
    return levels


def _holds_field_units(child: UnitKind):
    """Children that cannot hold field units (workplace clubs) take no share of them."""
    model = tree.level(child).model
    return (model.kind == ForeningKind.geographic) if model is Forening else None


def _children(
    session: Session, kind: UnitKind, unit_id: int, children: str
) -> tuple[UnitKind, list[tuple[int, list[District]]]]:
    """The child units of a unit, each with the districts whose counts weigh it."""
    child = dict(_child_levels(kind)).get(children)
    if child is None:
        raise Unprocessable(f"children: a {kind.value} cannot be split by {children!r}")
    units = tree.units_under(session, child, kind, [unit_id], where=_holds_field_units(child))
    districts = tree.units_under(session, tree.COUNTED_KIND, kind, [unit_id])
    owner = tree.ancestor_ids(session, tree.COUNTED_KIND, [d.id for d in districts], child)
    by_child: dict[int, list[District]] = {u.id: [] for u in units}
    for d in districts:
        if owner[d.id] in by_child:
            by_child[owner[d.id]].append(d)
    return child, [(u.id, by_child[u.id]) for u in units]


def apportion(
    *, session: Session, scope: Scope, campaign_id: int, data: ApportionRequest, now: datetime
) -> list[Target]:
    """Give the children of a unit targets that add up to the unit's own target."""
    campaign = get_campaign(session=session, scope=scope, campaign_id=campaign_id)
    kind = UnitKind(data.unit_kind)
    unit_id = _unit(session, scope, kind, data, f"apportioning {kind.value}").id
    parent = session.exec(
        select(Target).where(
            Target.campaign_id == campaign.id,
            Target.unit_kind == kind,
            Target.unit_id == unit_id,
            Target.metric == data.metric,
        )
    ).first()
    if parent is None:
        raise Unprocessable(
            f"metric: {kind.value} {unit_id} has no {data.metric!r} target to apportion"
        )
    child_kind, children = _children(session, kind, unit_id, data.children)
    if not children:
        raise Unprocessable(f"unit_id: {kind.value} {unit_id} has no child units")
    child_rows = {u.id: u for u in tree.units_under(session, child_kind, kind, [unit_id])}
    for child_id, _ in children:
        scope.require(
            _may_set(scope, child_rows[child_id]),
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
            f"basis: not every district under {kind.value} {unit_id} has {data.basis} "
            "counts; use basis=even or import the counts"
        )
    shares = largest_remainder(parent.value, w)
    targets = [
        _put(session, campaign, child_kind, child_id, data.metric, share, basis, now)
        for (child_id, _), share in zip(children, shares, strict=True)
    ]
    session.flush()
    return targets


def target_tree(
    *, session: Session, scope: Scope, campaign_id: int, metric: str | None = None
) -> tuple[list[tuple[Target, str]], list[Mismatch]]:
    """All targets of a campaign, and every parent whose children's targets differ from it."""
    campaign = get_campaign(session=session, scope=scope, campaign_id=campaign_id)
    query = select(Target).where(Target.campaign_id == campaign.id)
    if metric:
        query = query.where(Target.metric == metric)
    targets = list(session.exec(query.order_by(Target.metric, Target.unit_kind, Target.unit_id)))
    by_kind: dict[UnitKind, set[int]] = defaultdict(set)
    for t in targets:
        by_kind[UnitKind(t.unit_kind)].add(t.unit_id)
    names = {k: tree.names(session, k, ids) for k, ids in by_kind.items()}
    value = {(UnitKind(t.unit_kind), t.unit_id, t.metric): t.value for t in targets}

    # For each (parent level, child level): every child's parent and every parent's number
    # of children, one query each, whatever the number of targets.
    splits: dict[UnitKind, list[tuple[UnitKind, dict[int, int], dict[int, int]]]] = {}
    for kind, ids in by_kind.items():
        splits[kind] = []
        for _, child in _child_levels(kind):
            child_ids = set(
                session.exec(tree.ids_under(child, kind, ids).where(_children_filter(child)))
            )
            parent_of = tree.ancestor_ids(session, child, child_ids, kind)
            total: dict[int, int] = defaultdict(int)
            for parent in parent_of.values():
                total[parent] += 1
            splits[kind].append((child, parent_of, total))

    mismatches: list[Mismatch] = []
    for t in targets:
        kind = UnitKind(t.unit_kind)
        for child_kind, parent_of, total in splits.get(kind, []):
            have = [
                value[(child_kind, cid, t.metric)]
                for cid, parent in parent_of.items()
                if parent == t.unit_id and (child_kind, cid, t.metric) in value
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
                        children_total=total[t.unit_id],
                        children_sum=sum(have),
                        difference=sum(have) - t.value,
                    )
                )
    return [(t, names[UnitKind(t.unit_kind)][t.unit_id]) for t in targets], mismatches


def _children_filter(child: UnitKind):
    clause = _holds_field_units(child)
    return true() if clause is None else clause
