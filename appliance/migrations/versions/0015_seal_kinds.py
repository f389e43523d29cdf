"""seals: their kind, and when one was retired for good

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa


revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("seals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=30), nullable=False, server_default="contract")
        )
        batch_op.add_column(sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("seals", schema=None) as batch_op:
        batch_op.drop_column("retired_at")
        batch_op.drop_column("kind")
