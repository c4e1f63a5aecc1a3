"""Pure geospatial helpers for Knacka. This package never imports ``api``."""

from geo.districts import (
    AREA_CRS,
    STORAGE_CRS,
    DistrictFileError,
    DistrictTable,
    read_districts,
)
from geo.locate import first_covering

__all__ = [
    "AREA_CRS",
    "STORAGE_CRS",
    "DistrictFileError",
    "DistrictTable",
    "first_covering",
    "read_districts",
]
