"""Cutting a district into turfs of about N households, with a walking order in each.

Everything here works in SWEREF 99 TM (EPSG:3006) metres: distances, the cut and the turf
polygons. A district is always cut on its own, so no turf ever crosses its border.

The default method is recursive weighted bisection: the number of parts is
``k = round(total / target)``; a set of points is cut at the weighted median along the longer
axis of its bounding box into ``ceil(k/2)`` and ``floor(k/2)`` parts, with the weight split in
the same proportion, and each side is cut again. The alternative, ``"strips"``, cuts the
district into strips along its longer axis and each strip into consecutive runs along the
other axis (scripts/bench_turfs.py compares the two).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

__all__ = [
    "BALANCE_LIMIT",
    "BUILDING_SHARE",
    "CUT_CRS",
    "METHODS",
    "DistrictCut",
    "TurfPart",
    "cut_district",
    "polygonal_part",
    "walk_length",
    "walking_order",
]

CUT_CRS = CRS.from_epsg(3006)
METHODS = ("bisection", "strips")
# The largest turf may hold this many times the target (unless it is one entrance).
BALANCE_LIMIT = 1.3
# A building (street + number) stays in one turf while it holds at most this share of the
# target; a bigger one is cut by its entrances, so that the parts can still be balanced.
BUILDING_SHARE = 0.25
# SWEREF 99 TM eastings/northings that cover Sweden with a margin.
_SWEREF_BOUNDS = (150_000.0, 6_000_000.0, 1_000_000.0, 7_800_000.0)
_NO_NUMBER = 10**9


@dataclass(frozen=True)
class TurfPart:
    """One new turf of a cut district.

    Attributes
    ----------
    addresses : numpy.ndarray
        Indices into the district's address arrays, in walking order.
    households : int
        The households of those addresses.
    walk_length_m : float
        The length of the walk from the first address to the last, straight lines, metres.
    polygon : shapely.Polygon or shapely.MultiPolygon
        The turf's part of the district in EPSG:3006: the places nearer to its addresses
        than to any other address of the district.
    """

    addresses: np.ndarray
    households: int
    walk_length_m: float
    polygon: BaseGeometry


@dataclass(frozen=True)
class DistrictCut:
    """The new turfs of one district.

    Attributes
    ----------
    labels : numpy.ndarray
        For every address, the index of its turf in ``turfs``; -1 for the addresses that
        were ``fixed`` (already in a kept turf).
    turfs : list of TurfPart
        North to south, then west to east, by the turfs' household-weighted centres.
    """

    labels: np.ndarray
    turfs: list[TurfPart]


def cut_district(
    xy: np.ndarray,
    households: np.ndarray,
    *,
    district: BaseGeometry,
    crs: object,
    target: int = 60,
    buildings: Sequence[object] | None = None,
    streets: Sequence[str] | None = None,
    numbers: Sequence[str] | None = None,
    fixed: np.ndarray | None = None,
    method: str = "bisection",
) -> DistrictCut:
    """Cut one district's addresses into turfs of about ``target`` households.

    Parameters
    ----------
    xy : numpy.ndarray
        Shape (n, 2): the addresses' eastings and northings in ``crs``.
    households : numpy.ndarray
        Shape (n,): households per address, non-negative integers.
    district : shapely.Polygon or shapely.MultiPolygon
        The district in ``crs``; the turf polygons are cut from it.
    crs : pyproj.CRS or str
        Must be EPSG:3006 (SWEREF 99 TM, metres); anything else is refused.
    target : int
        Households per turf wanted.
    buildings : sequence, optional
        A key per address (e.g. street + number): the addresses of one building stay in
        one turf unless the building holds more than ``BUILDING_SHARE`` of the target.
        Without it every address stands alone.
    streets, numbers : sequence of str, optional
        Street name and number ("12B") per address, for the walking order's first draft.
    fixed : numpy.ndarray of bool, optional
        Addresses that already belong to kept turfs: they are not cut, but their places
        still claim their part of the district, so new turf polygons stay off them.
    method : {"bisection", "strips"}
        How to cut (see the module's description).

    Returns
    -------
    DistrictCut
        Every address not ``fixed`` is in exactly one turf. Every turf holds at most
        ``BALANCE_LIMIT * target`` households unless it is a single address over the target.
        The same input always gives the same turfs and byte-identical polygons.

    Raises
    ------
    ValueError
        A CRS other than EPSG:3006, coordinates outside SWEREF 99 TM's range over Sweden,
        arrays of mismatched lengths, negative households, a target below 1, an unknown
        method or a district that is not a non-empty polygon.
    """
    xy, households, fixed = _checked(xy, households, district, crs, target, fixed, method)
    n = len(xy)
    labels = np.full(n, -1, dtype=np.int64)
    free = np.flatnonzero(~fixed)
    if len(free) == 0:
        return DistrictCut(labels=labels, turfs=[])
    weights = households.astype(np.float64)
    units, unit_xy, unit_w = _units(xy, weights, free, buildings, target)
    parts = _partition(unit_xy, unit_w, float(target), method)
    parts = _order_parts(parts, unit_xy, unit_w)
    for label, part in enumerate(parts):
        for u in part:
            labels[units[u]] = label
    polygons = _polygons(xy, labels, len(parts), district)
    turfs = []
    for label, polygon in enumerate(polygons):
        members = np.flatnonzero(labels == label)
        order = walking_order(
            xy[members],
            streets=None if streets is None else [streets[i] for i in members],
            numbers=None if numbers is None else [numbers[i] for i in members],
        )
        members = members[order]
        turfs.append(
            TurfPart(
                addresses=members,
                households=int(households[members].sum()),
                walk_length_m=walk_length(xy[members]),
                polygon=polygon,
            )
        )
    return DistrictCut(labels=labels, turfs=turfs)


def _checked(xy, households, district, crs, target, fixed, method):
    if CRS.from_user_input(crs) != CUT_CRS:
        raise ValueError(f"crs: turfs are cut in EPSG:3006 (SWEREF 99 TM) metres, not {crs}")
    if method not in METHODS:
        raise ValueError(f"method: {method!r} is not one of {', '.join(METHODS)}")
    if not isinstance(target, int | np.integer) or target < 1:
        raise ValueError(f"target: households per turf must be a whole number >= 1, not {target}")
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"xy: expected shape (n, 2), got {xy.shape}")
    households = np.asarray(households)
    if households.shape != (len(xy),):
        raise ValueError(f"households: expected {len(xy)} values, got shape {households.shape}")
    if len(households) and (
        not np.issubdtype(households.dtype, np.integer) or households.min() < 0
    ):
        raise ValueError("households: must be non-negative integers")
    if len(xy):
        if not np.isfinite(xy).all():
            raise ValueError("xy: coordinates must be finite")
        x0, y0, x1, y1 = _SWEREF_BOUNDS
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        if lo[0] < x0 or hi[0] > x1 or lo[1] < y0 or hi[1] > y1:
            raise ValueError(
                "xy: coordinates are outside SWEREF 99 TM's range over Sweden; "
                "project longitude/latitude to EPSG:3006 first"
            )
    if (
        not isinstance(district, BaseGeometry)
        or district.is_empty
        or district.geom_type not in ("Polygon", "MultiPolygon")
    ):
        raise ValueError("district: must be a non-empty Polygon or MultiPolygon")
    if fixed is None:
        fixed = np.zeros(len(xy), dtype=bool)
    else:
        fixed = np.asarray(fixed, dtype=bool)
        if fixed.shape != (len(xy),):
            raise ValueError(f"fixed: expected {len(xy)} values, got shape {fixed.shape}")
    return xy, households, fixed


# -- what is cut: buildings and entrances ----------------------------------------------------


def _units(xy, weights, free, buildings, target):
    """Group the free addresses into the units the cut never splits: small buildings whole,
    big ones by their entrances. Returns member lists, positions and weights per unit."""
    if buildings is None:
        unit_of = np.arange(len(free))
    else:
        # Buildings numbered in the order of their first address.
        ids: dict[str, int] = {}
        group = np.array([ids.setdefault(str(buildings[i]), len(ids)) for i in free])
        size = np.bincount(group)
        load = np.bincount(group, weights=weights[free])
        split = (size[group] > 1) & (load[group] > BUILDING_SHARE * target)
        # Split buildings' entrances get ids of their own, after every building's.
        unit_of = np.where(split, len(size) + np.arange(len(free)), group)
        # Numbered by each unit's first address.
        _, first, unit_of = np.unique(unit_of, return_index=True, return_inverse=True)
        rank = np.empty(len(first), dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(first))
        unit_of = rank[unit_of.reshape(-1)]
    order = np.argsort(unit_of, kind="stable")
    bounds = np.flatnonzero(np.diff(unit_of[order])) + 1
    groups = np.split(free[order], bounds)
    w = weights[free]
    unit_w = np.bincount(unit_of, weights=w)
    count = np.bincount(unit_of)
    pts = xy[free]
    mean = np.column_stack([np.bincount(unit_of, weights=pts[:, d]) / count for d in (0, 1)])
    weighted = (
        np.column_stack([np.bincount(unit_of, weights=pts[:, d] * w) for d in (0, 1)])
        / np.where(unit_w > 0, unit_w, 1.0)[:, None]
    )
    unit_xy = np.where((unit_w > 0)[:, None], weighted, mean)
    return groups, unit_xy, unit_w


def _centre(points: np.ndarray, w: np.ndarray) -> np.ndarray:
    total = w.sum()
    return (points * w[:, None]).sum(axis=0) / total if total > 0 else points.mean(axis=0)


# -- the cut --------------------------------------------------------------------------------


def _partition(unit_xy, unit_w, target, method):
    """Lists of unit indices, one per turf."""
    idx = np.arange(len(unit_w))
    # A unit over the target (one big entrance) is a turf of its own.
    alone = unit_w > target
    parts = [[int(u)] for u in idx[alone]]
    rest = idx[~alone]
    if len(rest):
        k = max(1, round(float(unit_w[rest].sum()) / target))
        cut = _bisect if method == "bisection" else _strips
        parts.extend(cut(unit_xy, unit_w, rest, k))
    # A cut can only fall between units, so a part may end up heavier than allowed; cut it
    # again, into parts of at most the target each.
    done, todo = [], parts
    while todo:
        part = todo.pop()
        w = float(unit_w[part].sum())
        if len(part) > 1 and w > BALANCE_LIMIT * target:
            k = max(2, math.ceil(w / target))
            todo.extend(_bisect(unit_xy, unit_w, np.array(part), k))
        else:
            done.append(part)
    return done


def _split_at(w_sorted: np.ndarray, share: float) -> int:
    """How many of the sorted units go to the first side so that its weight is closest to
    ``share`` of the total; at least one unit on each side."""
    if len(w_sorted) < 2:
        raise ValueError("cannot split fewer than two units")
    cum = np.cumsum(w_sorted)
    total = cum[-1]
    if total <= 0:
        return max(1, min(len(w_sorted) - 1, round(len(w_sorted) * share)))
    return int(np.argmin(np.abs(cum[:-1] - share * total))) + 1


def _sorted_along(unit_xy, idx, axis):
    pts = unit_xy[idx]
    return idx[np.lexsort((idx, pts[:, 1 - axis], pts[:, axis]))]


def _bisect(unit_xy, unit_w, idx, k):
    """Recursive weighted bisection of the units ``idx`` into ``k`` parts."""
    parts = []
    stack = [(np.asarray(idx), k)]
    while stack:
        members, k = stack.pop()
        k = min(k, len(members))
        if k <= 1:
            parts.append([int(u) for u in members])
            continue
        pts = unit_xy[members]
        extent = pts.max(axis=0) - pts.min(axis=0)
        axis = 0 if extent[0] >= extent[1] else 1
        ordered = _sorted_along(unit_xy, members, axis)
        k_first = math.ceil(k / 2)
        cut = _split_at(unit_w[ordered], k_first / k)
        # Never leave a side with fewer units than parts to fill.
        cut = min(max(cut, k_first), len(ordered) - (k - k_first))
        # Pushed in reverse so that the first side is cut first: a stable numbering.
        stack.append((ordered[cut:], k - k_first))
        stack.append((ordered[:cut], k_first))
    return parts


def _strips(unit_xy, unit_w, idx, k):
    """Strips along the longer axis, each cut into consecutive runs along the other."""
    pts = unit_xy[idx]
    extent = np.maximum(pts.max(axis=0) - pts.min(axis=0), 1.0)
    axis = 0 if extent[0] >= extent[1] else 1
    # Strips as wide as the turfs in them are tall: s strips of k/s turfs each.
    s = min(k, len(idx), max(1, round(math.sqrt(k * extent[axis] / extent[1 - axis]))))
    per_strip = [k // s + (1 if i < k % s else 0) for i in range(s)]
    ordered = _sorted_along(unit_xy, idx, axis)
    parts = []
    start = 0
    remaining_k = k
    for i, ks in enumerate(per_strip):
        rest = ordered[start:]
        if i == s - 1:
            strip = rest
        else:
            cut = _split_at(unit_w[rest], ks / remaining_k)
            cut = min(max(cut, ks), len(rest) - (remaining_k - ks))
            strip = rest[:cut]
        start += len(strip)
        remaining_k -= ks
        along = _sorted_along(unit_xy, strip, 1 - axis)
        if i % 2:
            along = along[::-1]  # serpentine: the next strip starts where this one ended
        parts.extend(_runs(unit_w, along, ks))
    return parts


def _runs(unit_w, ordered, k):
    """Consecutive runs of ``ordered`` into ``k`` parts of about equal weight."""
    parts = []
    rest = ordered
    for left in range(k, 1, -1):
        cut = _split_at(unit_w[rest], 1 / left)
        cut = min(max(cut, 1), len(rest) - (left - 1))
        parts.append([int(u) for u in rest[:cut]])
        rest = rest[cut:]
    parts.append([int(u) for u in rest])
    return parts


def _order_parts(parts, unit_xy, unit_w):
    """North to south, then west to east (whole metres, so that rounding cannot reorder)."""

    def key(part):
        x, y = _centre(unit_xy[part], unit_w[part])
        return (-round(y), round(x), min(part))

    return sorted(parts, key=key)


# -- polygons -------------------------------------------------------------------------------


def _polygons(xy, labels, k, district):
    """Voronoi cells of the addresses' places, clipped to the district, merged per turf.

    Cells of the ``fixed`` addresses (label -1) belong to no new turf. Where addresses of
    several turfs share one spot, each turf's copy of it is moved by half a metre, so that
    every turf still gets a (small) cell there."""
    if k == 0:
        return []
    places, owner = _places(xy, labels)
    if len(places) == 1:
        return [shapely.normalize(polygonal_part(district))]
    frame = shapely.box(*district.bounds).union(shapely.box(*shapely.multipoints(places).bounds))
    frame = frame.buffer(1000.0, join_style="mitre")
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(places), extend_to=frame, ordered=True)
    )
    if len(cells) != len(places):
        raise ValueError("xy: the Voronoi cells do not match the places (coincident points)")
    # Voronoi cells are an exact coverage, which merges fast; each turf is clipped once.
    merged = [shapely.coverage_union_all(cells[owner == label]) for label in range(k)]
    clipped = shapely.intersection(np.array(merged, dtype=object), district)
    return [shapely.normalize(polygonal_part(g)) for g in clipped]


def _places(xy, labels):
    """The distinct (spot, turf) pairs: their points and turf labels."""
    keys = np.unique(np.column_stack([xy, labels.astype(np.float64)]), axis=0)
    same_spot = np.r_[False, (keys[1:, :2] == keys[:-1, :2]).all(axis=1)]
    run_start = np.maximum.accumulate(np.where(same_spot, 0, np.arange(len(keys))))
    rank = np.arange(len(keys)) - run_start
    angle = rank * 2.399963  # the golden angle: copies spread round the spot
    radius = 0.5
    for _ in range(10):
        offset = np.where(rank > 0, radius, 0.0)[:, None]
        points = keys[:, :2] + offset * np.column_stack([np.cos(angle), np.sin(angle)])
        if len(np.unique(points, axis=0)) == len(points):
            break
        radius *= 0.7  # a moved copy landed on another address: try closer
    return points, keys[:, 2].astype(np.int64)


def polygonal_part(geom: BaseGeometry) -> BaseGeometry:
    """The polygons of ``geom`` only: a clip can leave stray lines or points.

    Parameters
    ----------
    geom : shapely geometry

    Returns
    -------
    shapely.Polygon or shapely.MultiPolygon
        Empty when ``geom`` holds no polygon.
    """
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    polys = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(polys) if polys else shapely.Polygon()


# -- walking order --------------------------------------------------------------------------


def walk_length(xy: np.ndarray) -> float:
    """The length in metres of a walk through ``xy`` (shape (n, 2), EPSG:3006) in order."""
    xy = np.asarray(xy, dtype=np.float64)
    if len(xy) < 2:
        return 0.0
    return float(np.hypot(*np.diff(xy, axis=0).T).sum())


def _number_key(number: str) -> tuple[int, str]:
    digits = ""
    for ch in number.strip():
        if not ch.isdigit():
            break
        digits += ch
    return (int(digits) if digits else _NO_NUMBER, number.strip().upper())


def _street_order(streets, numbers, n):
    """Street by street: up the odd side, back down the even side."""

    def key(i):
        num, text = _number_key(numbers[i] if numbers is not None else "")
        even = num != _NO_NUMBER and num % 2 == 0
        return (streets[i] if streets is not None else "", even, -num if even else num, text, i)

    return np.array(sorted(range(n), key=key), dtype=np.int64)


def walking_order(
    xy: np.ndarray,
    *,
    streets: Sequence[str] | None = None,
    numbers: Sequence[str] | None = None,
    max_rounds: int | None = None,
) -> np.ndarray:
    """An order to walk the addresses ``xy`` (shape (n, 2), EPSG:3006 metres) in.

    The first draft goes street by street (up the odd side, back down the even side); a
    nearest-neighbour walk from the same start replaces it when shorter; then 2-opt moves
    (reversing a stretch of the walk) shorten it while they can, best moves first.

    Parameters
    ----------
    xy : numpy.ndarray
        Shape (n, 2), metres.
    streets, numbers : sequence of str, optional
        Per address, for the first draft.
    max_rounds : int, optional
        The most rounds of 2-opt moves to make (default ``2 n``).

    Returns
    -------
    numpy.ndarray
        A permutation of ``range(n)``.
    """
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"xy: expected shape (n, 2), got {xy.shape}")
    n = len(xy)
    for name, seq in (("streets", streets), ("numbers", numbers)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name}: expected {n} values, got {len(seq)}")
    draft = _street_order(streets, numbers, n)
    if n < 3:
        return draft
    dist = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    nearest = _nearest_neighbour(dist, int(draft[0]))
    if _length(dist, nearest) < _length(dist, draft):
        draft = nearest
    return _two_opt(dist, draft, 2 * n if max_rounds is None else max_rounds)


def _length(dist, order):
    return float(dist[order[:-1], order[1:]].sum())


def _nearest_neighbour(dist, start):
    n = len(dist)
    left = dist.copy()
    order = np.empty(n, dtype=np.int64)
    here = start
    for step in range(n):
        order[step] = here
        left[:, here] = np.inf
        here = int(np.argmin(left[here]))
    return order


def _two_opt(dist, order, max_rounds):
    """2-opt on an open walk: reverse the stretches whose reversal saves the most, until
    nothing saves more than a centimetre.

    The walk is padded with a stop at no distance from any other at both ends, so that
    reversing its head or tail is an ordinary move. Each round takes, best first, every
    improving move whose stretch touches no other taken one (such moves do not change each
    other's savings)."""
    n = len(order)
    padded = np.zeros((n + 1, n + 1))
    padded[:n, :n] = dist
    path = np.concatenate([[n], order, [n]])
    m = n + 2
    lower = ~np.triu(np.ones((m - 1, m - 1), dtype=bool), 1)
    rows = np.arange(m - 1)
    for _ in range(max_rounds):
        d = padded[np.ix_(path, path)]
        step = np.diagonal(d, 1)
        # Reversing stops i+1..j: edges (i,i+1),(j,j+1) become (i,j),(i+1,j+1).
        gain = step[:, None] + step[None, :] - d[:-1, :-1] - d[1:, 1:]
        gain[lower] = 0.0
        best_j = gain.argmax(axis=1)
        best = gain[rows, best_j]
        candidates = np.flatnonzero(best > 0.01)
        if not len(candidates):
            break
        taken: list[tuple[int, int]] = []
        for i in candidates[np.argsort(-best[candidates], kind="stable")]:
            j = int(best_j[i])
            if all(j < a or i > b for a, b in taken):
                taken.append((int(i), j))
                path[i + 1 : j + 1] = path[i + 1 : j + 1][::-1]
    return path[1:-1]
