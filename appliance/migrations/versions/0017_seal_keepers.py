"""seal keepers and approvers named per seal (people or directory groups), and the directory
groups people are in

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa


revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "seal_keepers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seal_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("group_dn", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["seal_id"], ["seals.id"], name=op.f("fk_seal_keepers_seal_id_seals")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_seal_keepers_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seal_keepers")),
    )
    with op.batch_alter_table("seal_keepers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_seal_keepers_seal_id"), ["seal_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_seal_keepers_user_id"), ["user_id"], unique=False)
    op.create_table(
        "user_groups",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("group_dn", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_user_groups_user_id_users")),
        sa.PrimaryKeyConstraint("user_id", "group_dn", name=op.f("pk_user_groups")),
    )
    with op.batch_alter_table("seal_approvers", schema=None) as batch_op:
        batch_op.alter_column("user_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("group_dn", sa.String(length=500), nullable=True))
    with op.batch_alter_table("seal_approvals", schema=None) as batch_op:
        batch_op.alter_column("approver_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("group_dn", sa.String(length=500), nullable=True))


def downgrade() -> None:
    # a group's approvals and approvers have no person to keep: they go with the column
    op.execute("DELETE FROM seal_approvals WHERE approver_id IS NULL")
    op.execute("DELETE FROM seal_approvers WHERE user_id IS NULL")
    with op.batch_alter_table("seal_approvals", schema=None) as batch_op:
        batch_op.drop_column("group_dn")
        batch_op.alter_column("approver_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("seal_approvers", schema=None) as batch_op:
        batch_op.drop_column("group_dn")
        batch_op.alter_column("user_id", existing_type=sa.Integer(), nullable=False)
    op.drop_table("user_groups")
    op.drop_table("seal_keepers")
