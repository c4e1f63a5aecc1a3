"""Progress views."""

from datetime import date
from typing import Literal

from pydantic import BaseModel

from api.models import UnitKind

__all__ = ["DayFigures", "MetricProgress", "UnitProgress"]

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
