"""Districts: import from files, GeoJSON views, and assignment to s-föreningar."""

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from sqlalchemy import case, func, insert, update
from sqlmodel import Session, col, select

from api.auth.scope import Forbidden, Scope
from api.districts.schemas import (
    BulkAssignResult,
    BulkAssignRow,
    CoverageRow,
    DistrictRead,
    ImportOptions,
    ImportSummary,
    KommunTouched,
    RepairedFeature,
)
from api.errors import AppError, NotFound, Unprocessable
from api.models import District, DistrictAssignment, Forening, ForeningKind, Kommun, utcnow
from api.pagination import PageParams, paginate
from api.validation import check_district_code, check_name, control_character
from geo import (
    DistrictFileError,
    DistrictFileTooLarge,
    DistrictReadTimeout,
    read_districts,
    read_districts_isolated,
)

__all__ = [
    "assign_bulk_csv",
    "assign_district",
    "assignment_history",
    "coverage",
    "feature_collection",
    "get_district",
    "import_district_file",
    "kommun_code_of",
    "list_districts",
    "to_read",
    "uncovered_districts",
]

_CHUNK = 500


def import_district_file(
    *,
    session: Session,
    scope: Scope,
    path: Path,
    options: ImportOptions,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
    isolate_seconds: float | None = None,
    max_unzipped_bytes: int | None = None,
) -> ImportSummary:
    """Import districts from a file in one transaction: all of it, or nothing.

    With ``isolate_seconds`` the file is read in a child process that is killed after that
    long (the API's way); without it, in this process (the command line's).
    """
    read_options = options.model_dump() | {"max_unzipped_bytes": max_unzipped_bytes}
    try:
        if isolate_seconds is None:
            table = read_districts(path, **read_options)
        else:
            table = read_districts_isolated(path, timeout=isolate_seconds, **read_options)
    except DistrictFileTooLarge as exc:
        raise AppError(f"{exc} (KNACKA_IMPORT_MAX_UNZIPPED_MB)", 413) from None
    except DistrictReadTimeout as exc:
        raise AppError(
            f"{exc} (KNACKA_IMPORT_TIMEOUT_SECONDS); split the file by kommun, or import it "
            "with the knacka import-districts command, which has no time limit",
            413,
        ) from None
    except DistrictFileError as exc:
        details = {"features": exc.features} if exc.features else None
        raise Unprocessable(str(exc), details=details) from None
    frame = table.frame
    _check_codes_and_names(frame["code"].tolist(), frame["name"].tolist())

    kommun_codes = sorted(frame["kommun_code"].unique())
    kommuner = {
        k.code: k for k in session.exec(select(Kommun).where(col(Kommun.code).in_(kommun_codes)))
    }
    unknown = [c for c in kommun_codes if c not in kommuner]
    if unknown:
        codes = frame.loc[frame["kommun_code"].isin(unknown), "code"].tolist()
        raise Unprocessable(
            f"kommun: no kommun with code {', '.join(unknown)}; create it first (POST /kommuner "
            "or knacka import-kommuner). Districts affected: "
            + ", ".join(codes[:20])
            + (f" and {len(codes) - 20} more" if len(codes) > 20 else ""),
            details={"features": codes, "kommuner": unknown},
        )

    outside = [c for c in kommun_codes if not scope.leads_kommun(kommuner[c].id)]
    if outside:
        raise Forbidden(
            f"kommun: the file has districts in {', '.join(outside)}, outside your unit"
        )

    codes = frame["code"].tolist()
    touched_ids = [kommuner[c].id for c in kommun_codes]
    columns = (
        District.id,
        District.code,
        District.name,
        District.kommun_id,
        District.geom_wkb,
        District.voters,
        District.households,
    )
    existing = {
        row.code: row
        for row in session.exec(select(*columns).where(col(District.kommun_id).in_(touched_ids)))
    }
    # A code may also exist under a kommun the file does not touch (a corrected kommun).
    elsewhere = [c for c in codes if c not in existing]
    for start in range(0, len(elsewhere), 1000):
        chunk = elsewhere[start : start + 1000]
        for row in session.exec(select(*columns).where(col(District.code).in_(chunk))):
            existing[row.code] = row
    moved_from = sorted({r.kommun_id for r in existing.values()} - set(touched_ids))
    if any(not scope.leads_kommun(k) for k in moved_from):
        raise Forbidden("code: the file moves districts out of a kommun outside your unit")

    geoms = frame.geometry.to_numpy()
    wkbs = shapely.to_wkb(geoms, output_dimension=2)
    bounds = shapely.bounds(geoms)
    now = utcnow()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    unchanged = 0
    names = frame["name"].tolist()
    kommun_of = frame["kommun_code"].tolist()
    voters = frame["voters"].tolist()
    households = frame["households"].tolist()
    areas = frame["area_m2"].tolist()
    total = len(codes)
    for i, code in enumerate(codes):
        values = {
            "name": names[i],
            "kommun_id": kommuner[kommun_of[i]].id,
            "geom_wkb": wkbs[i],
            "voters": voters[i],
            "households": households[i],
        }
        old = existing.get(code)
        if old is None:
            inserts.append(
                values
                | _box(bounds[i])
                | {
                    "code": code,
                    "area_m2": areas[i],
                    "created_at": now,
                    "updated_at": now,
                }
            )
        elif any(getattr(old, key) != value for key, value in values.items()):
            update_row = values | _box(bounds[i])
            update_row |= {"id": old.id, "area_m2": areas[i], "updated_at": now}
            if old.kommun_id != values["kommun_id"]:
                update_row["forening_id"] = None  # a förening holds districts of its own kommun
            updates.append(update_row)
        else:
            unchanged += 1
        if progress and (i + 1) % _CHUNK == 0:
            progress(i + 1, total)

    if not dry_run:
        for start in range(0, len(inserts), _CHUNK):
            session.execute(insert(District), inserts[start : start + _CHUNK])
        for start in range(0, len(updates), _CHUNK):
            session.execute(update(District), updates[start : start + _CHUNK])
        session.flush()
    if progress:
        progress(total, total)

    in_file = set(codes)
    missing = sorted(
        code
        for code, row in existing.items()
        if code not in in_file and row.kommun_id in touched_ids
    )
    per_kommun = frame["kommun_code"].value_counts()
    updated_ids = {u["id"] for u in updates}
    return ImportSummary(
        dry_run=dry_run,
        source_crs=table.source_crs,
        features=total,
        created=len(inserts),
        updated=len(updates),
        unchanged=unchanged,
        missing_from_file=missing,
        kommuner=[
            KommunTouched(code=c, name=kommuner[c].name, districts_in_file=int(per_kommun[c]))
            for c in kommun_codes
        ],
        created_codes=[row["code"] for row in inserts],
        updated_codes=[code for code, row in existing.items() if row.id in updated_ids],
        repaired=[RepairedFeature(**r) for r in table.repaired],
        warnings=table.warnings,
    )


def _check_codes_and_names(codes: list[str], names: list[str]) -> None:
    """Refuse the file if any feature's code or name fails the API's own checks."""
    problems: list[dict[str, Any]] = []
    for number, (code, name) in enumerate(zip(codes, names, strict=True), start=1):
        for field, check, value in (
            ("code", check_district_code, code),
            ("name", check_name, name),
        ):
            try:
                check(value)
            except ValueError as exc:
                problems.append(
                    {"feature": number, "field": field, "value": value, "message": str(exc)}
                )
    if problems:
        first = problems[0]
        raise Unprocessable(
            f"{first['field']}: feature {first['feature']} ({first['value']!r}) "
            f"{first['message']}"
            + (f"; {len(problems) - 1} more problems listed" if len(problems) > 1 else "")
            + "; nothing was written",
            details={
                "features": sorted({str(p["feature"]) for p in problems}, key=int),
                "problems": problems[:100],
            },
        )


def _box(b: np.ndarray) -> dict[str, float]:
    return {
        "min_lon": float(b[0]),
        "min_lat": float(b[1]),
        "max_lon": float(b[2]),
        "max_lat": float(b[3]),
    }


def get_district(*, session: Session, scope: Scope, code: str) -> District:
    """Return one district, by code, that the caller may see."""
    found = session.exec(select(District).where(District.code == code)).first()
    if found is None:
        raise NotFound(f"district {code} not found")
    scope.require(scope.sees_district(found), f"district {code}")
    return found


def kommun_code_of(*, session: Session, district: District) -> str:
    """The code of the district's kommun."""
    return session.get(Kommun, district.kommun_id).code


def _filtered(
    scope: Scope,
    kommun_code: str | None,
    forening_id: int | None,
    assigned: bool | None,
    q: str | None,
):
    query = (
        select(District, Kommun.code)
        .join(Kommun, Kommun.id == District.kommun_id)
        .where(scope.kommun_filter(District.kommun_id))
    )
    if kommun_code is not None:
        query = query.where(Kommun.code == kommun_code)
    if forening_id is not None:
        query = query.where(District.forening_id == forening_id)
    if assigned is not None:
        query = query.where(
            col(District.forening_id).is_not(None)
            if assigned
            else col(District.forening_id).is_(None)
        )
    if q:
        query = query.where(col(District.name).ilike(f"%{q}%") | col(District.code).startswith(q))
    return query.order_by(District.code)


def to_read(district: District, kommun_code: str) -> DistrictRead:
    """The API view of a district, without its geometry."""
    return DistrictRead(
        id=district.id,
        code=district.code,
        name=district.name,
        kommun_code=kommun_code,
        forening_id=district.forening_id,
        area_m2=district.area_m2,
        voters=district.voters,
        households=district.households,
        bbox=(district.min_lon, district.min_lat, district.max_lon, district.max_lat),
        updated_at=district.updated_at,
    )


def list_districts(
    *,
    session: Session,
    scope: Scope,
    page: PageParams,
    kommun_code: str | None = None,
    forening_id: int | None = None,
    assigned: bool | None = None,
    q: str | None = None,
) -> tuple[list[DistrictRead], int]:
    """List districts (without geometry), filtered by kommun, förening or assignment."""
    query = _filtered(scope, kommun_code, forening_id, assigned, q)
    rows, total = paginate(session, query, page)
    return [to_read(d, k) for d, k in rows], total


def _feature(district: District, kommun_code: str) -> dict[str, Any]:
    geometry = shapely.geometry.mapping(shapely.from_wkb(district.geom_wkb))
    return {
        "type": "Feature",
        "id": district.code,
        "geometry": geometry,
        "properties": to_read(district, kommun_code).model_dump(mode="json", exclude={"bbox"}),
    }


def feature_collection(
    *,
    session: Session,
    scope: Scope,
    kommun_code: str | None = None,
    forening_id: int | None = None,
    assigned: bool | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """Districts as a GeoJSON FeatureCollection in WGS84."""
    query = _filtered(scope, kommun_code, forening_id, assigned, None)
    if code is not None:
        query = query.where(District.code == code)
    features = [_feature(d, k) for d, k in session.exec(query)]
    return {"type": "FeatureCollection", "features": features}


def uncovered_districts(*, session: Session, scope: Scope, kommun_code: str) -> dict[str, Any]:
    """A kommun's districts that no förening covers, as GeoJSON with counts."""
    kommun = session.exec(select(Kommun).where(Kommun.code == kommun_code)).first()
    if kommun is None:
        raise NotFound(f"kommun {kommun_code} not found")
    scope.require(scope.leads_kommun(kommun.id), f"kommun {kommun_code}")
    collection = feature_collection(
        session=session, scope=scope, kommun_code=kommun_code, assigned=False
    )
    total = session.exec(
        select(func.count()).select_from(District).where(District.kommun_id == kommun.id)
    ).one()
    props = [f["properties"] for f in collection["features"]]
    collection["summary"] = {
        "kommun_code": kommun.code,
        "kommun_name": kommun.name,
        "districts": total,
        "uncovered": len(props),
        "uncovered_voters": sum(p["voters"] or 0 for p in props),
        "uncovered_households": sum(p["households"] or 0 for p in props),
        "uncovered_area_km2": round(sum(p["area_m2"] for p in props) / 1e6, 3),
    }
    return collection


def coverage(
    *, session: Session, scope: Scope, partidistrikt_id: int | None = None
) -> list[CoverageRow]:
    """Per kommun the caller sees: its districts and how many a förening covers."""
    assigned = func.sum(case((col(District.forening_id).is_not(None), 1), else_=0))
    query = (
        select(Kommun.code, Kommun.name, func.count(col(District.id)), assigned)
        .join(District, District.kommun_id == Kommun.id, isouter=True)
        .where(scope.kommun_filter(Kommun.id))
        .group_by(Kommun.code, Kommun.name)
        .order_by(Kommun.code)
    )
    if partidistrikt_id is not None:
        query = query.where(Kommun.partidistrikt_id == partidistrikt_id)
    return [
        CoverageRow(
            kommun_code=code, kommun_name=name, districts=n, assigned=a or 0, uncovered=n - (a or 0)
        )
        for code, name, n, a in session.exec(query)
    ]


def _check_forening(district: District, forening: Forening) -> str | None:
    if forening.kind == ForeningKind.workplace:
        return (
            f"förening {forening.id} ({forening.name}) is a workplace club and holds no districts"
        )
    if forening.kommun_id != district.kommun_id:
        return (
            f"förening {forening.id} ({forening.name}) belongs to another kommun than "
            f"district {district.code}"
        )
    return None


def _apply(
    session: Session, district: District, forening_id: int | None, via: str, user_id: int | None
) -> bool:
    if district.forening_id == forening_id:
        return False
    session.add(
        DistrictAssignment(
            district_id=district.id,
            from_forening_id=district.forening_id,
            to_forening_id=forening_id,
            changed_by_user_id=user_id,
            via=via,
        )
    )
    district.forening_id = forening_id
    district.updated_at = utcnow()
    session.add(district)
    return True


def assign_district(
    *,
    session: Session,
    scope: Scope,
    code: str,
    forening_id: int | None,
    via: str = "api",
) -> District:
    """Assign a district to a geographic förening of its kommun, or unassign it (None)."""
    district = get_district(session=session, scope=scope, code=code)
    scope.require(scope.leads_kommun(district.kommun_id), f"assigning district {code}")
    if forening_id is not None:
        forening = session.get(Forening, forening_id)
        if forening is None:
            raise Unprocessable(f"forening_id: förening {forening_id} does not exist")
        problem = _check_forening(district, forening)
        if problem:
            raise Unprocessable(f"forening_id: {problem}")
    _apply(session, district, forening_id, via, scope.user.id if scope.user else None)
    session.flush()
    return district


def assign_bulk_csv(
    *, session: Session, scope: Scope, text: str, via: str = "csv"
) -> BulkAssignResult:
    """Apply a CSV of ``district_code,forening`` rows: all of them, or none if any is bad."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    fields = [f.strip() for f in reader.fieldnames or []]
    reader.fieldnames = fields
    if "district_code" not in fields or "forening" not in fields:
        raise Unprocessable(
            "columns: the CSV needs a header with district_code and forening; found "
            + (", ".join(fields) or "no header")
        )
    rows = [
        (line, (r.get("district_code") or "").strip(), (r.get("forening") or "").strip())
        for line, r in enumerate(reader, start=2)
    ]
    if not rows:
        raise Unprocessable("file: the CSV has no rows")
    malformed: dict[int, tuple[str, str, str]] = {}
    for line, code, ref in rows:
        bad = control_character(ref)
        if bad:
            malformed[line] = ("forening", ref, f"holds a control character {bad}")
        try:
            check_district_code(code)
        except ValueError as exc:
            malformed[line] = ("district_code", code, str(exc))
    codes = {code for line, code, _ in rows if line not in malformed}
    districts = {
        d.code: d for d in session.exec(select(District).where(col(District.code).in_(codes)))
    }
    outside = sorted(c for c, d in districts.items() if not scope.leads_kommun(d.kommun_id))
    if outside:
        raise Forbidden(f"district_code: {', '.join(outside[:20])} are outside your unit")
    kommun_ids = {d.kommun_id for d in districts.values()}
    foreningar = list(session.exec(select(Forening).where(col(Forening.kommun_id).in_(kommun_ids))))
    by_id = {f.id: f for f in foreningar}
    by_name = {(f.kommun_id, f.name.casefold()): f for f in foreningar}

    errors: list[dict[str, Any]] = []
    plan: list[tuple[int, District, int | None]] = []
    seen: dict[str, int] = {}

    def fail(line: int, field: str, value: str, message: str) -> None:
        errors.append({"line": line, "field": field, "value": value, "message": message})

    for line, code, ref in rows:
        if line in malformed:
            fail(line, *malformed[line])
            continue
        if code in seen:
            fail(line, "district_code", code, f"appears again (first on line {seen[code]})")
            continue
        seen[code] = line
        district = districts.get(code)
        if district is None:
            fail(line, "district_code", code, f"no district with code {code}")
            continue
        if not ref:
            plan.append((line, district, None))
            continue
        forening = by_id.get(int(ref)) if ref.isascii() and ref.isdigit() else None
        forening = forening or by_name.get((district.kommun_id, ref.casefold()))
        if forening is None:
            fail(line, "forening", ref, f"no förening {ref!r} in the kommun of district {code}")
            continue
        problem = _check_forening(district, forening)
        if problem:
            fail(line, "forening", ref, problem)
            continue
        plan.append((line, district, forening.id))
    if errors:
        raise Unprocessable(
            f"{len(errors)} of {len(rows)} rows are invalid; nothing was assigned", details=errors
        )

    results = []
    changed = 0
    for line, district, forening_id in plan:
        did = _apply(session, district, forening_id, via, scope.user.id if scope.user else None)
        changed += did
        status = "unchanged" if not did else ("assigned" if forening_id else "unassigned")
        results.append(
            BulkAssignRow(
                line=line, district_code=district.code, forening_id=forening_id, status=status
            )
        )
    session.flush()
    return BulkAssignResult(
        rows=len(rows), changed=changed, unchanged=len(rows) - changed, results=results
    )


def assignment_history(*, session: Session, scope: Scope, code: str) -> list[DistrictAssignment]:
    """A district's assignment changes, oldest first."""
    district = get_district(session=session, scope=scope, code=code)
    return list(
        session.exec(
            select(DistrictAssignment)
            .where(DistrictAssignment.district_id == district.id)
            .order_by(DistrictAssignment.changed_at, DistrictAssignment.id)
        )
    )
