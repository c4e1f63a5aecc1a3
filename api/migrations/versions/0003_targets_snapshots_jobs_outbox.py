"""targets, nightly snapshots, jobs and outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 14:21:45.519186
"""

from collections.abc import Sequence
from datetime import UTC
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _backfill_contact_days() -> None:
    """Existing logs get their Europe/Stockholm day, and their receipt time as change time."""
    bind = op.get_bind()
    log = sa.table(
        "contact_log",
        sa.column("id", sa.Integer),
        sa.column("occurred_at", sa.DateTime(True)),
        sa.column("received_at", sa.DateTime(True)),
        sa.column("day", sa.Date),
        sa.column("changed_at", sa.DateTime(True)),
    )
    zone = ZoneInfo("Europe/Stockholm")
    rows = bind.execute(sa.select(log.c.id, log.c.occurred_at, log.c.received_at)).all()
    for row in rows:
        occurred = (
            row.occurred_at if row.occurred_at.tzinfo else row.occurred_at.replace(tzinfo=UTC)
        )
        bind.execute(
            log.update()
            .where(log.c.id == row.id)
            .values(day=occurred.astimezone(zone).date(), changed_at=row.received_at)
        )


def upgrade() -> None:
    op.create_table(
        "daily_grain",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kommun_id", sa.Integer(), nullable=False),
        sa.Column("forening_id", sa.Integer(), nullable=True),
        sa.Column("contacts", sa.Integer(), nullable=False),
        sa.Column("conversations", sa.Integer(), nullable=False),
        sa.Column("doors", sa.Integer(), nullable=False),
        sa.Column("new_members", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "district_id", "user_id"),
    )
    op.create_index(
        "ix_daily_grain_district_day", "daily_grain", ["district_id", "day"], unique=False
    )
    op.create_index(
        "ix_daily_grain_forening_day", "daily_grain", ["forening_id", "day"], unique=False
    )
    op.create_index("ix_daily_grain_kommun_day", "daily_grain", ["kommun_id", "day"], unique=False)
    op.create_table(
        "daily_stat",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("unit_kind", sa.String(length=20), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("contacts", sa.Integer(), nullable=False),
        sa.Column("conversations", sa.Integer(), nullable=False),
        sa.Column("doors", sa.Integer(), nullable=False),
        sa.Column("new_members", sa.Integer(), nullable=False),
        sa.Column("volunteers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "unit_kind", "unit_id"),
    )
    op.create_table(
        "job_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job", sa.String(length=60), nullable=False),
        sa.Column("for_day", sa.Date(), nullable=False),
        sa.Column("holder", sa.String(length=120), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_job_run_for_day"), "job_run", ["for_day"], unique=False)
    op.create_index(op.f("ix_job_run_job"), "job_run", ["job"], unique=False)
    op.create_table(
        "job_state",
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("holder", sa.String(length=120), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("watermark", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "email_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "day", "kind", name="uq_outbox_user_day"),
    )
    op.create_index(op.f("ix_email_outbox_day"), "email_outbox", ["day"], unique=False)
    op.create_index(op.f("ix_email_outbox_status"), "email_outbox", ["status"], unique=False)
    op.create_index(op.f("ix_email_outbox_user_id"), "email_outbox", ["user_id"], unique=False)
    with op.batch_alter_table("app_user") as batch:
        batch.add_column(
            sa.Column("nightly_email", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    with op.batch_alter_table("campaign") as batch:
        batch.add_column(
            sa.Column("pace_curve", sa.String(length=20), nullable=False, server_default="linear")
        )
        batch.add_column(
            sa.Column("pace_final_weeks", sa.Integer(), nullable=False, server_default="6")
        )
        batch.add_column(
            sa.Column("pace_final_weight", sa.Float(), nullable=False, server_default="2.0")
        )
    with op.batch_alter_table("target") as batch:
        batch.add_column(
            sa.Column("basis", sa.String(length=20), nullable=False, server_default="direct")
        )
        batch.add_column(
            sa.Column(
                "updated_at",
                sa.DateTime(timezone=True),
                nullable=False,
                server_default=sa.func.current_timestamp(),
            )
        )
    with op.batch_alter_table("contact_log") as batch:
        batch.add_column(sa.Column("day", sa.Date(), nullable=True))
        batch.add_column(sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True))
    _backfill_contact_days()
    with op.batch_alter_table("contact_log") as batch:
        batch.alter_column("day", existing_type=sa.Date(), nullable=False)
        batch.alter_column("changed_at", existing_type=sa.DateTime(timezone=True), nullable=False)
    op.drop_index(op.f("ix_contact_log_district_occurred"), table_name="contact_log")
    op.drop_index(op.f("ix_contact_log_kommun_occurred"), table_name="contact_log")
    op.create_index(op.f("ix_contact_log_changed_at"), "contact_log", ["changed_at"], unique=False)
    op.create_index(op.f("ix_contact_log_day"), "contact_log", ["day"], unique=False)
    op.create_index(
        "ix_contact_log_district_day", "contact_log", ["district_id", "day"], unique=False
    )
    op.create_index("ix_contact_log_kommun_day", "contact_log", ["kommun_id", "day"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("target") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("basis")
    op.drop_index("ix_contact_log_kommun_day", table_name="contact_log")
    op.drop_index("ix_contact_log_district_day", table_name="contact_log")
    op.drop_index(op.f("ix_contact_log_day"), table_name="contact_log")
    op.drop_index(op.f("ix_contact_log_changed_at"), table_name="contact_log")
    op.create_index(
        op.f("ix_contact_log_kommun_occurred"),
        "contact_log",
        ["kommun_id", "occurred_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_contact_log_district_occurred"),
        "contact_log",
        ["district_id", "occurred_at"],
        unique=False,
    )
    with op.batch_alter_table("contact_log") as batch:
        batch.drop_column("changed_at")
        batch.drop_column("day")
    with op.batch_alter_table("campaign") as batch:
        batch.drop_column("pace_final_weight")
        batch.drop_column("pace_final_weeks")
        batch.drop_column("pace_curve")
    with op.batch_alter_table("app_user") as batch:
        batch.drop_column("nightly_email")
    op.drop_index(op.f("ix_email_outbox_user_id"), table_name="email_outbox")
    op.drop_index(op.f("ix_email_outbox_status"), table_name="email_outbox")
    op.drop_index(op.f("ix_email_outbox_day"), table_name="email_outbox")
    op.drop_table("email_outbox")
    op.drop_table("job_state")
    op.drop_index(op.f("ix_job_run_job"), table_name="job_run")
    op.drop_index(op.f("ix_job_run_for_day"), table_name="job_run")
    op.drop_table("job_run")
    op.drop_table("daily_stat")
    op.drop_index("ix_daily_grain_kommun_day", table_name="daily_grain")
    op.drop_index("ix_daily_grain_forening_day", table_name="daily_grain")
    op.drop_index("ix_daily_grain_district_day", table_name="daily_grain")
    op.drop_table("daily_grain")
