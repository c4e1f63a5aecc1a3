"""Bodies for sign-in, devices and invitations."""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, StrictBool, StringConstraints

from api.models import Role, UnitKind
from api.validation import Name

__all__ = [
    "CodeRequest",
    "DeviceRead",
    "Invite",
    "Preferences",
    "TokenResponse",
    "UserRead",
]


class CodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    device_id: int


class DeviceRead(BaseModel):
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime
    revoked_at: datetime | None


class Invite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    display_name: Name
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()-]{6,20}$")] | None = None
    role: Role = Role.volunteer
    unit_kind: UnitKind = UnitKind.forening  # the unit a volunteer belongs to
    unit_id: int


class Preferences(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nightly_email: StrictBool


class UserRead(BaseModel):
    id: int
    email: str
    display_name: str
    phone: str | None
    role: Role
    unit_kind: UnitKind
    unit_id: int
    is_active: bool
    nightly_email: bool
    created_at: datetime
