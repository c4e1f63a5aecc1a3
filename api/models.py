"""All tables. Geometry is WKB in WGS84 (EPSG:4326) plus a bounding box, so that SQLite and
PostgreSQL store it alike without spatial extensions; areas are measured in EPSG:3006."""

from datetime import UTC, date, datetime
from enum import StrEnum

from sqlalchemy import Column, DateTime, LargeBinary, String, TypeDecorator, UniqueConstraint
from sqlmodel import Field, SQLModel

__all__ = [
    "Campaign",
    "District",
    "DistrictAssignment",
    "Forening",
    "ForeningKind",
    "Kommun",
    "Partidistrikt",
    "Role",
    "Target",
    "UnitKind",
    "User",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on both backends (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):  # noqa: ANN001
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime given; use an aware UTC datetime")
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value, dialect):  # noqa: ANN001
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def _ts(**kwargs) -> object:  # noqa: ANN003
    return Field(default_factory=utcnow, sa_type=UTCDateTime, **kwargs)


class ForeningKind(StrEnum):
    geographic = "geographic"
    workplace = "workplace"


class UnitKind(StrEnum):
    partidistrikt = "partidistrikt"
    kommun = "kommun"
    forening = "forening"
    district = "district"


class Role(StrEnum):
    volunteer = "volunteer"
    forening_lead = "forening_lead"
    kommun_lead = "kommun_lead"
    district_admin = "district_admin"


class Partidistrikt(SQLModel, table=True):
    """The party's county-level district, keyed by its two-digit län code."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=2, unique=True, index=True)
    name: str = Field(max_length=200)
    created_at: datetime = _ts()


class Kommun(SQLModel, table=True):
    """A kommun and its arbetarekommun, keyed by the four-digit SCB kommun code."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=4, unique=True, index=True)
    name: str = Field(max_length=200)
    partidistrikt_id: int = Field(foreign_key="partidistrikt.id", index=True)
    created_at: datetime = _ts()


class Forening(SQLModel, table=True):
    """An s-förening: geographic (holds districts) or a workplace club (holds none)."""

    __table_args__ = (UniqueConstraint("kommun_id", "name", name="uq_forening_kommun_name"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    kind: ForeningKind = Field(sa_type=String(20))
    kommun_id: int = Field(foreign_key="kommun.id", index=True)
    created_at: datetime = _ts()


class District(SQLModel, table=True):
    """A geographic district, in practice a valdistrikt (code ``Lkfv``)."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=40, unique=True, index=True)
    name: str = Field(max_length=200)
    kommun_id: int = Field(foreign_key="kommun.id", index=True)
    forening_id: int | None = Field(default=None, foreign_key="forening.id", index=True)
    geom_wkb: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # Bounding box in EPSG:4326 for cheap candidate filtering before exact tests in shapely.
    min_lon: float = Field(index=True)
    min_lat: float = Field(index=True)
    max_lon: float
    max_lat: float
    area_m2: float
    voters: int | None = Field(default=None, ge=0)
    households: int | None = Field(default=None, ge=0)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class DistrictAssignment(SQLModel, table=True):
    """One change of a district's förening: the assignment history."""

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id", index=True)
    from_forening_id: int | None = Field(default=None, foreign_key="forening.id")
    to_forening_id: int | None = Field(default=None, foreign_key="forening.id")
    changed_by_user_id: int | None = Field(default=None, foreign_key="app_user.id")
    # How the change was made (api, csv, cli, demo) while no signed-in user is known.
    via: str = Field(max_length=40)
    changed_at: datetime = _ts(index=True)


class User(SQLModel, table=True):
    """A volunteer or lead. Their role applies to one unit and everything below it."""

    __tablename__ = "app_user"  # "user" is reserved in PostgreSQL

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True, index=True)
    display_name: str = Field(max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    role: Role = Field(sa_type=String(20))
    unit_kind: UnitKind = Field(sa_type=String(20))
    unit_id: int
    created_at: datetime = _ts()


class Campaign(SQLModel, table=True):
    """A campaign of one partidistrikt, ending on election day."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    partidistrikt_id: int = Field(foreign_key="partidistrikt.id", index=True)
    starts_on: date
    ends_on: date
    created_at: datetime = _ts()


class Target(SQLModel, table=True):
    """A campaign's target for one metric in one unit; metrics are open-ended strings."""

    __table_args__ = (
        UniqueConstraint("campaign_id", "unit_kind", "unit_id", "metric", name="uq_target"),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True)
    unit_kind: UnitKind = Field(sa_type=String(20))
    unit_id: int
    metric: str = Field(max_length=60)
    value: int = Field(ge=0)
