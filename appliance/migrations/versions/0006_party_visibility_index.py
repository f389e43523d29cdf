"""parties indexed by (contract, person)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

Every contract list asks, per contract, "is this person one of its parties?". With only
single-column indexes SQLite searched all of the person's parties for each contract, so a
to-do list of 1000 contracts took 1000 x 1000 steps (55 ms instead of 3). The pair index
answers it in one search and still serves lookups by contract alone.
"""

from alembic import op


revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("parties", schema=None) as batch_op:
        batch_op.create_index("ix_parties_contract_id_user_id", ["contract_id", "user_id"], unique=False)
        batch_op.drop_index(batch_op.f("ix_parties_contract_id"))


def downgrade() -> None:
    with op.batch_alter_table("parties", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_parties_contract_id"), ["contract_id"], unique=False)
        batch_op.drop_index("ix_parties_contract_id_user_id")
