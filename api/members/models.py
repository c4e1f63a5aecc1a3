"""Tables of the members domain: the party's member register (personal data about party
membership, GDPR Art. 9), new-member follow-up and call tasks, courses, callers and the
append-only audit log of every access to member data.

Only ``member`` holds a person's name, phone and email. Everything else names a member by
id at most, and keeps its förening and days, so that erasing a member (which deletes that
row and unlinks the rest) leaves every count unchanged."""

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Boolean, Column, Index, String, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from api.models import UTCDateTime, utcnow

__all__ = [
    "CallList",
    "CallerAssignment",
    "Course",
    "CourseOffer",
    "CourseParticipant",
    "Member",
    "MemberAttempt",
    "MemberAudit",
    "MemberErasure",
    "MemberErasureKey",
    "MemberStatus",
    "MemberTask",
    "TaskKind",
    "TaskOutcome",
]


def _ts(**kwargs) -> object:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, **kwargs)


class MemberStatus(StrEnum):
    active = "active"
    left = "left"


class TaskKind(StrEnum):
    followup = "followup"  # a new member's welcome call, due 7 days after joining
    call = "call"  # one member on a call list ("ring alla medlemmar")


class TaskOutcome(StrEnum):
    reached = "reached"
    no_answer = "no_answer"
    wrong_number = "wrong_number"
    wants_to_be_active = "wants_to_be_active"
    wants_course = "wants_course"


class Member(SQLModel, table=True):
    """A party member as the party's register exports them."""

    __tablename__ = "member"

    id: int | None = Field(default=None, primary_key=True)
    member_number: str = Field(max_length=40, unique=True, index=True)
    name: str = Field(max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=320)
    forening_id: int = Field(foreign_key="forening.id", index=True)
    kommun_id: int = Field(foreign_key="kommun.id", index=True)
    joined_on: date
    status: MemberStatus = Field(sa_type=String(10))
    left_on: date | None = None  # the day an import first saw them as left
    do_not_call: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, default=False)
    )
    # The volunteer account of the same person (same email, case-insensitive), if any.
    user_id: int | None = Field(default=None, foreign_key="app_user.id", index=True)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class CallList(SQLModel, table=True):
    """A calling campaign over the members of one förening or one kommun."""

    __tablename__ = "call_list"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    kommun_id: int = Field(foreign_key="kommun.id", index=True)
    forening_id: int | None = Field(default=None, foreign_key="forening.id", index=True)
    campaign_id: int | None = Field(default=None, foreign_key="campaign.id")
    # The retention clock starts here (the campaign's election day, or the list's own end).
    ends_on: date
    cooldown_hours: float = 4.0
    created_by_user_id: int | None = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = _ts()
    purged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class MemberTask(SQLModel, table=True):
    """One member to contact: a new member's follow-up, or an entry of a call list. A caller
    claims it (exclusively, until the claim expires) and logs outcomes; ``member_id`` is
    cleared when the member is erased, the rest stays for the counts."""

    __tablename__ = "member_task"
    __table_args__ = (
        UniqueConstraint("call_list_id", "member_id", name="uq_member_task_list_member"),
        Index(
            "uq_member_task_followup",
            "member_id",
            unique=True,
            sqlite_where=text("kind = 'followup'"),
            postgresql_where=text("kind = 'followup'"),
        ),
        # The open tasks of a kommun or förening, soonest due first: a page of a list
        # stops after its rows instead of sorting the whole kommun.
        *(
            Index(
                f"ix_member_task_open_{unit.split('_')[0]}",
                unit,
                "kind",
                "due_on",
                "id",
                sqlite_where=text("closed_at IS NULL"),
                postgresql_where=text("closed_at IS NULL"),
            )
            for unit in ("kommun_id", "forening_id")
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(sa_type=String(10))  # a TaskKind
    call_list_id: int | None = Field(default=None, foreign_key="call_list.id", index=True)
    member_id: int | None = Field(default=None, foreign_key="member.id", index=True)
    forening_id: int = Field(foreign_key="forening.id", index=True)
    kommun_id: int = Field(foreign_key="kommun.id")
    joined_on: date | None = None  # follow-ups: the day the member joined
    due_on: date | None = None  # follow-ups: joined_on + 7 days
    # A call-list entry's caller, when the list is split among callers.
    assigned_user_id: int | None = Field(default=None, foreign_key="app_user.id", index=True)
    claimed_by_user_id: int | None = Field(default=None, foreign_key="app_user.id")
    claim_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempts: int = 0
    outcome: str | None = Field(default=None, max_length=30)  # the last one logged
    contacted_on: date | None = None  # the first day the member was reached
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Set on tasks that did not need doing: a member who asked not to be called.
    skipped: str | None = Field(default=None, max_length=30)
    created_at: datetime = _ts()


class MemberAttempt(SQLModel, table=True):
    """One logged call attempt: who called, which task, the outcome, the day."""

    __tablename__ = "member_attempt"

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="member_task.id", index=True)
    member_id: int | None = Field(default=None, foreign_key="member.id", index=True)
    forening_id: int = Field(foreign_key="forening.id")
    user_id: int = Field(foreign_key="app_user.id")
    outcome: str = Field(max_length=30)
    day: date
    at: datetime = _ts()


class Course(SQLModel, table=True):
    """A course occasion (grundkurs steg 1 and others), held by a kommun or a förening."""

    __tablename__ = "course"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40)  # "grundkurs_1", ...
    name: str = Field(max_length=200)
    starts_on: date
    place: str = Field(max_length=200)
    kommun_id: int = Field(foreign_key="kommun.id", index=True)
    forening_id: int | None = Field(default=None, foreign_key="forening.id")
    created_at: datetime = _ts()


class CourseOffer(SQLModel, table=True):
    """A new member's basic-course offer (grundkurs steg 1 only: the plans' metric), due
    three months after joining; when it was made, for which occasion, and whether they
    attended. Other course kinds are recorded in ``course_participant`` alone."""

    __tablename__ = "course_offer"

    id: int | None = Field(default=None, primary_key=True)
    member_id: int | None = Field(default=None, foreign_key="member.id", unique=True)
    forening_id: int = Field(foreign_key="forening.id", index=True)
    kommun_id: int = Field(foreign_key="kommun.id")
    joined_on: date
    due_on: date
    offered_on: date | None = None
    course_id: int | None = Field(default=None, foreign_key="course.id", index=True)
    attended_on: date | None = None


class CourseParticipant(SQLModel, table=True):
    """A member offered or attending one course occasion, of any kind. ``member_id`` is
    cleared when the member is erased; the förening stays for the counts."""

    __tablename__ = "course_participant"
    __table_args__ = (UniqueConstraint("course_id", "member_id", name="uq_course_participant"),)

    id: int | None = Field(default=None, primary_key=True)
    course_id: int = Field(foreign_key="course.id", index=True)
    member_id: int | None = Field(default=None, foreign_key="member.id", index=True)
    forening_id: int = Field(foreign_key="forening.id", index=True)
    offered_on: date | None = None
    attended_on: date | None = None


class CallerAssignment(SQLModel, table=True):
    """A volunteer of a förening designated as a caller, by a lead: for a call list, or
    (``call_list_id`` empty) for the förening's new-member follow-ups."""

    __tablename__ = "caller_assignment"
    __table_args__ = (
        UniqueConstraint("user_id", "forening_id", "call_list_id", name="uq_caller_assignment"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    forening_id: int = Field(foreign_key="forening.id", index=True)
    call_list_id: int | None = Field(default=None, foreign_key="call_list.id", index=True)
    assigned_by_user_id: int | None = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = _ts()


class MemberAudit(SQLModel, table=True):
    """Append-only (a trigger refuses UPDATE and DELETE): who read, listed, exported,
    changed or erased member data, and when. It holds a member id at most, never their
    data; list reads record their unit and the number of members shown."""

    __tablename__ = "member_audit"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _ts(index=True)
    user_id: int | None = None  # None: an operator at the command line (no FK: kept forever)
    action: str = Field(max_length=30)  # list, read, export, erase, import, update, claim, ...
    member_id: int | None = Field(default=None, index=True)  # no FK: outlives the member
    forening_id: int | None = Field(default=None, index=True)
    kommun_id: int | None = Field(default=None, index=True)
    count: int = 1  # members shown or touched
    route: str = Field(default="", max_length=120)


class MemberErasure(SQLModel, table=True):
    """A tombstone of an erased member: a keyed hash (HMAC-SHA256) of their member number
    and the day, nothing else. A later import of the same number with a join date on or
    before that day is the same membership the party asked to erase: it is skipped and
    counted in the summary instead of bringing the person back (and counting them twice)."""

    __tablename__ = "member_erasure"

    id: int | None = Field(default=None, primary_key=True)
    number_hash: str = Field(max_length=64, unique=True)
    erased_on: date


class MemberErasureKey(SQLModel, table=True):
    """The tombstones' HMAC key when ``KNACKA_MEMBERS_ERASURE_KEY`` is not set: random, made
    once. (Set the setting in production, so that a copy of the database alone cannot test
    member numbers against the tombstones.)"""

    __tablename__ = "member_erasure_key"

    id: int = Field(default=1, primary_key=True)
    key: str = Field(max_length=64)
