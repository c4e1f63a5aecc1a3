"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 14:00:22.769176
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "app_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("unit_kind", sa.String(length=20), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_app_user_email"), "app_user", ["email"], unique=True)
    op.create_table(
        "partidistrikt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=2), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_partidistrikt_code"), "partidistrikt", ["code"], unique=True)
    op.create_table(
        "campaign",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("partidistrikt_id", sa.Integer(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["partidistrikt_id"],
            ["partidistrikt.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_campaign_partidistrikt_id"), "campaign", ["partidistrikt_id"], unique=False
    )
    op.create_table(
        "kommun",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=4), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("partidistrikt_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["partidistrikt_id"],
            ["partidistrikt.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_kommun_code"), "kommun", ["code"], unique=True)
    op.create_index(
        op.f("ix_kommun_partidistrikt_id"), "kommun", ["partidistrikt_id"], unique=False
    )
    op.create_table(
        "forening",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("kommun_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["kommun_id"],
            ["kommun.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kommun_id", "name", name="uq_forening_kommun_name"),
    )
    op.create_index(op.f("ix_forening_kommun_id"), "forening", ["kommun_id"], unique=False)
    op.create_table(
        "target",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("unit_kind", sa.String(length=20), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=60), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("campaign_id", "unit_kind", "unit_id", "metric", name="uq_target"),
    )
    op.create_index(op.f("ix_target_campaign_id"), "target", ["campaign_id"], unique=False)
    op.create_table(
        "district",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kommun_id", sa.Integer(), nullable=False),
        sa.Column("forening_id", sa.Integer(), nullable=True),
        sa.Column("geom_wkb", sa.LargeBinary(), nullable=False),
        sa.Column("min_lon", sa.Float(), nullable=False),
        sa.Column("min_lat", sa.Float(), nullable=False),
        sa.Column("max_lon", sa.Float(), nullable=False),
        sa.Column("max_lat", sa.Float(), nullable=False),
        sa.Column("area_m2", sa.Float(), nullable=False),
        sa.Column("voters", sa.Integer(), nullable=True),
        sa.Column("households", sa.Integer(), nullable=True),
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
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_district_code"), "district", ["code"], unique=True)
    op.create_index(op.f("ix_district_forening_id"), "district", ["forening_id"], unique=False)
    op.create_index(op.f("ix_district_kommun_id"), "district", ["kommun_id"], unique=False)
    op.create_index(op.f("ix_district_min_lat"), "district", ["min_lat"], unique=False)
    op.create_index(op.f("ix_district_min_lon"), "district", ["min_lon"], unique=False)
    op.create_table(
        "districtassignment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("from_forening_id", sa.Integer(), nullable=True),
        sa.Column("to_forening_id", sa.Integer(), nullable=True),
        sa.Column("changed_by_user_id", sa.Integer(), nullable=True),
        sa.Column("via", sa.String(length=40), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["changed_by_user_id"],
            ["app_user.id"],
        ),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["district.id"],
        ),
        sa.ForeignKeyConstraint(
            ["from_forening_id"],
            ["forening.id"],
        ),
        sa.ForeignKeyConstraint(
            ["to_forening_id"],
            ["forening.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_districtassignment_changed_at"), "districtassignment", ["changed_at"], unique=False
    )
    op.create_index(
        op.f("ix_districtassignment_district_id"),
        "districtassignment",
        ["district_id"],
        unique=False,
    )


def downgrade() -> None:

    op.drop_index(op.f("ix_districtassignment_district_id"), table_name="districtassignment")
    op.drop_index(op.f("ix_districtassignment_changed_at"), table_name="districtassignment")
    op.drop_table("districtassignment")
    op.drop_index(op.f("ix_district_min_lon"), table_name="district")
    op.drop_index(op.f("ix_district_min_lat"), table_name="district")
    op.drop_index(op.f("ix_district_kommun_id"), table_name="district")
    op.drop_index(op.f("ix_district_forening_id"), table_name="district")
    op.drop_index(op.f("ix_district_code"), table_name="district")
    op.drop_table("district")
    op.drop_index(op.f("ix_target_campaign_id"), table_name="target")
    op.drop_table("target")
    op.drop_index(op.f("ix_forening_kommun_id"), table_name="forening")
    op.drop_table("forening")
    op.drop_index(op.f("ix_kommun_partidistrikt_id"), table_name="kommun")
    op.drop_index(op.f("ix_kommun_code"), table_name="kommun")
    op.drop_table("kommun")
    op.drop_index(op.f("ix_campaign_partidistrikt_id"), table_name="campaign")
    op.drop_table("campaign")
    op.drop_index(op.f("ix_partidistrikt_code"), table_name="partidistrikt")
    op.drop_table("partidistrikt")
    op.drop_index(op.f("ix_app_user_email"), table_name="app_user")
    op.drop_table("app_user")
