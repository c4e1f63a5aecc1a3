"""Shapes of election-result imports and district priorities."""

from pydantic import BaseModel

__all__ = ["PriorityRow", "ResultsImportSummary"]


class ResultsImportSummary(BaseModel):
    election: str
    rows: int
    districts_matched: int
    # District codes of the file that match no district (boundaries change between elections).
    codes_unknown: list[str]
    # The one "uppsamlingsdistrikt" row per kommun (district code 0): not a district.
    collection_rows_skipped: int
    parties: list[str]
    replaced: int
    dry_run: bool


class PriorityRow(BaseModel):
    rank: int
    district_code: str
    district_name: str
    eligible: int
    turnout: float
    party: str
    party_share: float
    # eligible × (1 − turnout) × party_share: the party's likely voters who stayed home.
    priority: float
    households_estimate: int | None
