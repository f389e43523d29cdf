"""certificates remember when their holder was told to renew

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

The renewal notice goes out once per certificate, from 30 days before it expires.
"""

from alembic import op
import sqlalchemy as sa


revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("renewal_noticed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.drop_column("renewal_noticed_at")
