"""Pure geospatial helpers for Knacka. This package never imports ``api``."""

from geo.districts import (
    AREA_CRS,
    STORAGE_CRS,
    DistrictFileError,
    DistrictFileTooLarge,
    DistrictTable,
    read_districts,
)
from geo.isolated import DistrictReadTimeout, read_districts_isolated
from geo.locate import first_covering

__all__ = [
    "AREA_CRS",
    "STORAGE_CRS",
    "DistrictFileError",
    "DistrictFileTooLarge",
    "DistrictReadTimeout",
    "DistrictTable",
    "first_covering",
    "read_districts",
    "read_districts_isolated",
]
