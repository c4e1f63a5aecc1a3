"""What the map's GeoJSON carries, for the docs and the page's code alike."""

from typing import Any, Literal

from pydantic import BaseModel

__all__ = ["Feature", "FeatureCollection", "MAP_METRICS", "Zoom"]

# The choropleth's metrics: progress metrics with targets, then door coverage and priority.
MAP_METRICS = ("conversations", "doors", "new_members")

Zoom = int  # a web map zoom level, 4..18: it decides how much geometries are simplified


class Feature(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: str
    geometry: dict[str, Any] | None
    properties: dict[str, Any]


class FeatureCollection(BaseModel):
    """Districts (layer "district"), turfs ("turf"), addresses ("address") or outlines
    ("kommun", "partidistrikt"), in WGS84. District properties: code, name, kommun_code,
    forening (name or null), uncovered, progress per metric {actual, target, share,
    expected, status, pace (share / expected share)}, coverage (0..1 of households knocked,
    from the turf snapshots) and priority (eligible voters times the share who did not vote,
    from the latest election result; null without one)."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[Feature]
    meta: dict[str, Any] = {}
