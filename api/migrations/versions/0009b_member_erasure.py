"""member erasure and course kinds: tombstones of erased members (a keyed hash of the
member number), the key they are hashed with when no setting gives one, and every course
occasion's participants, so that only grundkurs steg 1 counts as the basic course

Revision ID: 0009b_member_erasure
Revises: 0008_unit_people
Create Date: 2026-12-03 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009b_member_erasure"
down_revision: str | None = "0008_unit_people"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "member_erasure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number_hash", sa.String(length=64), nullable=False),
        sa.Column("erased_on", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number_hash"),
    )
    op.create_table(
        "member_erasure_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "course_participant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("forening_id", sa.Integer(), nullable=False),
        sa.Column("offered_on", sa.Date(), nullable=True),
        sa.Column("attended_on", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(["course_id"], ["course.id"]),
        sa.ForeignKeyConstraint(["forening_id"], ["forening.id"]),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("course_id", "member_id", name="uq_course_participant"),
    )
    with op.batch_alter_table("course_participant", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_course_participant_course_id"), ["course_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_course_participant_forening_id"), ["forening_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_course_participant_member_id"), ["member_id"], unique=False
        )
    # Every offer made so far was for one occasion: keep it as that occasion's participant.
    op.execute(
        "INSERT INTO course_participant (course_id, member_id, forening_id, offered_on, "
        "attended_on) SELECT course_id, member_id, forening_id, offered_on, attended_on "
        "FROM course_offer WHERE course_id IS NOT NULL"
    )
    # Before this revision an offer of any kind of course overwrote the member's basic-course
    # offer, keeping only the last occasion: one now naming another kind may still hide a
    # real basic-course offer or attendance before it, and nothing tells the two apart. Its
    # dates stay (counted as before) rather than erase what may be true; from now on only
    # a basic course sets them.


def downgrade() -> None:
    with op.batch_alter_table("course_participant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_course_participant_member_id"))
        batch_op.drop_index(batch_op.f("ix_course_participant_forening_id"))
        batch_op.drop_index(batch_op.f("ix_course_participant_course_id"))
    op.drop_table("course_participant")
    op.drop_table("member_erasure_key")
    op.drop_table("member_erasure")
