"""Partidistrikt, kommuner (arbetarekommuner) and s-föreningar."""

import csv
import io

from sqlalchemy import func
from sqlmodel import Session, col, select

from api.auth.scope import Forbidden, Scope
from api.db import save_unique
from api.errors import Conflict, NotFound, Unprocessable
from api.models import District, Forening, ForeningKind, Kommun, Partidistrikt, UnitKind
from api.org import tree
from api.org.kommunlist import check_kommun_rows
from api.org.schemas import (
    ForeningCreate,
    ForeningUpdate,
    KommunCreate,
    KommunUpdate,
    PartidistriktCreate,
    PartidistriktUpdate,
)
from api.pagination import PageParams, paginate

__all__ = [
    "partidistrikt_of",
    "unit_name",
    "create_forening",
    "create_kommun",
    "create_partidistrikt",
    "district_counts",
    "get_forening",
    "get_kommun",
    "get_partidistrikt",
    "import_kommuner_csv",
    "list_foreningar",
    "list_kommuner",
    "list_partidistrikt",
    "update_forening",
    "update_kommun",
    "update_partidistrikt",
]


def unit_name(session: Session, kind: UnitKind, unit_id: int) -> str:
    """A unit's display name, or raise when it does not exist."""
    found = tree.names(session, kind, [unit_id])
    if unit_id not in found:
        raise Unprocessable(f"unit_id: {UnitKind(kind).value} {unit_id} does not exist")
    return found[unit_id]


def partidistrikt_of(session: Session, kind: UnitKind, unit_id: int) -> int | None:
    """The partidistrikt a unit belongs to."""
    return tree.ancestor_ids(session, kind, [unit_id], tree.LEVELS[0].kind)[unit_id]


def get_partidistrikt(*, session: Session, scope: Scope, partidistrikt_id: int) -> Partidistrikt:
    """Return one partidistrikt within the caller's reach."""
    found = session.get(Partidistrikt, partidistrikt_id)
    if found is None:
        raise NotFound(f"partidistrikt {partidistrikt_id} not found")
    scope.require(scope.sees_partidistrikt(found.id), f"partidistrikt {partidistrikt_id}")
    return found


def list_partidistrikt(
    *, session: Session, scope: Scope, page: PageParams, q: str | None = None
) -> tuple[list[Partidistrikt], int]:
    """List the partidistrikt the caller sees, optionally by a name fragment."""
    query = select(Partidistrikt).order_by(Partidistrikt.code)
    if not scope.unrestricted:
        query = query.where(col(Partidistrikt.id).in_(scope.partidistrikt_ids))
    if q:
        query = query.where(col(Partidistrikt.name).ilike(f"%{q}%"))
    return paginate(session, query, page)


def create_partidistrikt(
    *, session: Session, scope: Scope, data: PartidistriktCreate
) -> Partidistrikt:
    """Create a partidistrikt with a unique two-digit län code (operators only)."""
    if not scope.unrestricted:
        raise Forbidden(
            "partidistrikt are created by an operator (knacka import-kommuner), not over the API"
        )
    if session.exec(select(Partidistrikt).where(Partidistrikt.code == data.code)).first():
        raise Conflict(f"code: a partidistrikt with code {data.code} already exists")
    obj = Partidistrikt(code=data.code, name=data.name)
    save_unique(session, obj, f"code: a partidistrikt with code {data.code} already exists")
    return obj


def update_partidistrikt(
    *, session: Session, scope: Scope, partidistrikt_id: int, data: PartidistriktUpdate
) -> Partidistrikt:
    """Rename a partidistrikt."""
    obj = get_partidistrikt(session=session, scope=scope, partidistrikt_id=partidistrikt_id)
    if data.name is not None:
        obj.name = data.name
    session.add(obj)
    return obj


def get_kommun(*, session: Session, scope: Scope, code: str) -> Kommun:
    """Return one kommun, by its four-digit code, that the caller leads."""
    found = session.exec(select(Kommun).where(Kommun.code == code)).first()
    if found is None:
        raise NotFound(f"kommun {code} not found")
    scope.require(scope.leads_kommun(found.id), f"kommun {code}")
    return found


def list_kommuner(
    *,
    session: Session,
    scope: Scope,
    page: PageParams,
    partidistrikt_id: int | None = None,
    q: str | None = None,
) -> tuple[list[Kommun], int]:
    """List the kommuner the caller leads, filtered by partidistrikt or name fragment."""
    query = select(Kommun).order_by(Kommun.code)
    if not scope.unrestricted:
        query = query.where(col(Kommun.id).in_(scope.led_kommun_ids))
    if partidistrikt_id is not None:
        query = query.where(Kommun.partidistrikt_id == partidistrikt_id)
    if q:
        query = query.where(col(Kommun.name).ilike(f"%{q}%"))
    return paginate(session, query, page)


def create_kommun(*, session: Session, scope: Scope, data: KommunCreate) -> Kommun:
    """Create a kommun under an existing partidistrikt the caller administers."""
    _require_partidistrikt(session, data.partidistrikt_id)
    scope.require(
        scope.sees_partidistrikt(data.partidistrikt_id), f"partidistrikt {data.partidistrikt_id}"
    )
    if session.exec(select(Kommun).where(Kommun.code == data.code)).first():
        raise Conflict(f"code: kommun {data.code} already exists")
    obj = Kommun(code=data.code, name=data.name, partidistrikt_id=data.partidistrikt_id)
    save_unique(session, obj, f"code: kommun {data.code} already exists")
    return obj


def update_kommun(*, session: Session, scope: Scope, code: str, data: KommunUpdate) -> Kommun:
    """Rename a kommun or move it to another partidistrikt (district admins)."""
    obj = get_kommun(session=session, scope=scope, code=code)
    scope.require(scope.sees_partidistrikt(obj.partidistrikt_id), f"changing kommun {code}")
    if data.partidistrikt_id is not None:
        _require_partidistrikt(session, data.partidistrikt_id)
        scope.require(
            scope.sees_partidistrikt(data.partidistrikt_id),
            f"partidistrikt {data.partidistrikt_id}",
        )
        obj.partidistrikt_id = data.partidistrikt_id
    if data.name is not None:
        obj.name = data.name
    session.add(obj)
    return obj


def _require_partidistrikt(session: Session, partidistrikt_id: int) -> None:
    if session.get(Partidistrikt, partidistrikt_id) is None:
        raise Unprocessable(f"partidistrikt_id: partidistrikt {partidistrikt_id} does not exist")


def get_forening(*, session: Session, scope: Scope, forening_id: int) -> Forening:
    """Return one s-förening the caller sees."""
    found = session.get(Forening, forening_id)
    if found is None:
        raise NotFound(f"förening {forening_id} not found")
    scope.require(scope.sees(found), f"förening {forening_id}")
    return found


def district_counts(*, session: Session, forening_ids: list[int]) -> dict[int, int]:
    """Number of districts assigned to each of the given föreningar."""
    if not forening_ids:
        return {}
    rows = session.exec(
        select(District.forening_id, func.count())
        .where(col(District.forening_id).in_(forening_ids))
        .group_by(District.forening_id)
    ).all()
    return {fid: n for fid, n in rows}


def list_foreningar(
    *,
    session: Session,
    scope: Scope,
    page: PageParams,
    kommun_id: int | None = None,
    kind: ForeningKind | None = None,
    q: str | None = None,
) -> tuple[list[Forening], int]:
    """List the s-föreningar the caller sees, filtered by kommun, kind or name fragment."""
    query = (
        select(Forening).where(scope.forening_filter()).order_by(Forening.kommun_id, Forening.name)
    )
    if kommun_id is not None:
        query = query.where(Forening.kommun_id == kommun_id)
    if kind is not None:
        query = query.where(Forening.kind == kind)
    if q:
        query = query.where(col(Forening.name).ilike(f"%{q}%"))
    return paginate(session, query, page)


def create_forening(*, session: Session, scope: Scope, data: ForeningCreate) -> Forening:
    """Create an s-förening in a kommun the caller leads; names are unique per kommun."""
    if session.get(Kommun, data.kommun_id) is None:
        raise Unprocessable(f"kommun_id: kommun {data.kommun_id} does not exist")
    scope.require(scope.leads_kommun(data.kommun_id), f"kommun {data.kommun_id}")
    conflict = f"name: kommun {data.kommun_id} already has a förening named {data.name!r}"
    exists = select(Forening).where(
        Forening.kommun_id == data.kommun_id, Forening.name == data.name
    )
    if session.exec(exists).first():
        raise Conflict(conflict)
    obj = Forening(name=data.name, kind=data.kind, kommun_id=data.kommun_id)
    save_unique(session, obj, conflict)
    return obj


def update_forening(
    *, session: Session, scope: Scope, forening_id: int, data: ForeningUpdate
) -> Forening:
    """Rename an s-förening or change its kind (kommun leads and district admins)."""
    obj = get_forening(session=session, scope=scope, forening_id=forening_id)
    scope.require(scope.leads_kommun(obj.kommun_id), f"changing förening {forening_id}")
    if data.kind == ForeningKind.workplace and obj.kind != ForeningKind.workplace:
        held = district_counts(session=session, forening_ids=[forening_id]).get(forening_id, 0)
        if held:
            raise Conflict(
                f"kind: förening {forening_id} holds {held} districts; a workplace club holds "
                "none, so unassign them first"
            )
    if data.name is not None and data.name != obj.name:
        clash = select(Forening).where(
            Forening.kommun_id == obj.kommun_id, Forening.name == data.name
        )
        if session.exec(clash).first():
            raise Conflict(f"name: this kommun already has a förening named {data.name!r}")
        obj.name = data.name
    if data.kind is not None:
        obj.kind = data.kind
    save_unique(session, obj, "name: this kommun already has a förening with that name")
    return obj


def import_kommuner_csv(
    *,
    session: Session,
    text: str,
    code_column: str = "municipality_code",
    name_column: str = "municipality_name_short",
    lan_code_column: str = "county_code",
    lan_name_column: str = "county_name",
) -> dict[str, int]:
    """Create or rename partidistrikt and kommuner from an SCB code list (CSV)."""
    reader = csv.DictReader(io.StringIO(text))
    needed = [code_column, name_column, lan_code_column, lan_name_column]
    missing = [c for c in needed if c not in (reader.fieldnames or [])]
    if missing:
        raise Unprocessable(
            f"columns: {', '.join(missing)} not in the CSV; its columns are "
            f"{', '.join(reader.fieldnames or []) or 'none'}"
        )
    rows = [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    errors = check_kommun_rows(
        rows, code=code_column, name=name_column, lan_code=lan_code_column, lan_name=lan_name_column
    )
    if errors:
        raise Unprocessable("kommun CSV has invalid rows; nothing was written", details=errors)

    districts = {p.code: p for p in session.exec(select(Partidistrikt)).all()}
    kommuner = {k.code: k for k in session.exec(select(Kommun)).all()}
    counts = {"partidistrikt_created": 0, "kommuner_created": 0, "kommuner_updated": 0}
    for row in rows:
        lan = row[lan_code_column].zfill(2)
        if lan not in districts:
            districts[lan] = Partidistrikt(code=lan, name=row[lan_name_column])
            session.add(districts[lan])
            session.flush()
            counts["partidistrikt_created"] += 1
        code, name = row[code_column], row[name_column]
        existing = kommuner.get(code)
        if existing is None:
            kommuner[code] = Kommun(code=code, name=name, partidistrikt_id=districts[lan].id)
            session.add(kommuner[code])
            counts["kommuner_created"] += 1
        elif existing.name != name or existing.partidistrikt_id != districts[lan].id:
            existing.name, existing.partidistrikt_id = name, districts[lan].id
            session.add(existing)
            counts["kommuner_updated"] += 1
    session.flush()
    return counts
