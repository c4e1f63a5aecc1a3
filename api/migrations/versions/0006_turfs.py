"""turfs: addresses, election results, turfs, leases, visits

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 08:10:14.977512
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "address",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("kommun_id", sa.Integer(), nullable=False),
        sa.Column("street", sa.String(length=200), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("entrance", sa.String(length=20), nullable=True),
        sa.Column("postcode", sa.String(length=10), nullable=True),
        sa.Column("postort", sa.String(length=100), nullable=True),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("households", sa.Integer(), nullable=False),
        sa.Column("households_source", sa.String(length=20), nullable=False),
        sa.Column("missing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["district.id"],
        ),
        sa.ForeignKeyConstraint(
            ["kommun_id"],
            ["kommun.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("address", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_address_district_id"), ["district_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_address_key"), ["key"], unique=True)
        batch_op.create_index(batch_op.f("ix_address_kommun_id"), ["kommun_id"], unique=False)

    op.create_table(
        "election_result",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("election", sa.String(length=100), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("eligible", sa.Integer(), nullable=False),
        sa.Column("voted", sa.Integer(), nullable=False),
        sa.Column("valid", sa.Integer(), nullable=False),
        sa.Column("turnout", sa.Float(), nullable=False),
        sa.Column("votes", sa.String(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["district.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("election", "district_id", name="uq_election_result_district"),
    )
    with op.batch_alter_table("election_result", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_election_result_district_id"), ["district_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_election_result_election"), ["election"], unique=False)

    op.create_table(
        "turf",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=60), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("kommun_id", sa.Integer(), nullable=False),
        sa.Column("households", sa.Integer(), nullable=False),
        sa.Column("address_count", sa.Integer(), nullable=False),
        sa.Column("walk_length_m", sa.Float(), nullable=False),
        sa.Column("geom_wkb", sa.LargeBinary(), nullable=False),
        sa.Column("min_lon", sa.Float(), nullable=False),
        sa.Column("min_lat", sa.Float(), nullable=False),
        sa.Column("max_lon", sa.Float(), nullable=False),
        sa.Column("max_lat", sa.Float(), nullable=False),
        sa.Column("link_code", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["district.id"],
        ),
        sa.ForeignKeyConstraint(
            ["kommun_id"],
            ["kommun.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("turf", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_turf_code"), ["code"], unique=True)
        batch_op.create_index(batch_op.f("ix_turf_district_id"), ["district_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_turf_kommun_id"), ["kommun_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_turf_link_code"), ["link_code"], unique=True)

    op.create_table(
        "turf_address",
        sa.Column("turf_id", sa.Integer(), nullable=False),
        sa.Column("address_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["address_id"],
            ["address.id"],
        ),
        sa.ForeignKeyConstraint(
            ["turf_id"],
            ["turf.id"],
        ),
        sa.PrimaryKeyConstraint("turf_id", "address_id"),
    )
    with op.batch_alter_table("turf_address", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_turf_address_address_id"), ["address_id"], unique=False
        )

    op.create_table(
        "turf_lease",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("turf_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("forening_id", sa.Integer(), nullable=True),
        sa.Column("leased_by_user_id", sa.Integer(), nullable=True),
        sa.Column("leased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by_user_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(user_id IS NULL) <> (forening_id IS NULL)", name="ck_turf_lease_one_holder"
        ),
        sa.ForeignKeyConstraint(
            ["forening_id"],
            ["forening.id"],
        ),
        sa.ForeignKeyConstraint(
            ["leased_by_user_id"],
            ["app_user.id"],
        ),
        sa.ForeignKeyConstraint(
            ["released_by_user_id"],
            ["app_user.id"],
        ),
        sa.ForeignKeyConstraint(
            ["turf_id"],
            ["turf.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("turf_lease", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_turf_lease_turf_id"), ["turf_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_turf_lease_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            "uq_turf_lease_live",
            ["turf_id"],
            unique=True,
            sqlite_where=sa.text("released_at IS NULL"),
            postgresql_where=sa.text("released_at IS NULL"),
        )

    op.create_table(
        "visit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_uuid", sa.Uuid(), nullable=False),
        sa.Column("address_id", sa.Integer(), nullable=False),
        sa.Column("turf_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["address_id"],
            ["address.id"],
        ),
        sa.ForeignKeyConstraint(
            ["turf_id"],
            ["turf.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_uuid"),
    )
    with op.batch_alter_table("visit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_visit_address_id"), ["address_id"], unique=False)
        batch_op.create_index("ix_visit_turf_day", ["turf_id", "day"], unique=False)

    op.create_table(
        "turf_stat",
        sa.Column("turf_id", sa.Integer(), nullable=False),
        sa.Column("doors_knocked", sa.Integer(), nullable=False),
        sa.Column("households_knocked", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("conversations", sa.Integer(), nullable=False),
        sa.Column("last_visit", sa.Date(), nullable=True),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["turf_id"], ["turf.id"]),
        sa.PrimaryKeyConstraint("turf_id"),
    )
    with op.batch_alter_table("contact_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("turf_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_contact_log_turf_id"), ["turf_id"], unique=False)
        batch_op.create_foreign_key("fk_contact_log_turf", "turf", ["turf_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("contact_log", schema=None) as batch_op:
        batch_op.drop_constraint("fk_contact_log_turf", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_contact_log_turf_id"))
        batch_op.drop_column("turf_id")

    op.drop_table("turf_stat")
    with op.batch_alter_table("visit", schema=None) as batch_op:
        batch_op.drop_index("ix_visit_turf_day")
        batch_op.drop_index(batch_op.f("ix_visit_address_id"))

    op.drop_table("visit")
    with op.batch_alter_table("turf_lease", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_turf_lease_live",
            sqlite_where=sa.text("released_at IS NULL"),
            postgresql_where=sa.text("released_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_turf_lease_user_id"))
        batch_op.drop_index(batch_op.f("ix_turf_lease_turf_id"))

    op.drop_table("turf_lease")
    with op.batch_alter_table("turf_address", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_turf_address_address_id"))

    op.drop_table("turf_address")
    with op.batch_alter_table("turf", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_turf_link_code"))
        batch_op.drop_index(batch_op.f("ix_turf_kommun_id"))
        batch_op.drop_index(batch_op.f("ix_turf_district_id"))
        batch_op.drop_index(batch_op.f("ix_turf_code"))

    op.drop_table("turf")
    with op.batch_alter_table("election_result", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_election_result_election"))
        batch_op.drop_index(batch_op.f("ix_election_result_district_id"))

    op.drop_table("election_result")
    with op.batch_alter_table("address", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_address_kommun_id"))
        batch_op.drop_index(batch_op.f("ix_address_key"))
        batch_op.drop_index(batch_op.f("ix_address_district_id"))

    op.drop_table("address")
