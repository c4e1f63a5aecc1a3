"""Address points: import from files, joined to their districts; households per address."""

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from sqlalchemy import func, update
from sqlmodel import Session, col, select

from api.addresses.schemas import AddressImportOptions, AddressImportSummary, AddressRead
from api.auth.scope import Forbidden, Scope
from api.errors import AppError, NotFound, Unprocessable
from api.models import Address, District, ElectionResult, Kommun, utcnow
from api.pagination import PageParams, paginate
from geo import (
    DistrictFileError,
    DistrictFileTooLarge,
    DistrictReadTimeout,
    join_districts,
    read_addresses,
    read_addresses_isolated,
)

__all__ = [
    "PERSONS_PER_HOUSEHOLD",
    "household_estimate",
    "import_address_file",
    "list_district_addresses",
    "set_households",
]

# Eligible voters per household, to estimate households where no address is known. An
# assumption, not a measurement: Swedish households average a little over two persons, not
# all of them voters. Change it here if local figures say otherwise.
PERSONS_PER_HOUSEHOLD = 1.8
_CHUNK = 1000
_LISTED = 50
_ADDRESS = Address.__table__
_COMPARED = ("district_id", "kommun_id", "street", "number", "entrance", "postcode", "postort")


def _read(path: Path, options: dict[str, Any], isolate_seconds: float | None):
    try:
        if isolate_seconds is None:
            return read_addresses(path, **options)
        return read_addresses_isolated(path, timeout=isolate_seconds, **options)
    except DistrictFileTooLarge as exc:
        raise AppError(f"{exc} (KNACKA_IMPORT_MAX_UNZIPPED_MB)", 413) from None
    except DistrictReadTimeout as exc:
        raise AppError(
            f"{exc} (KNACKA_IMPORT_TIMEOUT_SECONDS); split the file by kommun, or import it "
            "with the knacka import-addresses command, which has no time limit",
            413,
        ) from None
    except DistrictFileError as exc:  # AddressFileError, or its copy from the child process
        details = {"features": exc.features[:100]} if exc.features else None
        raise Unprocessable(f"{exc}; nothing was written", details=details) from None


def _candidate_kommuner(session: Session, scope: Scope, kommun_code: str | None) -> list[int]:
    if kommun_code is not None:
        kommun = session.exec(select(Kommun).where(Kommun.code == kommun_code)).first()
        if kommun is None or not scope.leads_kommun(kommun.id):
            raise Forbidden(f"kommun: {kommun_code} does not exist or is outside your unit")
        return [kommun.id]
    if scope.unrestricted:
        return list(session.exec(select(Kommun.id)))
    return sorted(scope.led_kommun_ids)


def import_address_file(
    *,
    session: Session,
    scope: Scope,
    path: Path,
    options: AddressImportOptions,
    kommun_code: str | None = None,
    dry_run: bool = False,
    isolate_seconds: float | None = None,
    max_unzipped_bytes: int | None = None,
) -> AddressImportSummary:
    """Import addresses in one transaction, each joined to the district it lies in.

    Districts are those of ``kommun_code`` or, without it, of every kommun the caller leads.
    Re-importing updates by key; addresses no longer in the file are marked missing, never
    deleted, and a households figure a lead set is never overwritten.
    """
    read_options = options.model_dump() | {"max_unzipped_bytes": max_unzipped_bytes}
    table = _read(path, read_options, isolate_seconds)
    frame = table.frame
    kommun_ids = _candidate_kommuner(session, scope, kommun_code)

    lon = frame["lon"].to_numpy(dtype=float)
    lat = frame["lat"].to_numpy(dtype=float)
    minx, miny, maxx, maxy = lon.min(), lat.min(), lon.max(), lat.max()
    districts = session.exec(
        select(District.id, District.code, District.kommun_id, District.geom_wkb)
        .where(col(District.kommun_id).in_(kommun_ids))
        .where(District.max_lon >= minx, District.min_lon <= maxx)
        .where(District.max_lat >= miny, District.min_lat <= maxy)
        .order_by(District.id)
    ).all()
    district_ids = np.array([d.id for d in districts], dtype=np.int64)
    district_kommun = np.array([d.kommun_id for d in districts], dtype=np.int64)
    polygons = shapely.from_wkb([d.geom_wkb for d in districts])
    index = join_districts(lon, lat, np.asarray(polygons, dtype=object))
    inside = index >= 0
    where = frame["where"].to_numpy()
    outside_rows = list(where[~inside][:_LISTED])

    keys = frame["key"].to_numpy()[inside]
    joined_district = district_ids[index[inside]]
    joined_kommun = district_kommun[index[inside]]
    touched = sorted(set(joined_kommun.tolist()) | ({kommun_ids[0]} if kommun_code else set()))
    existing = _existing(session, touched, keys)
    outside_unit = sorted({k for k in (r.kommun_id for r in existing.values())} - set(touched))
    if any(not scope.leads_kommun(k) for k in outside_unit):
        raise Forbidden("key: the file moves addresses out of a kommun outside your unit")

    now = utcnow()
    # Written a chunk at a time as the file is walked, so that a million addresses never
    # sit in memory as a million dicts; it is still one transaction.
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    created = updated = 0

    def write(force: bool = False) -> None:
        nonlocal created, updated
        if force or len(inserts) >= _CHUNK:
            if inserts and not dry_run:
                # Core, not the ORM's bulk insert: several times faster per row.
                session.execute(_ADDRESS.insert(), inserts)
            created += len(inserts)
            inserts.clear()
        if force or len(updates) >= _CHUNK:
            if updates and not dry_run:
                session.execute(update(Address), updates)
            updated += len(updates)
            updates.clear()

    unchanged = 0
    part = frame.loc[inside]
    columns = {
        name: part[name].tolist()
        for name in ("street", "number", "entrance", "postcode", "postort", "households")
    }
    lons, lats = lon[inside].tolist(), lat[inside].tolist()
    district_list, kommun_list = joined_district.tolist(), joined_kommun.tolist()
    for i, key in enumerate(keys.tolist()):
        figure = columns["households"][i]
        values = {
            "district_id": district_list[i],
            "kommun_id": kommun_list[i],
            "street": columns["street"][i],
            "number": columns["number"][i],
            "entrance": columns["entrance"][i],
            "postcode": columns["postcode"][i],
            "postort": columns["postort"][i],
            "lon": lons[i],
            "lat": lats[i],
        }
        old = existing.get(key)
        if old is None or old.households_source != "lead":
            values["households"] = 1 if figure is None else int(figure)
            values["households_source"] = "default" if figure is None else "file"
        if old is None:
            inserts.append(values | {"key": key, "created_at": now, "updated_at": now})
            write()
            continue
        # Compared as one tuple against the row's slice (_EXISTING's order): attribute by
        # attribute costs seconds over a million addresses.
        changed = (
            old.missing_since is not None
            or old[_PLACE] != tuple(values[k] for k in _COMPARED)
            or (
                "households" in values
                and old[_HOUSEHOLDS] != (values["households"], values["households_source"])
            )
            # Coordinates pass through a projection: a difference below a millimetre is noise.
            or abs(old.lon - lons[i]) > 1e-8
            or abs(old.lat - lats[i]) > 1e-8
        )
        if changed:
            updates.append(values | {"id": old.id, "missing_since": None, "updated_at": now})
            write()
        else:
            unchanged += 1

    write(force=True)
    in_file = set(keys.tolist())
    gone = [r for k, r in existing.items() if k not in in_file and r.kommun_id in touched]
    newly_gone = [{"id": r.id, "missing_since": now} for r in gone if r.missing_since is None]
    if not dry_run:
        for start in range(0, len(newly_gone), _CHUNK):
            session.execute(update(Address), newly_gone[start : start + _CHUNK])
        session.flush()

    with_addresses = set(district_list)
    empty = session.exec(
        select(District.code).where(col(District.kommun_id).in_(touched)).order_by(District.code)
    ).all()
    codes_by_id = {d.id: d.code for d in districts}
    used = {codes_by_id[i] for i in with_addresses}
    empty_codes = [c for c in empty if c not in used]
    kommun_codes = (
        session.exec(
            select(Kommun.code).where(col(Kommun.id).in_(touched)).order_by(Kommun.code)
        ).all()
        if touched
        else []
    )
    return AddressImportSummary(
        dry_run=dry_run,
        source_crs=table.source_crs,
        key_source=table.key_source,
        features=len(frame),
        created=created,
        updated=updated,
        unchanged=unchanged,
        missing=len(gone),
        missing_keys=sorted(r.key for r in gone)[:_LISTED],
        outside=int((~inside).sum()),
        outside_rows=[str(r) for r in outside_rows],
        districts_without_addresses=list(empty_codes),
        kommuner=list(kommun_codes),
        warnings=table.warnings,
    )


_EXISTING = (
    Address.id,
    Address.key,
    Address.kommun_id,
    Address.missing_since,
    Address.lon,
    Address.lat,
    Address.households,
    Address.households_source,
    *(getattr(Address, name) for name in _COMPARED),
)
_HOUSEHOLDS = slice(6, 8)
_PLACE = slice(8, 8 + len(_COMPARED))


def _existing(session: Session, kommun_ids: list[int], keys: np.ndarray) -> dict[str, Any]:
    """Stored addresses of the touched kommuner, and those elsewhere that share a key."""
    found = {
        row.key: row
        for row in session.execute(select(*_EXISTING).where(col(Address.kommun_id).in_(kommun_ids)))
    }
    elsewhere_count = session.exec(
        select(func.count())
        .select_from(Address)
        .where(col(Address.kommun_id).not_in(kommun_ids or [-1]))
    ).one()
    if elsewhere_count:
        # An address may have moved between kommuner (a corrected district).
        rest = [k for k in keys.tolist() if k not in found]
        for start in range(0, len(rest), _CHUNK):
            chunk = rest[start : start + _CHUNK]
            for row in session.execute(select(*_EXISTING).where(col(Address.key).in_(chunk))):
                found[row.key] = row
    return found


def _to_read(address: Address, district_code: str) -> AddressRead:
    return AddressRead(district_code=district_code, **address.model_dump())


def list_district_addresses(
    *, session: Session, scope: Scope, code: str, page: PageParams, missing: bool = False
) -> tuple[list[AddressRead], int]:
    """The addresses of a district the caller sees, by street and number."""
    district = session.exec(select(District).where(District.code == code)).first()
    if district is None or not scope.sees_district(district):
        raise NotFound(f"district {code} not found")
    query = select(Address).where(Address.district_id == district.id)
    if not missing:
        query = query.where(col(Address.missing_since).is_(None))
    query = query.order_by(Address.street, Address.number, Address.entrance, Address.id)
    rows, total = paginate(session, query, page)
    return [_to_read(a, code) for a in rows], total


def set_households(
    *, session: Session, scope: Scope, address_id: int, households: int
) -> AddressRead:
    """A lead's households figure for one address; imports never overwrite it."""
    address = session.get(Address, address_id) if 0 <= address_id < 2**63 else None
    district = session.get(District, address.district_id) if address else None
    if district is None or not scope.sees_district(district):
        raise NotFound(f"address {address_id} not found")
    if not (scope.leads_kommun(district.kommun_id) or scope.leads(district)):
        raise Forbidden(f"address {address_id}: only its district's leads change households")
    address.households = households
    address.households_source = "lead"
    address.updated_at = utcnow()
    session.add(address)
    session.flush()
    return _to_read(address, district.code)


def household_estimate(session: Session, district_ids: Iterable[int]) -> dict[int, int | None]:
    """Households per district: its addresses' households; without addresses, eligible
    voters of the latest election / PERSONS_PER_HOUSEHOLD; else District.households."""
    ids = sorted(set(district_ids))
    result: dict[int, int | None] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        sums = dict(
            session.exec(
                select(Address.district_id, func.sum(Address.households))
                .where(col(Address.district_id).in_(chunk))
                .where(col(Address.missing_since).is_(None))
                .group_by(Address.district_id)
            ).all()
        )
        latest = (
            select(ElectionResult.district_id, func.max(ElectionResult.imported_at).label("at"))
            .where(col(ElectionResult.district_id).in_(chunk))
            .group_by(ElectionResult.district_id)
            .subquery()
        )
        eligible: dict[int, int] = {}
        for district_id, value in session.exec(
            select(ElectionResult.district_id, ElectionResult.eligible).join(
                latest,
                (latest.c.district_id == ElectionResult.district_id)
                & (latest.c.at == ElectionResult.imported_at),
            )
        ):
            eligible[district_id] = value
        stored = dict(
            session.exec(
                select(District.id, District.households).where(col(District.id).in_(chunk))
            ).all()
        )
        for district_id in chunk:
            if sums.get(district_id):
                result[district_id] = int(sums[district_id])
            elif district_id in eligible:
                result[district_id] = round(eligible[district_id] / PERSONS_PER_HOUSEHOLD)
            else:
                result[district_id] = stored.get(district_id)
    return result
