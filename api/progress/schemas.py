"""Progress views."""

from datetime import date
from typing import Literal

from pydantic import BaseModel

from api.models import UnitKind

__all__ = ["ChildProgress", "DayFigures", "DoorCoverage", "MetricProgress", "UnitProgress"]

# done: target reached; on_track: at or above today's pace and projected to reach the
# target; at_risk: at or above today's pace but projected short of the target; behind:
# below today's pace; no_target: nothing to measure against.
Status = Literal["done", "on_track", "at_risk", "behind", "no_target"]


class MetricProgress(BaseModel):
    metric: str
    actual: int
    target: int | None
    share: float | None  # actual / target
    expected: float | None  # where the pace says the unit should be by today
    projected: float | None  # at election day, at the recent daily rate
    status: Status


class DayFigures(BaseModel):
    day: date
    contacts: int
    conversations: int
    doors: int
    new_members: int


class DoorCoverage(BaseModel):
    """A district's or turf's doors as of the last nightly run (api.turfs.coverage)."""

    doors_knocked: int  # addresses with a visit
    households: int  # in the unit's live turfs
    share: float | None  # of those households knocked; None without households


class UnitProgress(BaseModel):
    campaign_id: int
    unit_kind: UnitKind
    unit_id: int
    unit_name: str
    today: date
    days_left: int
    expected_share: float
    covered_through: date | None  # last night the snapshots were built for
    metrics: list[MetricProgress]
    active_volunteers_30d: int
    daily: list[DayFigures]
    coverage: DoorCoverage | None = None  # districts and turfs only


class ChildProgress(BaseModel):
    children_kind: UnitKind | None  # None for the lowest level, which has no children
    children: list[UnitProgress]
