"""Request and response bodies of the members domain."""

from datetime import date, datetime

from pydantic import BaseModel, Field

from api.members.models import TaskOutcome
from api.validation import Name

__all__ = [
    "AttendanceRequest",
    "AuditRead",
    "CallListCreate",
    "CallListProgress",
    "CallerCreate",
    "CallerRead",
    "CourseCreate",
    "CourseRead",
    "ImportError_",
    "MemberImportOptions",
    "MemberImportSummary",
    "MemberRead",
    "MemberUpdate",
    "MembersProgress",
    "OfferRequest",
    "OutcomeRequest",
    "TaskRead",
    "UnitMembers",
]


class MemberImportOptions(BaseModel):
    """Column names of the register's CSV export (its own headers differ by version)."""

    member_number_column: str = Field("member_number", max_length=100)
    name_column: str = Field("name", max_length=100)
    phone_column: str = Field("phone", max_length=100)
    email_column: str = Field("email", max_length=100)
    forening_column: str = Field("forening", max_length=100)
    kommun_column: str = Field("kommun", max_length=100)
    joined_column: str = Field("joined_on", max_length=100)
    status_column: str = Field("status", max_length=100)
    # The kommun (SCB code) förening names are looked up in when the file has no kommun column.
    kommun: str | None = Field(None, max_length=4)


class ImportError_(BaseModel):
    line: int
    field: str
    message: str


class MemberImportSummary(BaseModel):
    dry_run: bool  # true: nothing was written; the figures are what the import would do
    rows: int
    created: int
    updated: int
    unchanged: int
    left: int  # members the file marks as left for the first time
    new_members: int  # follow-ups (and course offers) created for members who joined recently
    linked_volunteers: int
    # Rows of members erased before (same number, joined before the erasure): skipped.
    erased: int
    erased_lines: list[int]  # the first 100
    # Members of the file's kommuner whom the file lacks: reported, never deleted.
    missing_from_file: int
    missing_member_ids: list[int]  # the first 100


class MemberRead(BaseModel):
    id: int
    member_number: str
    name: str
    phone: str | None
    email: str | None
    forening_id: int
    kommun_id: int
    joined_on: date
    status: str
    left_on: date | None
    do_not_call: bool
    user_id: int | None


class MemberUpdate(BaseModel):
    do_not_call: bool


class TaskRead(BaseModel):
    id: int
    kind: str
    call_list_id: int | None
    member_id: int | None
    member_name: str | None
    member_phone: str | None
    forening_id: int
    joined_on: date | None
    due_on: date | None
    overdue: bool
    assigned_user_id: int | None
    claimed_by_user_id: int | None
    claim_expires_at: datetime | None
    next_attempt_at: datetime | None
    attempts: int
    outcome: str | None
    contacted_on: date | None
    closed: bool
    skipped: str | None


class OutcomeRequest(BaseModel):
    outcome: TaskOutcome


class CourseCreate(BaseModel):
    kind: str = Field("grundkurs_1", min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$")
    name: Name
    starts_on: date
    place: Name
    kommun_id: int
    forening_id: int | None = None


class CourseRead(BaseModel):
    id: int
    kind: str
    name: str
    starts_on: date
    place: str
    kommun_id: int
    forening_id: int | None


class OfferRequest(BaseModel):
    member_ids: list[int] = Field(min_length=1, max_length=1000)


class AttendanceRequest(BaseModel):
    member_ids: list[int] = Field(min_length=1, max_length=1000)


class CallListCreate(BaseModel):
    name: Name
    forening_id: int | None = None
    kommun_id: int | None = None  # a whole kommun's members, instead of one förening's
    campaign_id: int | None = None
    ends_on: date | None = None  # default: the campaign's election day, else 90 days on
    cooldown_hours: float | None = Field(None, ge=0, le=24 * 30)
    caller_ids: list[int] = Field(default_factory=list, max_length=200)


class CallListProgress(BaseModel):
    id: int
    name: str
    kommun_id: int
    forening_id: int | None
    ends_on: date
    cooldown_hours: float
    total: int
    done: int
    reached: int
    open: int
    waiting: int  # no answer, cooling down before the next attempt
    do_not_call: int
    # Left to the other running list the member was already on (closed here, not called).
    on_other_list: int = 0
    by_outcome: dict[str, int]
    by_caller: dict[int, int]  # entries assigned per caller
    purged: bool


class CallerCreate(BaseModel):
    user_id: int
    forening_id: int
    call_list_id: int | None = None


class CallerRead(BaseModel):
    id: int
    user_id: int
    forening_id: int
    call_list_id: int | None


class AuditRead(BaseModel):
    id: int
    at: datetime
    user_id: int | None
    action: str
    member_id: int | None
    forening_id: int | None
    kommun_id: int | None
    count: int
    route: str


class UnitMembers(BaseModel):
    """A unit's new-member figures for a campaign year."""

    unit_kind: str
    unit_id: int
    unit_name: str
    new_members: int  # joined within the campaign's dates
    due: int  # whose week is over, or who were contacted already
    contacted_7d: int  # contacted within 7 days of joining
    contacted_late: int
    new_members_contacted_7d: float | None  # contacted_7d / due
    contacted_target: float  # the campaign target (default 1.0: every new member)
    course_due: int
    offered_3m: int
    new_members_offered_course_3m: float | None  # offered_3m / course_due
    attended: int
    new_members_attended_course: float | None  # attended / new_members
    attended_target: float  # the campaign target (default 0.25)


class MembersProgress(BaseModel):
    unit: UnitMembers
    children_kind: str | None
    children: list[UnitMembers]
