"""Request and response bodies for districts, their import and their assignment."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from api.validation import Name

__all__ = [
    "AssignmentRead",
    "AssignRequest",
    "BulkAssignResult",
    "BulkAssignRow",
    "CoverageRow",
    "DistrictRead",
    "ImportOptions",
    "ImportSummary",
    "KommunTouched",
    "RepairedFeature",
]


class DistrictRead(BaseModel):
    id: int
    code: str
    name: str
    kommun_code: str
    forening_id: int | None
    area_m2: float
    voters: int | None
    households: int | None
    # A list, not a tuple: schema tools (the fuzzer among them) misread a tuple's prefixItems.
    bbox: list[float] = Field(min_length=4, max_length=4, description="west, south, east, north")
    updated_at: datetime


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    forening_id: int | None


class AssignmentRead(BaseModel):
    district_code: str
    from_forening_id: int | None
    to_forening_id: int | None
    changed_by_user_id: int | None
    via: str
    changed_at: datetime


class BulkAssignRow(BaseModel):
    line: int
    district_code: str
    forening_id: int | None
    status: str  # assigned, unassigned or unchanged


class BulkAssignResult(BaseModel):
    rows: int
    changed: int
    unchanged: int
    results: list[BulkAssignRow]


class ImportOptions(BaseModel):
    """How to read a district file; the defaults fit Valmyndigheten's valdistrikt files."""

    model_config = ConfigDict(extra="forbid")

    crs: Name | None = None
    code_column: Name = "Lkfv"
    name_column: Name = "Vdnamn"
    kommun_column: Name | None = None
    voters_column: Name | None = None
    households_column: Name | None = None


class RepairedFeature(BaseModel):
    code: str
    reason: str


class KommunTouched(BaseModel):
    code: str
    name: str
    districts_in_file: int


class ImportSummary(BaseModel):
    dry_run: bool
    source_crs: str
    features: int
    created: int
    updated: int
    unchanged: int
    missing_from_file: list[str]
    kommuner: list[KommunTouched]
    created_codes: list[str]
    updated_codes: list[str]
    repaired: list[RepairedFeature]
    warnings: list[str]


class CoverageRow(BaseModel):
    kommun_code: str
    kommun_name: str
    districts: int
    assigned: int
    uncovered: int
