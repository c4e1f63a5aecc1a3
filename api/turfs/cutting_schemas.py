"""Request and answer of cutting districts into turfs."""

from pydantic import BaseModel, Field, model_validator

__all__ = ["CutRequest", "CutSummary", "DistrictCutSummary"]

MAX_TURF_HOUSEHOLDS = 10_000


class CutRequest(BaseModel):
    """What to cut: one district, every district of a förening, or of a kommun."""

    district: str | None = Field(default=None, max_length=40, description="a district's code")
    forening_id: int | None = Field(default=None, ge=1, lt=2**63)
    kommun: str | None = Field(default=None, max_length=10, description="a kommun's code")
    households: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TURF_HOUSEHOLDS,
        description="households per turf; KNACKA_TURF_HOUSEHOLDS when left out",
    )

    @model_validator(mode="after")
    def _one_scope(self) -> "CutRequest":
        given = [k for k in ("district", "forening_id", "kommun") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of district, forening_id and kommun")
        return self


class DistrictCutSummary(BaseModel):
    district: str
    addresses: int
    households: int
    created: int
    kept: int
    retired: int
    # Among the turfs created: the most households in one, and that over the target.
    max_households: int | None
    max_over_target: float | None
    walk_length_m: float  # the new turfs' walks together
    max_walk_length_m: float | None
    turfs: list[str]  # the new turfs' codes


class CutSummary(BaseModel):
    target: int
    created: int
    kept: int
    retired: int
    max_over_target: float | None
    walk_length_m: float
    districts: list[DistrictCutSummary]
