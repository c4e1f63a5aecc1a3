"""members: the member register, follow-up and call tasks, call lists, courses, callers,
and the append-only member audit log

Revision ID: 0007_members
Revises: 0006
Create Date: 2026-12-03 08:27:23.336393
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_members"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "member_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("forening_id", sa.Integer(), nullable=True),
        sa.Column("kommun_id", sa.Integer(), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("route", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("member_audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_member_audit_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_member_audit_forening_id"), ["forening_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_member_audit_kommun_id"), ["kommun_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_member_audit_member_id"), ["member_id"], unique=False)

    op.create_table(
        "call_list",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kommun_id", sa.Integer(), nullable=False),
        sa.Column("forening_id", sa.Integer(), nullable=True),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("cooldown_hours", sa.Float(), nullable=False),
        sa.Column("created_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign.id"],
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["app_user.id"],
        ),
        sa.ForeignKeyConstraint(
            ["forening_id"],
            ["forening.id"],
        ),
        sa.ForeignKeyConstraint(
            ["kommun_id"],
            ["kommun.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("call_list", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_call_list_forening_id"), ["forening_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_call_list_kommun_id"), ["kommun_id"], unique=False)

    op.create_table(
        "course",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("place", sa.String(length=200), nullable=False),
        sa.Column("kommun_id", sa.Integer(), nullable=False),
        sa.Column("forening_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["forening_id"],
            ["forening.id"],
        ),
        sa.ForeignKeyConstraint(
            ["kommun_id"],
            ["kommun.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("course", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_course_kommun_id"), ["kommun_id"], unique=False)

    op.create_table(
        "member",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_number", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("forening_id", sa.Integer(), nullable=False),
        sa.Column("kommun_id", sa.Integer(), nullable=False),
        sa.Column("joined_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("left_on", sa.Date(), nullable=True),
        sa.Column("do_not_call", sa.Boolean(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["forening_id"],
            ["forening.id"],
        ),
        sa.ForeignKeyConstraint(
            ["kommun_id"],
            ["kommun.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_member_forening_id"), ["forening_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_member_kommun_id"), ["kommun_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_member_member_number"), ["member_number"], unique=True)
        batch_op.create_index(batch_op.f("ix_member_user_id"), ["user_id"], unique=False)

    op.create_table(
        "caller_assignment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("forening_id", sa.Integer(), nullable=False),
        sa.Column("call_list_id", sa.Integer(), nullable=True),
        sa.Column("assigned_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assigned_by_user_id"],
            ["app_user.id"],
        ),
        sa.ForeignKeyConstraint(
            ["call_list_id"],
            ["call_list.id"],
        ),
        sa.ForeignKeyConstraint(
            ["forening_id"],
            ["forening.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "forening_id", "call_list_id", name="uq_caller_assignment"),
    )
    with op.batch_alter_table("caller_assignment", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_caller_assignment_call_list_id"), ["call_list_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_caller_assignment_forening_id"), ["forening_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_caller_assignment_user_id"), ["user_id"], unique=False)

    op.create_table(
        "course_offer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("forening_id", sa.Integer(), nullable=False),
        sa.Column("kommun_id", sa.Integer(), nullable=False),
        sa.Column("joined_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("offered_on", sa.Date(), nullable=True),
        sa.Column("course_id", sa.Integer(), nullable=True),
        sa.Column("attended_on", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["course.id"],
        ),
        sa.ForeignKeyConstraint(
            ["forening_id"],
            ["forening.id"],
        ),
        sa.ForeignKeyConstraint(
            ["kommun_id"],
            ["kommun.id"],
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["member.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("member_id"),
    )
    with op.batch_alter_table("course_offer", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_course_offer_course_id"), ["course_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_course_offer_forening_id"), ["forening_id"], unique=False
        )

    op.create_table(
        "member_task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("call_list_id", sa.Integer(), nullable=True),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("forening_id", sa.Integer(), nullable=False),
        sa.Column("kommun_id", sa.Integer(), nullable=False),
        sa.Column("joined_on", sa.Date(), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("assigned_user_id", sa.Integer(), nullable=True),
        sa.Column("claimed_by_user_id", sa.Integer(), nullable=True),
        sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=30), nullable=True),
        sa.Column("contacted_on", sa.Date(), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("skipped", sa.String(length=30), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assigned_user_id"],
            ["app_user.id"],
        ),
        sa.ForeignKeyConstraint(
            ["call_list_id"],
            ["call_list.id"],
        ),
        sa.ForeignKeyConstraint(
            ["claimed_by_user_id"],
            ["app_user.id"],
        ),
        sa.ForeignKeyConstraint(
            ["forening_id"],
            ["forening.id"],
        ),
        sa.ForeignKeyConstraint(
            ["kommun_id"],
            ["kommun.id"],
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["member.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_list_id", "member_id", name="uq_member_task_list_member"),
    )
    with op.batch_alter_table("member_task", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_member_task_assigned_user_id"), ["assigned_user_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_member_task_call_list_id"), ["call_list_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_member_task_forening_id"), ["forening_id"], unique=False
        )
        for name, unit in (
            ("ix_member_task_open_kommun", "kommun_id"),
            ("ix_member_task_open_forening", "forening_id"),
        ):
            batch_op.create_index(
                name,
                [unit, "kind", "due_on", "id"],
                unique=False,
                sqlite_where=sa.text("closed_at IS NULL"),
                postgresql_where=sa.text("closed_at IS NULL"),
            )
        batch_op.create_index(batch_op.f("ix_member_task_member_id"), ["member_id"], unique=False)
        batch_op.create_index(
            "uq_member_task_followup",
            ["member_id"],
            unique=True,
            sqlite_where=sa.text("kind = 'followup'"),
            postgresql_where=sa.text("kind = 'followup'"),
        )

    op.create_table(
        "member_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("forening_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=30), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["forening_id"],
            ["forening.id"],
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["member.id"],
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["member_task.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("member_attempt", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_member_attempt_member_id"), ["member_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_member_attempt_task_id"), ["task_id"], unique=False)

    # The audit log is append-only: the database itself refuses to change or delete a row.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION member_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'member_audit is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER member_audit_append_only BEFORE UPDATE OR DELETE ON member_audit "
            "FOR EACH ROW EXECUTE FUNCTION member_audit_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER member_audit_no_{event.lower()} BEFORE {event} ON member_audit "
                "BEGIN SELECT RAISE(ABORT, 'member_audit is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS member_audit_append_only ON member_audit")
        op.execute("DROP FUNCTION IF EXISTS member_audit_append_only()")
    with op.batch_alter_table("member_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_attempt_task_id"))
        batch_op.drop_index(batch_op.f("ix_member_attempt_member_id"))

    op.drop_table("member_attempt")
    with op.batch_alter_table("member_task", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_member_task_followup",
            sqlite_where=sa.text("kind = 'followup'"),
            postgresql_where=sa.text("kind = 'followup'"),
        )
        batch_op.drop_index(batch_op.f("ix_member_task_member_id"))
        batch_op.drop_index("ix_member_task_open_kommun")
        batch_op.drop_index("ix_member_task_open_forening")
        batch_op.drop_index(batch_op.f("ix_member_task_forening_id"))
        batch_op.drop_index(batch_op.f("ix_member_task_call_list_id"))
        batch_op.drop_index(batch_op.f("ix_member_task_assigned_user_id"))

    op.drop_table("member_task")
    with op.batch_alter_table("course_offer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_course_offer_forening_id"))
        batch_op.drop_index(batch_op.f("ix_course_offer_course_id"))

    op.drop_table("course_offer")
    with op.batch_alter_table("caller_assignment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_caller_assignment_user_id"))
        batch_op.drop_index(batch_op.f("ix_caller_assignment_forening_id"))
        batch_op.drop_index(batch_op.f("ix_caller_assignment_call_list_id"))

    op.drop_table("caller_assignment")
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_user_id"))
        batch_op.drop_index(batch_op.f("ix_member_member_number"))
        batch_op.drop_index(batch_op.f("ix_member_kommun_id"))
        batch_op.drop_index(batch_op.f("ix_member_forening_id"))

    op.drop_table("member")
    with op.batch_alter_table("course", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_course_kommun_id"))

    op.drop_table("course")
    with op.batch_alter_table("call_list", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_list_kommun_id"))
        batch_op.drop_index(batch_op.f("ix_call_list_forening_id"))

    op.drop_table("call_list")
    with op.batch_alter_table("member_audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_audit_member_id"))
        batch_op.drop_index(batch_op.f("ix_member_audit_kommun_id"))
        batch_op.drop_index(batch_op.f("ix_member_audit_forening_id"))
        batch_op.drop_index(batch_op.f("ix_member_audit_at"))

    op.drop_table("member_audit")
