"""Pure geospatial helpers for Knacka. This package never imports ``api``."""

from geo.addresses import AddressFileError, AddressTable, join_districts, read_addresses
from geo.districts import (
    AREA_CRS,
    STORAGE_CRS,
    DistrictFileError,
    DistrictFileTooLarge,
    DistrictTable,
    read_districts,
)
from geo.isolated import DistrictReadTimeout, read_addresses_isolated, read_districts_isolated
from geo.locate import first_covering

__all__ = [
    "AREA_CRS",
    "STORAGE_CRS",
    "AddressFileError",
    "AddressTable",
    "DistrictFileError",
    "DistrictFileTooLarge",
    "DistrictReadTimeout",
    "DistrictTable",
    "first_covering",
    "join_districts",
    "read_addresses",
    "read_addresses_isolated",
    "read_districts",
    "read_districts_isolated",
]
