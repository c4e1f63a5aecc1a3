"""The leads' map: districts with their progress, turfs with coverage and lease, a turf's
addresses, and kommun and län outlines, as GeoJSON text in WGS84, simplified for the zoom.

Geometries are simplified in SWEREF 99 TM (EPSG:3006), where a tolerance is in metres,
and cached in process memory as GeoJSON text per (unit, tolerance), keyed by the unit's
version (a district's updated_at), so that a kommun's map is mostly string assembly."""

import hashlib
import json
import math
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from sqlalchemy import func
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from api.auth.scope import Scope
from api.campaigns.service import get_campaign
from api.errors import NotFound
from api.models import (
    Address,
    District,
    ElectionResult,
    Forening,
    Kommun,
    Partidistrikt,
    Turf,
    TurfAddress,
    TurfLease,
    TurfStat,
    UnitKind,
    User,
)
from api.org import tree
from api.progress.service import (
    covered_through,
    expected_share,
    progress_of_units,
    resolve_unit,
    unit_progress,
)
from api.reports.chart import daily_chart_png
from api.reports.service import CHART_DAYS

__all__ = [
    "MAX_ZOOM",
    "MIN_ZOOM",
    "address_collection",
    "district_collection",
    "etag_of",
    "outline_collection",
    "priorities",
    "progress_chart_png",
    "tolerance_m",
]

MIN_ZOOM, MAX_ZOOM = 4, 18
# Metres per screen pixel at zoom 0 at the latitude of Jämtland (63°N) in web mercator.
_M_PER_PX_Z0 = 156543.03 * math.cos(math.radians(63))
_DECIMALS = 5  # about a metre: finer than any simplification the map asks for
_CACHE_ENTRIES = 60_000

_to_sweref = Transformer.from_crs("EPSG:4326", "EPSG:3006", always_xy=True)
_to_wgs84 = Transformer.from_crs("EPSG:3006", "EPSG:4326", always_xy=True)


def tolerance_m(zoom: int) -> float:
    """The simplification tolerance for a zoom level: about half a screen pixel, in metres."""
    zoom = min(max(zoom, MIN_ZOOM), MAX_ZOOM)
    return round(_M_PER_PX_Z0 / 2**zoom * 0.5, 2)


class _GeometryCache:
    """GeoJSON text of simplified geometries, per (key, tolerance), valid for one version of
    the unit; least recently used entries go first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[tuple, tuple[object, str]] = OrderedDict()
        self.lock = threading.Lock()

    def get_many(self, keys: list[tuple[tuple, object]]) -> list[str | None]:
        """``get`` for many (key, version) pairs under one lock."""
        out: list[str | None] = []
        with self.lock:
            for key, version in keys:
                found = self.entries.get(key)
                if found is None or found[0] != version:
                    out.append(None)
                else:
                    self.entries.move_to_end(key)
                    out.append(found[1])
        return out

    def get(self, key: tuple, version: object) -> str | None:
        with self.lock:
            found = self.entries.get(key)
            if found is None or found[0] != version:
                return None
            self.entries.move_to_end(key)
            return found[1]

    def put(self, key: tuple, version: object, text: str) -> None:
        with self.lock:
            self.entries[key] = (version, text)
            self.entries.move_to_end(key)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)


_cache = _GeometryCache(_CACHE_ENTRIES)


def _simplify(geoms: list[shapely.Geometry], tolerance: float) -> list[str]:
    """GeoJSON text of each WGS84 geometry, simplified by ``tolerance`` metres."""
    if not geoms:
        return []
    projected = shapely.transform(
        np.array(geoms, dtype=object), lambda xy: np.column_stack(_to_sweref.transform(*xy.T))
    )
    simplified = shapely.simplify(projected, tolerance, preserve_topology=True)
    back = shapely.transform(
        simplified,
        lambda xy: np.round(np.column_stack(_to_wgs84.transform(*xy.T)), _DECIMALS),
    )
    return [shapely.to_geojson(g) for g in back]


def _geometries(
    session: Session, model, kind: str, rows: list[tuple[int, object]], tolerance: float
) -> dict[int, str]:
    """Per id, the GeoJSON text of ``model`` rows given as (id, version): from the cache,
    or read (only those) and simplified now in one batch."""
    out: dict[int, str] = {}
    missing = {}
    found = _cache.get_many([((kind, unit_id, tolerance), version) for unit_id, version in rows])
    for (unit_id, version), text in zip(rows, found, strict=True):
        if text is None:
            missing[unit_id] = version
        else:
            out[unit_id] = text
    if not missing:
        return out
    wkbs = list(
        session.execute(select(model.id, model.geom_wkb).where(col(model.id).in_(list(missing))))
    )
    texts = _simplify([shapely.from_wkb(wkb) for _, wkb in wkbs], tolerance)
    for (unit_id, _), text in zip(wkbs, texts, strict=True):
        _cache.put((kind, unit_id, tolerance), missing[unit_id], text)
        out[unit_id] = text
    return out


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def _collection(features: Iterable[tuple[str, str, dict[str, Any]]], meta: dict) -> bytes:
    """A FeatureCollection's bytes from (id, geometry text, properties)."""
    parts = [
        '{"type":"Feature","id":'
        + json.dumps(fid)
        + ',"geometry":'
        + geometry
        + ',"properties":'
        + _dumps(props)
        + "}"
        for fid, geometry, props in features
    ]
    meta_text = _dumps(meta)
    return (
        '{"type":"FeatureCollection","meta":' + meta_text + ',"features":[' + ",".join(parts) + "]}"
    ).encode()


def etag_of(body: bytes) -> str:
    """A strong validator for a response body."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


# -- districts ----------------------------------------------------------------------------


def priorities(*, session: Session, district_ids: list[int]) -> dict[int, float]:
    """Per district, the voters a campaign may still win: eligible × (1 − turnout) of its
    most recently imported election result; districts without one are left out."""
    if not district_ids:
        return {}
    latest = (
        select(ElectionResult.district_id, func.max(ElectionResult.imported_at).label("at"))
        .where(col(ElectionResult.district_id).in_(district_ids))
        .group_by(ElectionResult.district_id)
        .subquery()
    )
    rows = session.execute(
        select(ElectionResult.district_id, ElectionResult.eligible, ElectionResult.turnout).join(
            latest,
            (latest.c.district_id == ElectionResult.district_id)
            & (latest.c.at == ElectionResult.imported_at),
        )
    )
    return {d: round(eligible * (1 - turnout), 1) for d, eligible, turnout in rows}


def _district_coverage(session: Session, district_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Per district with live turfs: households in them and households knocked."""
    if not district_ids:
        return {}
    rows = session.execute(
        select(
            Turf.district_id,
            func.count(),
            func.sum(Turf.households),
            func.sum(func.coalesce(TurfStat.households_knocked, 0)),
        )
        .join(TurfStat, TurfStat.turf_id == Turf.id, isouter=True)
        .where(col(Turf.district_id).in_(district_ids), col(Turf.retired_at).is_(None))
        .group_by(Turf.district_id)
    )
    return {
        d: {
            "turfs": int(n),
            "households": int(h or 0),
            "knocked": int(k or 0),
            "share": (int(k or 0) / int(h)) if h else None,
        }
        for d, n, h, k in rows
    }


def _seen_districts(session: Session, scope: Scope, kommun: str | None) -> list[tuple]:
    query = (
        select(
            District.id,
            District.code,
            District.name,
            District.updated_at,
            District.forening_id,
            District.voters,
            District.households,
            Kommun.code,
            Kommun.name,
            Kommun.id,
            Forening.name,
        )
        .join(Kommun, Kommun.id == District.kommun_id)
        .join(Forening, Forening.id == District.forening_id, isouter=True)
        .where(scope.seen_filter(tree.kind_of(District), District.id))
        .order_by(District.code)
    )
    if kommun is not None:
        query = query.where(Kommun.code == kommun)
    return list(session.execute(query))


def _progress_properties(progress) -> dict[str, Any]:
    out = {}
    share_now = progress.expected_share
    for m in progress.metrics:
        pace = None
        if m.share is not None and share_now > 0:
            pace = round(m.share / share_now, 3)
        out[m.metric] = {
            "actual": m.actual,
            "target": m.target,
            "share": None if m.share is None else round(m.share, 4),
            "expected": None if m.expected is None else round(m.expected, 1),
            "status": m.status,
            "pace": pace,
        }
    return out


def district_collection(
    *,
    session: Session,
    scope: Scope,
    zoom: int,
    today: date,
    now: datetime,
    campaign_id: int | None = None,
    kommun: str | None = None,
    with_turfs: bool = False,
) -> bytes:
    """The districts the caller sees (one kommun's, by SCB code, or all), with progress in
    ``campaign_id``, coverage and priority; ``with_turfs`` adds their live turfs."""
    campaign = None
    if campaign_id is not None:
        campaign = get_campaign(session=session, scope=scope, campaign_id=campaign_id)
    tolerance = tolerance_m(zoom)
    rows = _seen_districts(session, scope, kommun)
    if kommun is not None and not rows:
        # A kommun whose districts the caller does not see is answered as a missing one.
        raise NotFound(f"kommun {kommun} not found among the kommuner you see")
    ids = [r[0] for r in rows]
    geometries = _geometries(session, District, "district", [(r[0], r[3]) for r in rows], tolerance)
    progress = {}
    covered = covered_through(session)
    if campaign is not None:
        progress = progress_of_units(
            session=session,
            campaign=campaign,
            kind=tree.kind_of(District),
            ids=ids,
            today=today,
            covered=covered,
        )
    coverage = _district_coverage(session, ids)
    priority = priorities(session=session, district_ids=ids)
    features = []
    for did, code, name, _, forening_id, voters, households, kcode, kname, _, fname in rows:
        props: dict[str, Any] = {
            "layer": "district",
            "code": code,
            "name": name,
            "kommun_code": kcode,
            "kommun": kname,
            "forening_id": forening_id,
            "forening": fname,
            "uncovered": forening_id is None,
            "voters": voters,
            "households": households,
            "coverage": coverage.get(did),
            "priority": priority.get(did),
        }
        if did in progress:
            props["progress"] = _progress_properties(progress[did])
        features.append((code, geometries[did], props))
    meta: dict[str, Any] = {"zoom": zoom, "tolerance_m": tolerance, "covered_through": covered}
    if campaign is not None:
        meta |= {
            "campaign_id": campaign.id,
            "today": today,
            "expected_share": round(expected_share(campaign, min(today, campaign.ends_on)), 4),
        }
    if with_turfs:
        turf_filter = scope.seen_filter(tree.kind_of(District), Turf.district_id)
        if kommun is not None:
            turf_filter &= Turf.kommun_id == rows[0][9]
        features.extend(_turf_features(session, turf_filter, tolerance, now))
    return _collection(features, meta)


# -- turfs --------------------------------------------------------------------------------


def _turf_features(
    session: Session, where, tolerance: float, now: datetime
) -> list[tuple[str, str, dict[str, Any]]]:
    """The live turfs ``where`` keeps, with coverage and live lease, in one query: the
    lease's holder as a förening's name (a volunteer's lease: their förening's)."""
    holder = aliased(User)
    lease_forening = aliased(Forening)
    user_forening = aliased(Forening)
    live = (
        (TurfLease.turf_id == Turf.id)
        & col(TurfLease.released_at).is_(None)
        & (TurfLease.expires_at > now)
    )
    rows = session.execute(
        select(
            Turf.id,
            Turf.code,
            Turf.created_at,
            Turf.households,
            Turf.address_count,
            Turf.walk_length_m,
            District.code,
            TurfStat.doors_knocked,
            TurfStat.households_knocked,
            TurfStat.answered,
            TurfStat.conversations,
            TurfStat.last_visit,
            TurfLease.id,
            TurfLease.forening_id,
            TurfLease.expires_at,
            lease_forening.name,
            user_forening.id,
            user_forening.name,
        )
        .join(District, District.id == Turf.district_id)
        .join(TurfStat, TurfStat.turf_id == Turf.id, isouter=True)
        .join(TurfLease, live, isouter=True)
        .join(lease_forening, lease_forening.id == TurfLease.forening_id, isouter=True)
        .join(holder, holder.id == TurfLease.user_id, isouter=True)
        .join(
            user_forening,
            (user_forening.id == holder.unit_id) & (holder.unit_kind == tree.kind_of(Forening)),
            isouter=True,
        )
        .where(where, col(Turf.retired_at).is_(None))
        .order_by(Turf.code)
    ).all()
    geometries = _geometries(session, Turf, "turf", [(r[0], r[2]) for r in rows], tolerance)
    features = []
    for (
        tid,
        code,
        _,
        households,
        address_count,
        walk,
        district_code,
        doors,
        knocked,
        answered,
        conversations,
        last_visit,
        lease_id,
        lease_fid,
        expires_at,
        lease_fname,
        user_fid,
        user_fname,
    ) in rows:
        lease = None
        if lease_id is not None:
            by_forening = lease_fid is not None
            lease = {
                "holder": "forening" if by_forening else "volunteer",
                "forening_id": lease_fid if by_forening else user_fid,
                "forening": lease_fname if by_forening else user_fname,
                "expires_at": expires_at,
            }
        knocked = knocked or 0
        props = {
            "layer": "turf",
            "code": code,
            "district_code": district_code,
            "households": households,
            "address_count": address_count,
            "walk_length_m": round(walk),
            "coverage": {
                "doors_knocked": doors or 0,
                "households_knocked": knocked,
                "answered": answered or 0,
                "conversations": conversations or 0,
                "last_visit": last_visit,
                "share": round(knocked / households, 4) if households else None,
            },
            "lease": lease,
        }
        features.append((code, geometries[tid], props))
    return features


def address_collection(*, session: Session, scope: Scope, code: str) -> bytes:
    """The addresses of one turf the caller sees, in walking order, as points."""
    turf = session.exec(
        select(Turf).where(
            Turf.code == code, scope.seen_filter(tree.kind_of(District), Turf.district_id)
        )
    ).first()
    if turf is None:
        raise NotFound(f"turf {code} not found among the turfs you see")
    rows = session.execute(
        select(TurfAddress.position, Address)
        .join(Address, Address.id == TurfAddress.address_id)
        .where(TurfAddress.turf_id == turf.id)
        .order_by(TurfAddress.position)
    )
    features = []
    for position, a in rows:
        point = json.dumps(
            {"type": "Point", "coordinates": [round(a.lon, _DECIMALS), round(a.lat, _DECIMALS)]}
        )
        props = {
            "layer": "address",
            "position": position,
            "street": a.street,
            "number": a.number,
            "entrance": a.entrance,
            "postcode": a.postcode,
            "postort": a.postort,
            "households": a.households,
        }
        features.append((f"{turf.code}/{position}", point, props))
    return _collection(features, {"turf": turf.code})


# -- outlines -----------------------------------------------------------------------------


def _outline_texts(
    session: Session,
    kind: str,
    groups: dict[int, tuple[object, list[int]]],
    tolerance: float,
) -> dict[int, str]:
    """Per group (a kommun or partidistrikt id with its version and district ids), the
    GeoJSON text of the union of its districts, simplified."""
    out, missing = {}, []
    for unit_id, (version, _) in groups.items():
        text = _cache.get((kind, unit_id, tolerance), version)
        if text is None:
            missing.append(unit_id)
        else:
            out[unit_id] = text
    if not missing:
        return out
    wanted = [d for unit_id in missing for d in groups[unit_id][1]]
    wkbs = dict(
        session.execute(
            select(District.id, District.geom_wkb).where(col(District.id).in_(wanted))
        ).all()
    )
    unions = [
        shapely.union_all([shapely.from_wkb(wkbs[d]) for d in groups[unit_id][1]])
        for unit_id in missing
    ]
    for unit_id, text in zip(missing, _simplify(unions, tolerance), strict=True):
        _cache.put((kind, unit_id, tolerance), groups[unit_id][0], text)
        out[unit_id] = text
    return out


def outline_collection(*, session: Session, scope: Scope, zoom: int) -> bytes:
    """The outlines of the kommuner and partidistrikt (län) of the districts the caller
    sees: the union of those districts, simplified. The map's background when no basemap
    can be reached."""
    tolerance = tolerance_m(zoom)
    rows = list(
        session.execute(
            select(
                District.id, District.updated_at, Kommun.id, Kommun.code, Kommun.partidistrikt_id
            )
            .join(Kommun, Kommun.id == District.kommun_id)
            .where(scope.seen_filter(tree.kind_of(District), District.id))
            .order_by(District.id)
        )
    )
    by_kommun: dict[int, list] = defaultdict(list)
    by_pd: dict[int, list] = defaultdict(list)
    kommun_codes = {}
    for did, updated, kid, kcode, pid in rows:
        by_kommun[kid].append((did, updated))
        by_pd[pid].append((did, updated))
        kommun_codes[kid] = kcode

    def versioned(groups: dict[int, list]) -> dict[int, tuple[object, list[int]]]:
        # The same districts, none changed since: the same outline.
        return {
            uid: (
                (len(ds), max(u for _, u in ds), hash(tuple(d for d, _ in ds))),
                [d for d, _ in ds],
            )
            for uid, ds in groups.items()
        }

    kommun_names = tree.names(session, tree.kind_of(Kommun), by_kommun)
    pd_names = dict(
        session.execute(
            select(Partidistrikt.id, Partidistrikt.name).where(col(Partidistrikt.id).in_(by_pd))
        ).all()
    )
    # Coarser than the districts: an outline is background, never clicked.
    kommun_texts = _outline_texts(session, "kommun", versioned(by_kommun), tolerance * 2)
    pd_texts = _outline_texts(session, "partidistrikt", versioned(by_pd), tolerance * 4)
    features = [
        (
            f"kommun/{kommun_codes[k]}",
            kommun_texts[k],
            {"layer": "kommun", "code": kommun_codes[k], "name": kommun_names.get(k)},
        )
        for k in sorted(by_kommun, key=kommun_codes.get)
    ] + [
        (
            f"partidistrikt/{p}",
            pd_texts[p],
            {"layer": "partidistrikt", "id": p, "name": pd_names.get(p)},
        )
        for p in sorted(by_pd)
    ]
    return _collection(features, {"zoom": zoom, "tolerance_m": tolerance})


# -- the overview's chart -------------------------------------------------------------------


def progress_chart_png(
    *,
    session: Session,
    scope: Scope,
    campaign_id: int,
    unit_kind: UnitKind,
    unit: str,
    today: date,
) -> bytes:
    """The nightly email's chart for one unit the caller sees: conversations per day over
    the last weeks, against the conversations per day the pace needs."""
    found = resolve_unit(session=session, scope=scope, kind=unit_kind, ref=unit)
    progress = unit_progress(
        session=session,
        scope=scope,
        campaign_id=campaign_id,
        unit_kind=unit_kind,
        unit_id=found.id,
        today=today,
        check_scope=False,
    )
    campaign = get_campaign(session=session, scope=scope, campaign_id=campaign_id)
    days = [today - timedelta(days=i) for i in range(CHART_DAYS - 1, -1, -1)]
    by_day = {d.day: d.conversations for d in progress.daily}
    target = progress.metrics[0].target or 0

    def needed(d: date) -> float:
        return target * (
            expected_share(campaign, d) - expected_share(campaign, d - timedelta(days=1))
        )

    return daily_chart_png(days, [by_day.get(d, 0) for d in days], [needed(d) for d in days])
