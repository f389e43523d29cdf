"""account cancellation: pending cancellations and the hashes of cancelled people's former identities

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa


revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_cancellations",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_pending_cancellations_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_pending_cancellations")),
    )
    op.create_table(
        "former_identities",
        sa.Column("value_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_former_identities_user_id_users")),
        sa.PrimaryKeyConstraint("value_sha256", "user_id", name=op.f("pk_former_identities")),
    )
    with op.batch_alter_table("former_identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_former_identities_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("former_identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_former_identities_user_id"))
    op.drop_table("former_identities")
    op.drop_table("pending_cancellations")
