"""Shapes of address imports and of addresses as the API shows them."""

from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from api.validation import control_character

__all__ = ["AddressImportOptions", "AddressImportSummary", "AddressRead", "HouseholdsUpdate"]


class AddressImportOptions(BaseModel):
    """How to read an address file; a column left as None uses Lantmäteriet's name."""

    crs: str | None = Field(default=None, max_length=100)
    key_column: str | None = Field(default=None, max_length=100)
    street_column: str | None = Field(default=None, max_length=100)
    number_column: str | None = Field(default=None, max_length=100)
    letter_column: str | None = Field(default=None, max_length=100)
    entrance_column: str | None = Field(default=None, max_length=100)
    postcode_column: str | None = Field(default=None, max_length=100)
    postort_column: str | None = Field(default=None, max_length=100)
    households_column: str | None = Field(default=None, max_length=100)
    x_column: str | None = Field(default=None, max_length=100)
    y_column: str | None = Field(default=None, max_length=100)

    @field_validator("*")
    @classmethod
    def _printable(cls, value: object) -> object:
        # "*" also reaches the route's own fields (dry_run): only text is checked here.
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("must not be empty")
            bad = control_character(value)
            if bad:
                raise ValueError(f"holds a control character {bad}")
        return value


class AddressImportSummary(BaseModel):
    dry_run: bool
    source_crs: str
    key_source: str
    features: int
    created: int
    updated: int
    unchanged: int
    # In the database for the kommuner touched, not in this file: marked, never deleted.
    missing: int
    missing_keys: list[str]
    # In the file, in no district (of the kommun given, or of those the caller leads).
    outside: int
    outside_rows: list[str]
    districts_without_addresses: list[str]
    kommuner: list[str]
    warnings: list[str]


class AddressRead(BaseModel):
    id: int
    key: str
    district_code: str
    street: str
    number: str
    entrance: str | None
    postcode: str | None
    postort: str | None
    lon: float
    lat: float
    households: int
    households_source: str
    missing_since: datetime | None


class HouseholdsUpdate(BaseModel):
    households: int = Field(ge=0, le=10_000)
