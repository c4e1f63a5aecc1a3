"""The organisation tree: the unit kinds, their order, and every lookup across them.

partidistrikt -> kommun (arbetarekommun) -> s-förening -> district (valdistrikt) -> turf. A
district belongs to its kommun (geography) and, once assigned, to one förening (who
canvasses it); a turf is a walkable part of one district.
Every lookup here takes a whole set of units and costs one query, whatever the set's size;
nothing else in the service spells the hierarchy out. A new level (turfs below districts,
members under föreningar) is one more ``Level`` in ``LEVELS``.

How a unit is named in a path (``resolve``): a partidistrikt and a förening by their id, a
kommun by its four-digit SCB code, a district by its code (``Lkfv``): the same keys as the
units' own routes (``/partidistrikt/{id}``, ``/kommuner/{code}``, ``/foreningar/{id}``,
``/districts/{code}``); a turf by its code (``<district code>-<n>``).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, false
from sqlmodel import Session, col, select

from api.errors import NotFound
from api.models import District, Forening, Kommun, Partidistrikt, Role, Turf, UnitKind

__all__ = [
    "COUNTED_KIND",
    "FIELD_KINDS",
    "HOME_KIND",
    "LEVELS",
    "MEMBER_KIND",
    "Level",
    "ancestor_ids",
    "ancestor_select",
    "ancestors_of",
    "child_kind",
    "get_unit",
    "ids_under",
    "kind_of",
    "kind_of_work_column",
    "lead_kind",
    "level",
    "name_column",
    "names",
    "resolve",
    "unit_label",
    "units_under",
    "work_mapping",
]


@dataclass(frozen=True)
class Level:
    """One kind of unit and how it hangs off the others."""

    kind: UnitKind
    model: Any
    # (parent kind, column of this model holding the parent's id); the first is the parent
    # in the tree, the others are further memberships (a district's förening).
    parents: tuple[tuple[UnitKind, str], ...]
    key: str  # the column that names a unit in a path: "id" or "code"
    order: tuple[str, ...]  # how listings of this level are ordered
    # The column of contact_log and daily_grain that attributes field work to a unit of this
    # level; None when its work is the sum of the level below's (a partidistrikt's kommuner).
    work_column: str | None
    label: str  # Swedish, plural, for listings such as the nightly email


LEVELS: tuple[Level, ...] = (
    Level(UnitKind.partidistrikt, Partidistrikt, (), "id", ("code",), None, "Partidistrikten"),
    Level(
        UnitKind.kommun,
        Kommun,
        ((UnitKind.partidistrikt, "partidistrikt_id"),),
        "code",
        ("code",),
        "kommun_id",
        "Kommunerna",
    ),
    Level(
        UnitKind.forening,
        Forening,
        ((UnitKind.kommun, "kommun_id"),),
        "id",
        ("name", "id"),
        "forening_id",
        "Föreningarna",
    ),
    Level(
        UnitKind.district,
        District,
        ((UnitKind.kommun, "kommun_id"), (UnitKind.forening, "forening_id")),
        "code",
        ("code",),
        "district_id",
        "Distrikten",
    ),
    Level(
        UnitKind.turf,
        Turf,
        ((UnitKind.district, "district_id"),),
        "code",
        ("code",),
        "turf_id",
        "Områdena",
    ),
)

_BY_KIND = {lv.kind: lv for lv in LEVELS}
_BY_MODEL = {lv.model: lv for lv in LEVELS}

# Volunteers and förening leads belong to a förening (MEMBER_KIND); canvassing is organised
# across its kommun (HOME_KIND), so they read and log in the field units (FIELD_KINDS) of
# the whole kommun, while leading nothing there.
MEMBER_KIND = UnitKind.forening
HOME_KIND = UnitKind.kommun
FIELD_KINDS = frozenset({UnitKind.district, UnitKind.turf})
# The level whose voters and households counts weigh targets when they are apportioned.
COUNTED_KIND = UnitKind.district

# The level each role is given: what a user of that role leads (volunteers belong to it).
_ROLE_KIND = {
    Role.volunteer: UnitKind.forening,
    Role.forening_lead: UnitKind.forening,
    Role.kommun_lead: UnitKind.kommun,
    Role.district_admin: UnitKind.partidistrikt,
}


def level(kind: UnitKind | str) -> Level:
    """The level of a unit kind."""
    return _BY_KIND[UnitKind(kind)]


def kind_of(unit: object) -> UnitKind:
    """The kind of a unit row (or of a unit model)."""
    return _BY_MODEL[unit if isinstance(unit, type) else type(unit)].kind


def lead_kind(role: Role | str) -> UnitKind:
    """The kind of unit a user with ``role`` is attached to."""
    return _ROLE_KIND[Role(role)]


def kind_of_work_column(column: str) -> UnitKind:
    """The level whose field work ``column`` (of contact_log, daily_grain) records."""
    return next(lv.kind for lv in LEVELS if lv.work_column == column)


def unit_label(kind: UnitKind | str) -> str:
    """The Swedish plural label of a level, as listings show it."""
    return level(kind).label


def child_kind(kind: UnitKind | str) -> UnitKind | None:
    """The level directly below ``kind`` in the tree (its children in listings), if any."""
    kind = UnitKind(kind)
    for lv in LEVELS:
        if lv.parents and lv.parents[0][0] == kind:
            return lv.kind
    for lv in LEVELS:  # a level reached only through a further membership
        if any(p == kind for p, _ in lv.parents):
            return lv.kind
    return None


def _path(kind: UnitKind, at: UnitKind) -> list[tuple[Level, str]] | None:
    """The hops (level, parent column) from ``kind`` up to ``at``, shortest first."""
    lv = level(kind)
    for parent, column in lv.parents:
        if parent == at:
            return [(lv, column)]
    for parent, column in lv.parents:
        rest = _path(parent, at)
        if rest is not None:
            return [(lv, column), *rest]
    return None


def ancestor_select(kind: UnitKind, at: UnitKind) -> tuple[Select, Any, Any] | None:
    """SELECT (unit_id, ancestor_id) for every unit of ``kind`` and its ancestor at level
    ``at``, with the two underlying columns for WHERE clauses; None when ``at`` is not
    above ``kind``."""
    model = level(kind).model
    if kind == at:
        query = select(model.id.label("unit_id"), model.id.label("ancestor_id"))
        return query, model.id, model.id
    hops = _path(kind, at)
    if hops is None:
        return None
    joins = []
    current = getattr(model, hops[0][1])
    for lv, column in hops[1:]:
        joins.append((lv.model, lv.model.id == current))
        current = getattr(lv.model, column)
    query = select(model.id.label("unit_id"), current.label("ancestor_id"))
    for target, on in joins:
        query = query.join(target, on)
    return query, model.id, current


def ids_under(kind: UnitKind | str, at: UnitKind | str, ancestor_ids: Iterable[int]) -> Select:
    """SELECT the ids of every ``kind`` unit below (or equal to) the given units of ``at``."""
    kind, at = UnitKind(kind), UnitKind(at)
    ids = list(ancestor_ids)
    model = level(kind).model
    if kind == at:
        return select(model.id).where(col(model.id).in_(ids))
    found = ancestor_select(kind, at)
    if found is None:  # ``at`` is not above ``kind``: nothing of it lies below
        return select(model.id).where(false())
    query, unit, ancestor = found
    return select(model.id).where(
        col(model.id).in_(query.with_only_columns(unit).where(ancestor.in_(ids)))
    )


def ancestor_ids(
    session: Session, kind: UnitKind | str, ids: Iterable[int], at: UnitKind | str
) -> dict[int, int | None]:
    """For each unit of ``kind`` in ``ids``: the id of its ancestor at level ``at`` (one
    query; None where it has none, such as an unassigned district's förening)."""
    kind, at = UnitKind(kind), UnitKind(at)
    ids = set(ids)
    if not ids:
        return {}
    select_ = ancestor_select(kind, at)
    if select_ is None:
        return dict.fromkeys(ids)
    query, unit, _ = select_
    found = dict(session.execute(query.where(unit.in_(ids))).all())
    return {i: found.get(i) for i in ids}


def ancestors_of(session: Session, unit: object) -> dict[UnitKind, int | None]:
    """Every ancestor of one unit row (and the unit itself), by kind: the row holds its
    parents; each level further up costs one query (one, for a district)."""
    lv = _BY_MODEL[type(unit)]
    found: dict[UnitKind, int | None] = {lv.kind: unit.id}
    for parent, column in lv.parents:
        found[parent] = getattr(unit, column)
    missing = [k.kind for k in LEVELS if k.kind not in found and _path(lv.kind, k.kind)]
    if missing:
        # The parent in the tree leads to the rest.
        parent_kind, column = lv.parents[0]
        parent_id = getattr(unit, column)
        for k in missing:
            select_ = ancestor_select(parent_kind, k)
            if select_ is None or parent_id is None:
                found[k] = None
                continue
            query, unit, ancestor = select_
            found[k] = session.execute(
                query.with_only_columns(ancestor).where(unit == parent_id)
            ).scalar()
    return found


def get_unit(session: Session, kind: UnitKind | str, unit_id: int) -> Any:
    """One unit row by id, or None."""
    return session.get(level(kind).model, unit_id)


def resolve(session: Session, kind: UnitKind | str, ref: str | int) -> Any:
    """The unit a path names (see the module's docstring for the keys), or 404."""
    lv = level(kind)
    ref = str(ref).strip()
    found = None
    if lv.key == "id":
        if ref.isascii() and ref.isdigit() and len(ref) <= 18:
            found = session.get(lv.model, int(ref))
    else:
        found = session.exec(select(lv.model).where(getattr(lv.model, lv.key) == ref)).first()
    if found is None:
        what = "code" if lv.key == "code" else "id"
        raise NotFound(f"{lv.kind.value} with {what} {ref} not found")
    return found


def name_column(kind: UnitKind | str) -> Any:
    """The column that names a unit of ``kind`` in listings."""
    lv = level(kind)
    # A level without names (turfs) is named by its key.
    return getattr(lv.model, "name", None) or getattr(lv.model, lv.key)


def names(session: Session, kind: UnitKind | str, ids: Iterable[int]) -> dict[int, str]:
    """Display names of units by id, in one query."""
    ids = set(ids)
    if not ids:
        return {}
    model = level(kind).model
    rows = session.execute(select(model.id, name_column(kind)).where(col(model.id).in_(ids)))
    return dict(rows.all())


def units_under(
    session: Session,
    kind: UnitKind | str,
    at: UnitKind | str,
    ancestor_ids_: Iterable[int],
    *,
    where: Any = None,
    columns: list[Any] | None = None,
) -> list[Any]:
    """Every ``kind`` unit below the given units of level ``at``, in the level's order: rows
    of the model, or of just ``columns``, attributes of the model (no geometry to fetch,
    say)."""
    model = level(kind).model
    names = tuple(c.key for c in columns) if columns else None
    if columns and any(getattr(model, c.key, None) is not c for c in columns):
        raise ValueError(f"units_under: columns must be attributes of {model.__name__}")
    query = _under_select(UnitKind(kind), UnitKind(at), names)
    if query is None:  # ``at`` is not above ``kind``: nothing of it lies below
        return []
    if where is not None:
        query = query.where(where)
    found = session.execute(query, {"ancestor_ids": list(ancestor_ids_)})
    return list(found.all() if columns else found.scalars())


@cache
def _under_select(kind: UnitKind, at: UnitKind, columns: tuple[str, ...] | None) -> Any:
    """``units_under``'s SELECT, built once: a statement built anew on every request cost
    more to key for the compiled cache than to build."""
    lv = level(kind)
    found = ancestor_select(kind, at)
    if found is None:
        return None
    # Joined up to the ancestors, not "id IN (the ids under them)": a join the planner
    # plans once, where the nested subqueries cost it more than running the query.
    query, _, ancestor = found
    query = query.with_only_columns(
        *([getattr(lv.model, c) for c in columns] if columns else [lv.model])
    )
    query = query.where(col(ancestor).in_(bindparam("ancestor_ids", expanding=True)))
    return query.order_by(*(getattr(lv.model, c) for c in lv.order))


def work_mapping(kind: UnitKind | str) -> tuple[str, Select | None]:
    """How field work is attributed to units of ``kind``: the work column of contact_log and
    daily_grain, and (for a level with no column of its own) a SELECT (unit_id,
    ancestor_id) mapping that column's units up to ``kind``."""
    kind = UnitKind(kind)
    lv = level(kind)
    if lv.work_column is not None:
        return lv.work_column, None
    for below in LEVELS:
        if below.work_column is not None and _path(below.kind, kind) is not None:
            return below.work_column, ancestor_select(below.kind, kind)[0]
    raise ValueError(f"no level below {kind.value} records field work")
