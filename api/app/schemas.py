"""What the app's own read endpoint answers: a turf's doors in walking order."""

from datetime import date
from typing import Any

from pydantic import BaseModel, Field

from api.models import VisitStatus

__all__ = ["Door", "TurfDoors"]


class Door(BaseModel):
    address_id: int
    position: int
    street: str
    number: str
    entrance: str | None
    households: int
    lon: float
    lat: float
    last_status: VisitStatus | None
    last_day: date | None


class TurfDoors(BaseModel):
    code: str
    geometry: dict[str, Any] = Field(description="The turf's polygon, a GeoJSON geometry")
    district_code: str
    households: int
    address_count: int
    doors: list[Door]
