"""indexes for progress and the incremental nightly run

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 14:59:07.633976
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index(op.f("ix_contact_log_day"), table_name="contact_log")
    op.create_index("ix_contact_log_day_user", "contact_log", ["day", "user_id"], unique=False)
    op.drop_index(op.f("ix_daily_grain_district_day"), table_name="daily_grain")
    op.create_index(
        "ix_daily_grain_district_day",
        "daily_grain",
        ["district_id", "day", "user_id"],
        unique=False,
    )
    op.drop_index(op.f("ix_daily_grain_forening_day"), table_name="daily_grain")
    op.create_index(
        "ix_daily_grain_forening_day",
        "daily_grain",
        ["forening_id", "day", "user_id"],
        unique=False,
    )
    op.drop_index(op.f("ix_daily_grain_kommun_day"), table_name="daily_grain")
    op.create_index(
        "ix_daily_grain_kommun_day", "daily_grain", ["kommun_id", "day", "user_id"], unique=False
    )
    op.create_index(
        "ix_daily_stat_unit_day",
        "daily_stat",
        ["unit_kind", "unit_id", "day"],
        unique=False,
        postgresql_include=["contacts", "conversations", "doors", "new_members"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_daily_stat_unit_day",
        table_name="daily_stat",
        postgresql_include=["contacts", "conversations", "doors", "new_members"],
    )
    op.drop_index("ix_daily_grain_kommun_day", table_name="daily_grain")
    op.create_index(
        op.f("ix_daily_grain_kommun_day"), "daily_grain", ["kommun_id", "day"], unique=False
    )
    op.drop_index("ix_daily_grain_forening_day", table_name="daily_grain")
    op.create_index(
        op.f("ix_daily_grain_forening_day"), "daily_grain", ["forening_id", "day"], unique=False
    )
    op.drop_index("ix_daily_grain_district_day", table_name="daily_grain")
    op.create_index(
        op.f("ix_daily_grain_district_day"), "daily_grain", ["district_id", "day"], unique=False
    )
    op.drop_index("ix_contact_log_day_user", table_name="contact_log")
    op.create_index(op.f("ix_contact_log_day"), "contact_log", ["day"], unique=False)
