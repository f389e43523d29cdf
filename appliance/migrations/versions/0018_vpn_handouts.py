"""the VPN configurations people collected for their phones

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-08
"""

from alembic import op
import sqlalchemy as sa


revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vpn_handouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("config_sha256", sa.String(length=64), nullable=False),
        sa.Column("handed_out_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_vpn_handouts_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vpn_handouts")),
        sa.UniqueConstraint("user_id", "config_sha256", name=op.f("uq_vpn_handouts_user_id")),
    )
    with op.batch_alter_table("vpn_handouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vpn_handouts_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_table("vpn_handouts")
