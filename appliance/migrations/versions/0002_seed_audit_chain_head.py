"""seed the operation log's chain head

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06

The head row used to be created by the first writer, so two first writers on PostgreSQL
could both find it missing and race to insert it. It is part of the schema now.
"""

from alembic import op
import sqlalchemy as sa


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

GENESIS_HASH = "0" * 64


def upgrade() -> None:
    # A database that already logged something has its head row; keep it as it is.
    op.execute(
        sa.text(
            "INSERT INTO audit_chain_head (id, last_seq, last_hash) "
            "SELECT 1, 0, :genesis WHERE NOT EXISTS (SELECT 1 FROM audit_chain_head WHERE id = 1)"
        ).bindparams(genesis=GENESIS_HASH)
    )


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM audit_chain_head WHERE id = 1 AND last_seq = 0"))
