"""Bodies for campaigns, targets and apportioning."""

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from api.models import UnitKind
from api.validation import Name

__all__ = [
    "ApportionRequest",
    "CampaignCreate",
    "CampaignRead",
    "Mismatch",
    "PERCENT_METRICS",
    "TargetRead",
    "TargetSet",
    "TargetTree",
]

Metric = str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CampaignCreate(_Strict):
    name: Name
    partidistrikt_id: int
    starts_on: date
    ends_on: date = Field(description="Election day")
    pace_curve: Literal["linear", "final_weeks"] = "linear"
    pace_final_weeks: int = Field(default=6, ge=1, le=52)
    pace_final_weight: float = Field(default=2.0, ge=1.0, le=10.0)

    @model_validator(mode="after")
    def _ordered(self) -> "CampaignCreate":
        if self.ends_on <= self.starts_on:
            raise ValueError("ends_on must be after starts_on")
        return self


class CampaignRead(BaseModel):
    id: int
    name: str
    partidistrikt_id: int
    starts_on: date
    ends_on: date
    pace_curve: str
    pace_final_weeks: int
    pace_final_weight: float


class _UnitRef(_Strict):
    """A unit named by its id, or a kommun or district by its code (``unit_code``)."""

    unit_id: int | None = Field(default=None, ge=0, le=2**63 - 1)
    unit_code: str | None = Field(
        default=None,
        max_length=40,
        description="Instead of unit_id: a kommun's four-digit SCB code, or a district's code",
    )

    @model_validator(mode="after")
    def _one_reference(self):
        if (self.unit_id is None) == (self.unit_code is None):
            raise ValueError("give exactly one of unit_id and unit_code")
        return self


# Targets in percent of a unit's own new members (api.members.progress): at most 100, and
# never split among children, whose shares are not parts of their parent's.
PERCENT_METRICS = frozenset({"new_members_contacted_7d", "new_members_attended_course"})


class TargetSet(_UnitRef):
    unit_kind: UnitKind
    metric: Metric = Field(pattern=r"^[a-z][a-z0-9_]{0,59}$")
    value: int = Field(ge=0, le=2**31 - 1)

    @field_validator("value")
    @classmethod
    def _percent_at_most_100(cls, value: int, info: ValidationInfo) -> int:
        if info.data.get("metric") in PERCENT_METRICS and value > 100:
            raise ValueError("a percentage: at most 100")
        return value


class TargetRead(BaseModel):
    unit_kind: UnitKind
    unit_id: int
    unit_name: str
    metric: str
    value: int
    basis: str


class ApportionRequest(_UnitRef):
    unit_kind: Literal["partidistrikt", "kommun", "forening"]
    metric: Metric = Field(pattern=r"^[a-z][a-z0-9_]{0,59}$")

    @field_validator("metric")
    @classmethod
    def _not_a_percentage(cls, metric: str) -> str:
        if metric in PERCENT_METRICS:
            raise ValueError("a percentage is not split among children: set each unit's own")
        return metric

    basis: Literal["auto", "voters", "households", "even"] = "auto"
    children: Literal["default", "districts"] = Field(
        default="default",
        description="partidistrikt: its kommuner; kommun: its geographic föreningar, or its "
        "districts; förening: its districts",
    )


class Mismatch(BaseModel):
    unit_kind: UnitKind
    unit_id: int
    unit_name: str
    metric: str
    target: int
    children_kind: UnitKind
    children_with_targets: int
    children_total: int
    children_sum: int
    difference: int  # children_sum - target


class TargetTree(BaseModel):
    targets: list[TargetRead]
    mismatches: list[Mismatch]
