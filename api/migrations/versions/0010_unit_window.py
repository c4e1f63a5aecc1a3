"""unit_window: each kommun's and förening's figures over the snapshot days of the next
day's progress window, which the nightly job computes so that a request adds the live logs
to one row per unit instead of summing every day and every volunteer

Revision ID: 0010_unit_window
Revises: 0009b_member_erasure
Create Date: 2026-12-04 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_unit_window"
down_revision: str | None = "0009b_member_erasure"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FIGURES = (
    "contacts",
    "conversations",
    "doors",
    "new_members",
    "r_contacts",
    "r_conversations",
    "r_doors",
    "r_new_members",
    "people",
    "people_30",
)


def upgrade() -> None:
    # Empty until the next nightly run: progress reads the snapshots meanwhile.
    op.create_table(
        "unit_window",
        sa.Column("unit_kind", sa.String(length=20), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("through", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in _FIGURES),
        sa.PrimaryKeyConstraint("unit_kind", "starts_on", "through", "last_day", "unit_id"),
    )


def downgrade() -> None:
    op.drop_table("unit_window")
