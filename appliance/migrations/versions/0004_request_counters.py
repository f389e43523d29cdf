"""request counters for rate limits shared by workers and nodes

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

/pki/tsa counted its requests in each gunicorn worker's memory, so a client got the limit
once per worker and node. The count lives in the database now.
"""

from alembic import op
import sqlalchemy as sa


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_counters",
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_request_counters")),
    )
    with op.batch_alter_table("request_counters", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_request_counters_window_started_at"), ["window_started_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("request_counters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_counters_window_started_at"))
    op.drop_table("request_counters")
