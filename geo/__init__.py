"""Pure geospatial helpers for Knacka. This package never imports ``api``."""

from geo.districts import (
    AREA_CRS,
    STORAGE_CRS,
    DistrictFileError,
    DistrictTable,
    read_districts,
)

__all__ = ["AREA_CRS", "STORAGE_CRS", "DistrictFileError", "DistrictTable", "read_districts"]
