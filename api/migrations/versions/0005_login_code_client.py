"""login codes remember the client address they were asked from

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("login_code") as batch:
        batch.add_column(sa.Column("client", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_login_code_client"), "login_code", ["client"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_login_code_client"), table_name="login_code")
    with op.batch_alter_table("login_code") as batch:
        batch.drop_column("client")
