"""requests about personal data (correction, deletion, consent withdrawal) and their answers

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa


revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "correction", "deletion", "consent_withdrawal", name="datarequestkind", native_enum=False, length=30
            ),
            nullable=False,
        ),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("open", "done", "refused", name="datarequeststatus", native_enum=False, length=10),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_by_id", sa.Integer(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("answered_by_name", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["answered_by_id"], ["users.id"], name=op.f("fk_data_requests_answered_by_id_users")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_data_requests_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_requests")),
    )
    with op.batch_alter_table("data_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_requests_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_data_requests_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("data_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_requests_user_id"))
        batch_op.drop_index(batch_op.f("ix_data_requests_status"))
    op.drop_table("data_requests")
