"""accounts, devices and contact logs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 14:13:43.792457
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "topic",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "device_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by_user_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["revoked_by_user_id"],
            ["app_user.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_device_token_token_hash"), "device_token", ["token_hash"], unique=True)
    op.create_index(op.f("ix_device_token_user_id"), "device_token", ["user_id"], unique=False)
    op.create_table(
        "login_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_login_code_created_at"), "login_code", ["created_at"], unique=False)
    op.create_index(op.f("ix_login_code_user_id"), "login_code", ["user_id"], unique=False)
    op.create_table(
        "contact_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_uuid", sa.Uuid(), nullable=False),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("kommun_id", sa.Integer(), nullable=False),
        sa.Column("forening_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("conversations", sa.Integer(), nullable=False),
        sa.Column("new_member", sa.Boolean(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_by_user_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("conversations >= 0", name="ck_contact_conversations"),
        sa.CheckConstraint("quantity >= 1", name="ck_contact_quantity"),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["district.id"],
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
            ["user_id"],
            ["app_user.id"],
        ),
        sa.ForeignKeyConstraint(
            ["withdrawn_by_user_id"],
            ["app_user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_uuid"),
    )
    op.create_index(
        "ix_contact_log_district_occurred",
        "contact_log",
        ["district_id", "occurred_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_contact_log_forening_id"), "contact_log", ["forening_id"], unique=False
    )
    op.create_index(
        "ix_contact_log_kommun_occurred", "contact_log", ["kommun_id", "occurred_at"], unique=False
    )
    op.create_index(op.f("ix_contact_log_user_id"), "contact_log", ["user_id"], unique=False)
    op.create_table(
        "contact_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("changes", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact_log.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_contact_audit_contact_id"), "contact_audit", ["contact_id"], unique=False
    )
    op.create_table(
        "contact_topic",
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("topic", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact_log.id"],
        ),
        sa.ForeignKeyConstraint(
            ["topic"],
            ["topic.code"],
        ),
        sa.PrimaryKeyConstraint("contact_id", "topic"),
    )
    with op.batch_alter_table("app_user") as batch:
        batch.add_column(
            sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("invited_by_user_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_app_user_invited_by", "app_user", ["invited_by_user_id"], ["id"]
        )
    topic = sa.table(
        "topic",
        sa.column("code", sa.String),
        sa.column("label", sa.String),
        sa.column("active", sa.Boolean),
    )
    op.bulk_insert(
        topic,
        [
            {"code": code, "label": label, "active": True}
            for code, label in [
                ("healthcare", "Vården"),
                ("jobs", "Jobb"),
                ("climate", "Klimatet"),
                ("elder_care", "Äldreomsorgen"),
                ("safety", "Trygghet"),
                ("schools", "Skolan"),
                ("housing", "Bostäder"),
            ]
        ],
    )


def downgrade() -> None:
    with op.batch_alter_table("app_user") as batch:
        batch.drop_constraint("fk_app_user_invited_by", type_="foreignkey")
        batch.drop_column("invited_by_user_id")
        batch.drop_column("is_active")
    op.drop_table("contact_topic")
    op.drop_index(op.f("ix_contact_audit_contact_id"), table_name="contact_audit")
    op.drop_table("contact_audit")
    op.drop_index(op.f("ix_contact_log_user_id"), table_name="contact_log")
    op.drop_index("ix_contact_log_kommun_occurred", table_name="contact_log")
    op.drop_index(op.f("ix_contact_log_forening_id"), table_name="contact_log")
    op.drop_index("ix_contact_log_district_occurred", table_name="contact_log")
    op.drop_table("contact_log")
    op.drop_index(op.f("ix_login_code_user_id"), table_name="login_code")
    op.drop_index(op.f("ix_login_code_created_at"), table_name="login_code")
    op.drop_table("login_code")
    op.drop_index(op.f("ix_device_token_user_id"), table_name="device_token")
    op.drop_index(op.f("ix_device_token_token_hash"), table_name="device_token")
    op.drop_table("device_token")
    op.drop_table("topic")
