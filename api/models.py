"""All tables. Geometry is WKB in WGS84 (EPSG:4326) plus a bounding box, so that SQLite and
PostgreSQL store it alike without spatial extensions; areas are measured in EPSG:3006."""

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    LargeBinary,
    String,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlmodel import Field, SQLModel

__all__ = [
    "TurfStat",
    "VisitStatus",
    "Visit",
    "TurfLease",
    "TurfAddress",
    "Turf",
    "ElectionResult",
    "Address",
    "Campaign",
    "DailyGrain",
    "DailyStat",
    "UnitPeople",
    "UnitWindow",
    "EmailOutbox",
    "JobRun",
    "JobRunStatus",
    "JobState",
    "ContactAudit",
    "ContactKind",
    "ContactLog",
    "ContactTopic",
    "LogTally",
    "DeviceToken",
    "District",
    "DistrictAssignment",
    "Forening",
    "ForeningKind",
    "Kommun",
    "LoginCode",
    "OutboxStatus",
    "Outcome",
    "Partidistrikt",
    "Role",
    "Target",
    "Topic",
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

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime given; use an aware UTC datetime")
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def _ts(**kwargs) -> object:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, **kwargs)


class ForeningKind(StrEnum):
    geographic = "geographic"
    workplace = "workplace"


class UnitKind(StrEnum):
    partidistrikt = "partidistrikt"
    kommun = "kommun"
    forening = "forening"
    district = "district"
    turf = "turf"  # a walkable part of one district, cut from its addresses


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
    is_active: bool = Field(default=True, sa_column=Column(Boolean, nullable=False, default=True))
    nightly_email: bool = Field(
        default=True, sa_column=Column(Boolean, nullable=False, default=True)
    )
    invited_by_user_id: int | None = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = _ts()


class LoginCode(SQLModel, table=True):
    """A one-time sign-in code sent by email; only its hash is kept."""

    __tablename__ = "login_code"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    code_hash: str = Field(max_length=64)
    created_at: datetime = _ts(index=True)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    failed_attempts: int = 0
    # The address the code was asked from: the hourly limits count per client as well.
    client: str | None = Field(default=None, max_length=64, index=True)


class DeviceToken(SQLModel, table=True):
    """A long-lived bearer token for one device; only its hash is kept."""

    __tablename__ = "device_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    name: str = Field(max_length=100)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    created_at: datetime = _ts()
    last_used_at: datetime = _ts()
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_by_user_id: int | None = Field(default=None, foreign_key="app_user.id")


class ContactKind(StrEnum):
    door = "door"
    stall = "stall"  # a stall or street conversation, possibly several in one record
    phone = "phone"
    workplace = "workplace"


class Outcome(StrEnum):
    conversation = "conversation"
    not_home = "not_home"
    refused = "refused"
    no_access = "no_access"
    moved = "moved"
    wrong_number = "wrong_number"


class Topic(SQLModel, table=True):
    """A topic a conversation may raise; the list is configured by district admins."""

    code: str = Field(primary_key=True, max_length=40)
    label: str = Field(max_length=100)
    active: bool = Field(default=True, sa_column=Column(Boolean, nullable=False, default=True))


class ContactLog(SQLModel, table=True):
    """One logged contact. It names a place (district), never a person: there is no field
    for a voter's name, address, opinion or free text, by design."""

    __tablename__ = "contact_log"
    __table_args__ = (
        CheckConstraint("conversations >= 0", name="ck_contact_conversations"),
        CheckConstraint("quantity >= 1", name="ck_contact_quantity"),
        Index("ix_contact_log_kommun_day", "kommun_id", "day"),
        Index("ix_contact_log_district_day", "district_id", "day"),
        # The nightly job recomputes each changed (day, volunteer) pair.
        Index("ix_contact_log_day_user", "day", "user_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # The phone's own id for the record: applying it twice is a no-op.
    client_uuid: uuid.UUID = Field(sa_column=Column(Uuid, nullable=False, unique=True))
    body_hash: str = Field(max_length=64)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    district_id: int = Field(foreign_key="district.id")
    kommun_id: int = Field(foreign_key="kommun.id")
    # The author's förening when logging (workplace clubs log too), for per-förening counts.
    forening_id: int | None = Field(default=None, foreign_key="forening.id", index=True)
    kind: ContactKind = Field(sa_type=String(20))
    outcome: Outcome = Field(sa_type=String(20))
    # People met in this record: 1, or several for a stall; see api.contacts.rules.
    quantity: int = 1
    conversations: int
    new_member: bool = Field(sa_column=Column(Boolean, nullable=False))
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    # The campaign's local (Europe/Stockholm) date of occurred_at: the day it counts on.
    day: date
    received_at: datetime = _ts()
    # Set on every insert, correction and withdrawal: the nightly job's change marker.
    changed_at: datetime = _ts(index=True)
    withdrawn_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    withdrawn_by_user_id: int | None = Field(default=None, foreign_key="app_user.id")
    # The turf the door was in, if the volunteer walked one; never the address.
    turf_id: int | None = Field(default=None, foreign_key="turf.id", index=True)


class ContactTopic(SQLModel, table=True):
    __tablename__ = "contact_topic"

    contact_id: int = Field(foreign_key="contact_log.id", primary_key=True)
    topic: str = Field(foreign_key="topic.code", primary_key=True, max_length=40)


class LogTally(SQLModel, table=True):
    """The contact logs that count (not withdrawn), tallied per day, volunteer and place,
    always current: triggers on contact_log keep it, in the writing transaction, whichever
    path wrote (migration 0011_log_tally). Progress reads a live day's work here, a few
    hundred rows, instead of its thousands of logs. 0 stands for no förening or turf, so
    that the key has no NULLs and an upsert finds its row."""

    __tablename__ = "log_tally"
    __table_args__ = (
        # The primary key, led by the day, serves districts; these the other levels.
        Index("ix_log_tally_kommun_day", "kommun_id", "day"),
        Index("ix_log_tally_forening_day", "forening_id", "day"),
        Index("ix_log_tally_turf_day", "turf_id", "day"),
    )

    day: date = Field(primary_key=True)
    district_id: int = Field(primary_key=True)
    user_id: int = Field(primary_key=True)
    kommun_id: int = Field(primary_key=True)
    forening_id: int = Field(primary_key=True)  # 0: none
    turf_id: int = Field(primary_key=True)  # 0: none
    logs: int  # 0 once every log of the row is withdrawn: such a row counts nobody
    conversations: int
    doors: int
    new_members: int


class ContactAudit(SQLModel, table=True):
    """Who corrected or withdrew a contact log, and what changed."""

    __tablename__ = "contact_audit"

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact_log.id", index=True)
    user_id: int = Field(foreign_key="app_user.id")
    action: str = Field(max_length=20)  # corrected, withdrawn (creation is the log itself)
    changes: str  # JSON: {"field": [old, new]}; the fields hold no free text
    at: datetime = _ts()


class Campaign(SQLModel, table=True):
    """A campaign of one partidistrikt, ending on election day."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    partidistrikt_id: int = Field(foreign_key="partidistrikt.id", index=True)
    starts_on: date
    ends_on: date  # election day
    # How the expected pace is spread over the campaign: "linear", or "final_weeks", which
    # weights the last `pace_final_weeks` weeks by `pace_final_weight`.
    pace_curve: str = Field(default="linear", max_length=20)
    pace_final_weeks: int = 6
    pace_final_weight: float = 2.0
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
    # "direct", or how it was apportioned from the parent's target: voters, households, even
    basis: str = Field(default="direct", max_length=20)
    updated_at: datetime = _ts()


class DailyGrain(SQLModel, table=True):
    """The nightly snapshot at its finest grain: one volunteer's work in one district on
    one day. Every unit's figures (district, förening, kommun, partidistrikt, and distinct
    active volunteers) are sums over it, so one pass over the contact logs builds them all."""

    __tablename__ = "daily_grain"
    __table_args__ = (
        # user_id last: distinct active volunteers come from the index alone.
        Index("ix_daily_grain_kommun_day", "kommun_id", "day", "user_id"),
        Index("ix_daily_grain_forening_day", "forening_id", "day", "user_id"),
        Index("ix_daily_grain_district_day", "district_id", "day", "user_id"),
    )

    day: date = Field(primary_key=True)
    district_id: int = Field(primary_key=True)
    user_id: int = Field(primary_key=True)
    kommun_id: int
    forening_id: int | None = None  # the volunteer's förening
    contacts: int
    conversations: int
    doors: int
    new_members: int


class UnitPeople(SQLModel, table=True):
    """Each volunteer's last day of work per kommun and förening, from DailyGrain: a unit's
    people active since a day are then counted from a row per person, not per person-day."""

    __tablename__ = "unit_people"

    unit_kind: UnitKind = Field(sa_type=String(20), primary_key=True)
    unit_id: int = Field(primary_key=True)
    user_id: int = Field(primary_key=True, index=True)
    last_day: date


class DailyStat(SQLModel, table=True):
    """Daily totals per kommun and förening, rolled up from DailyGrain (whose rows are the
    districts' daily snapshot)."""

    __tablename__ = "daily_stat"
    __table_args__ = (
        # A unit's days, answered from the index alone on PostgreSQL.
        Index(
            "ix_daily_stat_unit_day",
            "unit_kind",
            "unit_id",
            "day",
            postgresql_include=["contacts", "conversations", "doors", "new_members"],
        ),
    )

    day: date = Field(primary_key=True)
    unit_kind: UnitKind = Field(sa_type=String(20), primary_key=True)
    unit_id: int = Field(primary_key=True)
    contacts: int
    conversations: int
    doors: int
    new_members: int
    volunteers: int  # distinct volunteers that day


class UnitWindow(SQLModel, table=True):
    """A kommun's or förening's figures over the snapshot days of one progress window,
    computed by the nightly job for the day after its night (api/progress/windows.py): a
    request that day adds the live logs to one row per unit instead of summing every day.
    Rebuilding the snapshots deletes them all."""

    __tablename__ = "unit_window"

    unit_kind: UnitKind = Field(sa_type=String(20), primary_key=True)
    starts_on: date = Field(primary_key=True)  # the campaign's first day
    through: date = Field(primary_key=True)  # the last day read from the snapshots
    last_day: date = Field(primary_key=True)  # today, or election day once it has passed
    unit_id: int = Field(primary_key=True)
    contacts: int
    conversations: int
    doors: int
    new_members: int
    # The same over the projection's recent days: [last_day - 14, last_day), from starts_on
    r_contacts: int
    r_conversations: int
    r_doors: int
    r_new_members: int
    people: int  # volunteers active in the unit from starts_on through ``through``
    people_30: int  # of them, active in the 30 days up to last_day


class JobRunStatus(StrEnum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class OutboxStatus(StrEnum):
    """pending -> sending -> sent | pending (4xx, retried later) | failed (5xx, or too many
    tries); lost: the sender died mid-send, never resent; skipped: opted out, inactive or no
    running campaign by the time it was sent."""

    pending = "pending"
    sending = "sending"
    sent = "sent"
    failed = "failed"
    lost = "lost"
    skipped = "skipped"


class JobState(SQLModel, table=True):
    """One row per scheduled job: which process runs it now (for operators; the lock itself
    is api/joblock.py's, which dies with the process), and how far it has processed.
    ``lease_until`` is no longer used."""

    __tablename__ = "job_state"

    name: str = Field(primary_key=True, max_length=60)
    holder: str | None = Field(default=None, max_length=120)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    watermark: datetime | None = Field(default=None, sa_type=UTCDateTime)


class JobRun(SQLModel, table=True):
    """Every run of a scheduled job: when, for which night, how many rows, what failed."""

    __tablename__ = "job_run"

    id: int | None = Field(default=None, primary_key=True)
    job: str = Field(max_length=60, index=True)
    for_day: date = Field(index=True)
    holder: str = Field(max_length=120)
    started_at: datetime = _ts()
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: str = Field(default=JobRunStatus.running, max_length=20)  # a JobRunStatus
    rows: int = 0
    error: str | None = None


class EmailOutbox(SQLModel, table=True):
    """One nightly email per recipient and day. A row is marked 'sending' and committed
    before the SMTP conversation, so a crash can lose an email but never send it twice."""

    __tablename__ = "email_outbox"
    __table_args__ = (UniqueConstraint("user_id", "day", "kind", name="uq_outbox_user_day"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    day: date = Field(index=True)
    kind: str = Field(max_length=40)
    status: str = Field(default=OutboxStatus.pending, max_length=20, index=True)  # OutboxStatus
    attempts: int = 0
    next_attempt_at: datetime = _ts()
    last_error: str | None = None
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = _ts()


# -- turfs: addresses, election baselines, turfs, leases and door visits --------------------


class Address(SQLModel, table=True):
    """An entrance where people live, with its number of households: a place, never a
    person (no resident's name, ever). Joined to the district it lies in at import."""

    __tablename__ = "address"

    id: int | None = Field(default=None, primary_key=True)
    # Stable across imports of newer files: the source's object id, or a normalised
    # street + number + letter + entrance + postcode; re-importing updates by it.
    key: str = Field(max_length=120, unique=True, index=True)
    district_id: int = Field(foreign_key="district.id", index=True)
    kommun_id: int = Field(foreign_key="kommun.id", index=True)
    street: str = Field(max_length=200)
    number: str = Field(default="", max_length=20)  # number and letter: "12B"
    entrance: str | None = Field(default=None, max_length=20)  # Lantmäteriet's lägestillägg
    postcode: str | None = Field(default=None, max_length=10)
    postort: str | None = Field(default=None, max_length=100)
    lon: float
    lat: float
    households: int = Field(default=1, ge=0)
    # Where the households figure came from: "file", "default" (1), or "lead" (edited; an
    # import never overwrites it).
    households_source: str = Field(default="default", max_length=20)
    # Set when a newer import no longer holds the address: reported, never deleted.
    missing_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class ElectionResult(SQLModel, table=True):
    """One election's result in one district: the baseline for priorities."""

    __tablename__ = "election_result"
    __table_args__ = (
        UniqueConstraint("election", "district_id", name="uq_election_result_district"),
    )

    id: int | None = Field(default=None, primary_key=True)
    election: str = Field(max_length=100, index=True)  # e.g. "Riksdag 2022"
    district_id: int = Field(foreign_key="district.id", index=True)
    eligible: int = Field(ge=0)  # RÖSTBERÄTTIGADE
    voted: int = Field(ge=0)  # RÖSTANDE
    valid: int = Field(ge=0)  # RÖSTER GILTIGA
    turnout: float  # 0..1
    votes: str  # JSON {party: votes}, as the file names the parties
    imported_at: datetime = _ts()


class Turf(SQLModel, table=True):
    """A part of one district cut for one walk: about N households, never across the
    district's border. A re-cut retires turfs without visits or a lease and keeps the rest."""

    __tablename__ = "turf"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=60, unique=True, index=True)  # "<district code>-<n>"
    district_id: int = Field(foreign_key="district.id", index=True)
    kommun_id: int = Field(foreign_key="kommun.id", index=True)
    households: int = Field(ge=0)
    address_count: int = Field(ge=0)
    walk_length_m: float = 0.0
    # Polygon (WGS84 WKB) covering the turf's part of the district, for the map.
    geom_wkb: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float
    # The short link a printed QR code carries: /t/<link_code>.
    link_code: str = Field(max_length=16, unique=True, index=True)
    created_at: datetime = _ts()
    retired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class TurfAddress(SQLModel, table=True):
    """An address in a turf, at its place in the walking order."""

    __tablename__ = "turf_address"

    turf_id: int = Field(foreign_key="turf.id", primary_key=True)
    address_id: int = Field(foreign_key="address.id", primary_key=True, index=True)
    position: int = Field(ge=1)


class TurfLease(SQLModel, table=True):
    """A turf checked out to one volunteer, or to one förening as a team, until it expires
    or is released. At most one live (unreleased) lease per turf."""

    __tablename__ = "turf_lease"
    __table_args__ = (
        Index(
            "uq_turf_lease_live",
            "turf_id",
            unique=True,
            sqlite_where=text("released_at IS NULL"),
            postgresql_where=text("released_at IS NULL"),
        ),
        CheckConstraint(
            "(user_id IS NULL) <> (forening_id IS NULL)", name="ck_turf_lease_one_holder"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    turf_id: int = Field(foreign_key="turf.id", index=True)
    user_id: int | None = Field(default=None, foreign_key="app_user.id", index=True)
    forening_id: int | None = Field(default=None, foreign_key="forening.id")
    leased_by_user_id: int | None = Field(default=None, foreign_key="app_user.id")
    leased_at: datetime = _ts()
    expires_at: datetime = Field(sa_type=UTCDateTime)
    released_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    released_by_user_id: int | None = Field(default=None, foreign_key="app_user.id")


class VisitStatus(StrEnum):
    """What a door visit records: only whether someone answered, never what was said."""

    answered = "answered"
    not_home = "not_home"
    no_access = "no_access"


class Visit(SQLModel, table=True):
    """A door knocked at an address in a turf: the day and a neutral status only. It names
    no person (not even the volunteer), holds no outcome, topic or new member, and nothing
    links it to a contact record; its exact time is not kept either, so that it cannot be
    matched to one by the clock."""

    __tablename__ = "visit"
    __table_args__ = (Index("ix_visit_turf_day", "turf_id", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    # The phone's id for the visit: applying it twice is a no-op.
    client_uuid: uuid.UUID = Field(sa_column=Column(Uuid, nullable=False, unique=True))
    address_id: int = Field(foreign_key="address.id", index=True)
    turf_id: int = Field(foreign_key="turf.id")
    status: VisitStatus = Field(sa_type=String(20))
    day: date  # the campaign's local day


class TurfStat(SQLModel, table=True):
    """The nightly snapshot of a turf's door-level coverage (rebuilt for the turfs whose
    visits or contact records changed): doors knocked against addresses and households,
    doors answered, conversations from the contact records naming the turf."""

    __tablename__ = "turf_stat"

    turf_id: int = Field(foreign_key="turf.id", primary_key=True)
    doors_knocked: int = 0  # distinct addresses with a visit
    households_knocked: int = 0  # the households of those addresses
    answered: int = 0  # distinct addresses with an answered visit
    conversations: int = 0
    last_visit: date | None = None
    built_at: datetime = _ts()
