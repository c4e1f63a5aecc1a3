"""Bodies and answers for turfs: leases, coverage and door visits. A visit carries an
address and a neutral status only; nothing about what was said there."""

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from api.models import VisitStatus

__all__ = [
    "Coverage",
    "LeaseIn",
    "LeaseRead",
    "TurfCode",
    "TurfRead",
    "VisitIn",
    "VisitResult",
]

# "<district code>-<n>": printable ASCII, as district codes are.
TurfCode = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60, pattern=r"^[ -~]+$")
]

CoverageStatus = Literal["not_started", "in_progress", "done"]


class Coverage(BaseModel):
    """Door-level coverage of a turf (or summed over a district's turfs)."""

    doors_knocked: int  # distinct addresses with a visit
    addresses: int
    households_knocked: int  # the households of those addresses
    households: int
    share: float | None  # households_knocked / households
    answered: int  # distinct addresses with an answered visit
    conversations: int  # from the contact records naming the turf
    last_visit: date | None
    # not_started: no visit; done: every address answered or visited at least twice.
    status: CoverageStatus


class LeaseRead(BaseModel):
    holder_kind: Literal["user", "forening"]
    # For leads of the turf: the volunteer's or förening's name. Anyone else sees "you"
    # for their own lease and otherwise the holder's förening only.
    holder: str | None
    forening: str | None
    expires_at: datetime


class TurfRead(BaseModel):
    code: str
    district_code: str
    households: int
    address_count: int
    walk_length_m: float
    coverage: Coverage
    lease: LeaseRead | None
    link_code: str


class LeaseIn(BaseModel):
    """A lead checks a turf out to one volunteer or one förening (a team)."""

    model_config = ConfigDict(extra="forbid")

    user_id: int | None = Field(default=None, ge=1)
    forening_id: int | None = Field(default=None, ge=1)
    days: int | None = Field(default=None, ge=1, le=365, description="Default: 14")

    @model_validator(mode="after")
    def _one_holder(self) -> "LeaseIn":
        if (self.user_id is None) == (self.forening_id is None):
            raise ValueError("give exactly one of user_id and forening_id")
        return self


class VisitIn(BaseModel):
    """One door knocked, as a phone syncs it beside its contact records."""

    model_config = ConfigDict(extra="forbid")

    client_uuid: UUID
    turf: TurfCode
    address_id: int = Field(ge=1, lt=2**63)
    status: VisitStatus
    occurred_at: AwareDatetime = Field(
        description="Only its local day is stored: a visit keeps no time of day"
    )


class VisitResult(BaseModel):
    index: int
    client_uuid: UUID | None
    status: Literal["created", "duplicate", "conflict", "invalid", "forbidden"]
    id: int | None = None
    errors: list[dict[str, str]] = []
