"""Finding the district that holds a point."""

from collections.abc import Sequence

import shapely

__all__ = ["first_covering"]


def first_covering(lon: float, lat: float, wkbs: Sequence[bytes]) -> int | None:
    """Index of the first polygon that covers a point.

    Parameters
    ----------
    lon, lat : float
        The point in WGS84.
    wkbs : sequence of bytes
        Candidate polygons as WKB in WGS84, in the order of preference (a point on a shared
        border belongs to the first).

    Returns
    -------
    int or None
        The index into ``wkbs``, or None when no polygon covers the point.
    """
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise ValueError(f"point ({lon}, {lat}) is not longitude/latitude")
    if not wkbs:
        return None
    hits = shapely.covers(shapely.from_wkb(list(wkbs)), shapely.Point(lon, lat))
    found = hits.nonzero()[0]
    return int(found[0]) if len(found) else None
