"""unit_people: each volunteer's last day of work per kommun and förening, so that counting
a unit's active people reads a row per person instead of one per person and day

Revision ID: 0008_unit_people
Revises: 0007_members
Create Date: 2026-12-03 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_unit_people"
down_revision: str | None = "0007_members"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "unit_people",
        sa.Column("unit_kind", sa.String(length=20), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("unit_kind", "unit_id", "user_id"),
    )
    with op.batch_alter_table("unit_people", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_unit_people_user_id"), ["user_id"], unique=False)
    # Filled from the snapshots already built, as the nightly job keeps it.
    for kind, column in (("forening", "forening_id"), ("kommun", "kommun_id")):
        op.execute(
            "INSERT INTO unit_people (unit_kind, unit_id, user_id, last_day) "
            f"SELECT '{kind}', {column}, user_id, MAX(day) FROM daily_grain "
            f"WHERE {column} IS NOT NULL GROUP BY {column}, user_id"
        )


def downgrade() -> None:
    with op.batch_alter_table("unit_people", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_unit_people_user_id"))
    op.drop_table("unit_people")
