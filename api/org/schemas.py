"""Request and response bodies for partidistrikt, kommuner and s-föreningar."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from api.models import ForeningKind
from api.validation import KommunCode, LanCode, Name

__all__ = [
    "ForeningCreate",
    "ForeningRead",
    "ForeningUpdate",
    "KommunCreate",
    "KommunRead",
    "KommunUpdate",
    "PartidistriktCreate",
    "PartidistriktRead",
    "PartidistriktUpdate",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PartidistriktCreate(_Strict):
    code: LanCode
    name: Name


class PartidistriktUpdate(_Strict):
    name: Name | None = None


class PartidistriktRead(BaseModel):
    id: int
    code: str
    name: str
    created_at: datetime


class KommunCreate(_Strict):
    code: KommunCode
    name: Name
    partidistrikt_id: int


class KommunUpdate(_Strict):
    name: Name | None = None
    partidistrikt_id: int | None = None


class KommunRead(BaseModel):
    id: int
    code: str
    name: str
    partidistrikt_id: int
    created_at: datetime


class ForeningCreate(_Strict):
    name: Name
    kind: ForeningKind
    kommun_id: int


class ForeningUpdate(_Strict):
    name: Name | None = None
    kind: ForeningKind | None = None


class ForeningRead(BaseModel):
    id: int
    name: str
    kind: ForeningKind
    kommun_id: int
    district_count: int
    created_at: datetime
