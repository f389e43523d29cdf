"""acceptances of the privacy notice, one row per person and version

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa


revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_acceptances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=20), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("locale", sa.String(length=20), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=400), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_privacy_acceptances_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_acceptances")),
    )
    with op.batch_alter_table("privacy_acceptances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_privacy_acceptances_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("privacy_acceptances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_privacy_acceptances_user_id"))
    op.drop_table("privacy_acceptances")
