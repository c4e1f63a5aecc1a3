"""Cutting districts into turfs: which districts, the cut itself (geo.turfs), and what is
written. Re-cutting keeps the turfs in use (with visits, or a live lease) and retires the
rest; a retired turf is never deleted, because visits name it."""

import secrets
from collections import defaultdict
from datetime import datetime

import numpy as np
import shapely
from pyproj import Transformer
from sqlalchemy import insert
from sqlmodel import Session, col, select

from api.auth.scope import Forbidden, Scope
from api.errors import Unprocessable
from api.models import (
    Address,
    District,
    Forening,
    Kommun,
    Turf,
    TurfAddress,
    TurfLease,
    Visit,
)
from api.org import tree
from api.turfs.cutting_schemas import CutRequest, CutSummary, DistrictCutSummary
from geo.turfs import CUT_CRS, cut_district, polygonal_part

__all__ = ["cut_request", "cut_turfs", "districts_to_cut", "new_link_code"]

LINK_CODE_LENGTH = 10
_TO_METRES = Transformer.from_crs("EPSG:4326", CUT_CRS, always_xy=True)
_TO_DEGREES = Transformer.from_crs(CUT_CRS, "EPSG:4326", always_xy=True)
_CHUNK = 2000


def _project(geom, transformer: Transformer):
    return shapely.transform(
        geom, lambda c: np.column_stack(transformer.transform(c[:, 0], c[:, 1]))
    )


def new_link_code() -> str:
    """A random URL-safe code of LINK_CODE_LENGTH characters (60 bits) for a turf's link."""
    return secrets.token_urlsafe(8)[:LINK_CODE_LENGTH]


def districts_to_cut(*, session: Session, scope: Scope, request: CutRequest) -> list[int]:
    """The ids of the districts the request names, if the caller leads every one of them."""
    if request.district is not None:
        code = request.district.strip()
        district = session.exec(select(District).where(District.code == code)).first()
        if district is None or not scope.sees(district):
            if scope.unrestricted:
                raise Unprocessable(f"district: district {code} does not exist")
            raise Forbidden(f"district: {code} does not exist or is outside your unit")
        scope.require(scope.leads(district), f"district: cutting {code}")
        return [district.id]
    if request.forening_id is not None:
        forening = scope.require_unit(
            tree.kind_of(Forening),
            request.forening_id,
            "forening_id: cutting its districts",
            lead=True,
            field="forening_id",
        )
        where = col(District.forening_id) == forening.id
    else:
        code = (request.kommun or "").strip()
        kommun = session.exec(select(Kommun).where(Kommun.code == code)).first()
        if kommun is None or not scope.sees(kommun):
            if scope.unrestricted:
                raise Unprocessable(f"kommun: kommun {code} does not exist")
            raise Forbidden(f"kommun: {code} does not exist or is outside your unit")
        scope.require(scope.leads(kommun), f"kommun: cutting the districts of {code}")
        where = col(District.kommun_id) == kommun.id
    ids = session.exec(select(District.id).where(where).order_by(District.code)).all()
    return list(ids)


def _kept_turfs(session: Session, district_ids: list[int], now: datetime) -> tuple[set, list]:
    """(ids of live turfs to keep, live turfs to retire) of the districts."""
    live = session.exec(
        select(Turf).where(col(Turf.district_id).in_(district_ids), col(Turf.retired_at).is_(None))
    ).all()
    ids = [t.id for t in live]
    if not ids:
        return set(), []
    visited = set(
        session.exec(select(Visit.turf_id).where(col(Visit.turf_id).in_(ids)).distinct()).all()
    )
    leased = set(
        session.exec(
            select(TurfLease.turf_id).where(
                col(TurfLease.turf_id).in_(ids),
                col(TurfLease.released_at).is_(None),
                col(TurfLease.expires_at) > now,
            )
        ).all()
    )
    keep = visited | leased
    return keep, [t for t in live if t.id not in keep]


def _next_numbers(session: Session, districts: list[District]) -> dict[int, int]:
    """Per district, the number after the highest of its turfs' codes (retired ones too)."""
    highest: dict[int, int] = {d.id: 0 for d in districts}
    rows = session.exec(
        select(Turf.district_id, Turf.code).where(
            col(Turf.district_id).in_([d.id for d in districts])
        )
    ).all()
    for district_id, code in rows:
        tail = code.rsplit("-", 1)[-1]
        if tail.isdigit():
            highest[district_id] = max(highest[district_id], int(tail))
    return {k: v + 1 for k, v in highest.items()}


def cut_turfs(
    *,
    session: Session,
    scope: Scope,
    district_ids: list[int],
    households: int,
    now: datetime,
) -> CutSummary:
    """Cut each district into turfs of about ``households``, keeping the turfs in use."""
    if households < 1:
        raise Unprocessable("households: must be at least 1")
    # Locked (PostgreSQL) so that two cuts of one district run one after the other rather
    # than both numbering new turfs from the same highest code.
    districts = session.exec(
        select(District)
        .where(col(District.id).in_(district_ids))
        .order_by(District.code)
        .with_for_update()
    ).all()
    if len(districts) != len(set(district_ids)):
        raise Unprocessable("district_ids: some districts do not exist")
    for d in districts:
        scope.require(scope.leads(d), f"district: cutting {d.code}")
    ids = [d.id for d in districts]
    keep, retire = (set(), []) if not ids else _kept_turfs(session, ids, now)
    kept_per: dict[int, int] = defaultdict(int)
    retired_per: dict[int, int] = defaultdict(int)
    for turf in retire:
        turf.retired_at = now
        session.add(turf)
        retired_per[turf.district_id] += 1
    kept_addresses: set[int] = set()
    if keep:
        kept_addresses = set(
            session.exec(
                select(TurfAddress.address_id).where(col(TurfAddress.turf_id).in_(keep))
            ).all()
        )
        for district_id in session.exec(select(Turf.district_id).where(col(Turf.id).in_(keep))):
            kept_per[district_id] += 1
    rows = session.exec(
        select(
            Address.id,
            Address.district_id,
            Address.street,
            Address.number,
            Address.lon,
            Address.lat,
            Address.households,
        )
        .where(col(Address.district_id).in_(ids), col(Address.missing_since).is_(None))
        .order_by(Address.district_id, Address.id)
    ).all()
    by_district: dict[int, list] = defaultdict(list)
    for row in rows:
        by_district[row[1]].append(row)
    numbers = _next_numbers(session, districts) if ids else {}
    summaries = []
    links = []
    for district in districts:
        summary, new_links = _cut_one(
            session,
            district,
            by_district.get(district.id, []),
            kept_addresses,
            households,
            numbers[district.id],
            now,
        )
        summary.kept = kept_per[district.id]
        summary.retired = retired_per[district.id]
        summaries.append(summary)
        links.extend(new_links)
    for start in range(0, len(links), _CHUNK):
        session.execute(insert(TurfAddress), links[start : start + _CHUNK])
    session.flush()
    maxima = [s.max_over_target for s in summaries if s.max_over_target is not None]
    return CutSummary(
        target=households,
        created=sum(s.created for s in summaries),
        kept=sum(s.kept for s in summaries),
        retired=sum(s.retired for s in summaries),
        max_over_target=max(maxima) if maxima else None,
        walk_length_m=round(sum(s.walk_length_m for s in summaries), 1),
        districts=summaries,
    )


def _cut_one(session, district, rows, kept_addresses, target, first_number, now):
    """Cut one district and add its new turfs; their address links are returned to be
    written together."""
    summary = DistrictCutSummary(
        district=district.code,
        addresses=len(rows),
        households=sum(r[6] for r in rows),
        created=0,
        kept=0,
        retired=0,
        max_households=None,
        max_over_target=None,
        walk_length_m=0.0,
        max_walk_length_m=None,
        turfs=[],
    )
    fixed = np.array([r[0] in kept_addresses for r in rows], dtype=bool)
    if not rows or fixed.all():
        return summary, []
    lon = np.array([r[4] for r in rows], dtype=np.float64)
    lat = np.array([r[5] for r in rows], dtype=np.float64)
    xy = np.column_stack(_TO_METRES.transform(lon, lat))
    outline = shapely.from_wkb(district.geom_wkb)
    polygon = _project(outline, _TO_METRES)
    streets = [r[2] for r in rows]
    house_numbers = [r[3] or "" for r in rows]
    buildings = [
        f"{s.strip().casefold()}|{n.strip().casefold()}"
        for s, n in zip(streets, house_numbers, strict=True)
    ]
    cut = cut_district(
        xy,
        np.array([r[6] for r in rows], dtype=np.int64),
        district=polygon,
        crs=CUT_CRS,
        target=target,
        buildings=buildings,
        streets=streets,
        numbers=house_numbers,
        fixed=fixed,
    )
    turfs = []
    for n, part in enumerate(cut.turfs, start=first_number):
        # Clipped again in degrees: the round trip through metres must not leave a sliver
        # over the district's stored border.
        shape = shapely.normalize(
            polygonal_part(shapely.intersection(_project(part.polygon, _TO_DEGREES), outline))
        )
        if shape.is_empty:
            # No area of its own (its places are shared with another turf): the box of its
            # addresses still puts it on the map.
            minx, maxx = lon[part.addresses].min(), lon[part.addresses].max()
            miny, maxy = lat[part.addresses].min(), lat[part.addresses].max()
        else:
            minx, miny, maxx, maxy = shape.bounds
        turfs.append(
            {
                "code": f"{district.code}-{n}",
                "district_id": district.id,
                "kommun_id": district.kommun_id,
                "households": part.households,
                "address_count": len(part.addresses),
                "walk_length_m": round(part.walk_length_m, 1),
                "geom_wkb": shapely.to_wkb(shape),
                "min_lon": float(minx),
                "min_lat": float(miny),
                "max_lon": float(maxx),
                "max_lat": float(maxy),
                "link_code": new_link_code(),
                "created_at": now,
                "retired_at": None,
            }
        )
    # One statement for the district's turfs, their ids back in the order given.
    ids = (
        session.execute(insert(Turf).returning(Turf.id, sort_by_parameter_order=True), turfs)
        .scalars()
        .all()
    )
    links = [
        {"turf_id": turf_id, "address_id": rows[i][0], "position": pos}
        for turf_id, part in zip(ids, cut.turfs, strict=True)
        for pos, i in enumerate(part.addresses, start=1)
    ]
    sizes = [p.households for p in cut.turfs]
    walks = [t["walk_length_m"] for t in turfs]
    summary.created = len(turfs)
    summary.max_households = max(sizes)
    summary.max_over_target = round(max(sizes) / target, 3)
    summary.walk_length_m = round(sum(walks), 1)
    summary.max_walk_length_m = max(walks)
    summary.turfs = [t["code"] for t in turfs]
    return summary, links


def cut_request(
    *, session: Session, scope: Scope, request: CutRequest, default_households: int, now: datetime
) -> CutSummary:
    """Resolve the request's districts, check the caller leads them, and cut them."""
    district_ids = districts_to_cut(session=session, scope=scope, request=request)
    return cut_turfs(
        session=session,
        scope=scope,
        district_ids=district_ids,
        households=request.households or default_households,
        now=now,
    )
