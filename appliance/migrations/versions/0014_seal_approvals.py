"""seal approvals: each seal's approvers in order, the approvals of contracts' seals, the per-seal usage log

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa


revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "seal_approvers",
        sa.Column("seal_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["seal_id"], ["seals.id"], name=op.f("fk_seal_approvers_seal_id_seals")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_seal_approvers_user_id_users")),
        sa.PrimaryKeyConstraint("seal_id", "position", name=op.f("pk_seal_approvers")),
        sa.UniqueConstraint("seal_id", "user_id", name=op.f("uq_seal_approvers_seal_id")),
    )
    with op.batch_alter_table("seal_approvers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_seal_approvers_user_id"), ["user_id"], unique=False)
    op.create_table(
        "seal_approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sa.Integer(), nullable=False),
        sa.Column("party_id", sa.Integer(), nullable=False),
        sa.Column("seal_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("approver_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["approver_id"], ["users.id"], name=op.f("fk_seal_approvals_approver_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contracts.id"],
            name=op.f("fk_seal_approvals_contract_id_contracts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["party_id"], ["parties.id"], name=op.f("fk_seal_approvals_party_id_parties"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["seal_id"], ["seals.id"], name=op.f("fk_seal_approvals_seal_id_seals")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seal_approvals")),
    )
    with op.batch_alter_table("seal_approvals", schema=None) as batch_op:
        batch_op.create_index("ix_seal_approvals_approver_status", ["approver_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_seal_approvals_contract_id"), ["contract_id"], unique=False)
    op.create_table(
        "seal_usages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seal_id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sa.Integer(), nullable=False),
        sa.Column("contract_title", sa.String(length=300), nullable=False),
        sa.Column("party_id", sa.Integer(), nullable=False),
        sa.Column("applied_by_id", sa.Integer(), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("document_sha256", sa.String(length=64), nullable=False),
        sa.Column("approval_ids", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["applied_by_id"], ["users.id"], name=op.f("fk_seal_usages_applied_by_id_users")
        ),
        sa.ForeignKeyConstraint(["seal_id"], ["seals.id"], name=op.f("fk_seal_usages_seal_id_seals")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seal_usages")),
    )
    with op.batch_alter_table("seal_usages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_seal_usages_contract_id"), ["contract_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_seal_usages_seal_id"), ["seal_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("seal_usages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_seal_usages_seal_id"))
        batch_op.drop_index(batch_op.f("ix_seal_usages_contract_id"))
    op.drop_table("seal_usages")
    with op.batch_alter_table("seal_approvals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_seal_approvals_contract_id"))
        batch_op.drop_index("ix_seal_approvals_approver_status")
    op.drop_table("seal_approvals")
    with op.batch_alter_table("seal_approvers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_seal_approvers_user_id"))
    op.drop_table("seal_approvers")
