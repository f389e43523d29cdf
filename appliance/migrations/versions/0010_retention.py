"""retention: the log outlives the contracts it names; deletion notices and archive
timestamp renewals are remembered

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

A contract deleted under the retention rules leaves its records in the operation log (they
are append-only) and a tombstone beside them, so the log's contract_id can no longer be a
foreign key: it names contracts that may be gone. Contracts gain the time their people were
told of a coming deletion, so each is told once and nothing is deleted untold, and the time
their archive timestamp is next due for renewal (appliance.workflow.archive_timestamps).
Blob names get indexes (the sweeps ask of each blob whether a row still uses it), and so
does a version's party (deleting a contract's parties checks that no version names them)
and a log record's actor (a person's "Me" page lists their sign-ins).
"""

from alembic import op
import sqlalchemy as sa


revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_audit_events_contract_id_contracts"), type_="foreignkey")
        batch_op.create_index(batch_op.f("ix_audit_events_actor_user_id"), ["actor_user_id"], unique=False)
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deletion_noticed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("timestamps_renew_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_contracts_timestamps_renew_at"), ["timestamps_renew_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_contracts_completion_sha256"), ["completion_sha256"], unique=False)
    with op.batch_alter_table("document_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_document_versions_sha256"), ["sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_document_versions_party_id"), ["party_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("document_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_document_versions_party_id"))
        batch_op.drop_index(batch_op.f("ix_document_versions_sha256"))
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contracts_completion_sha256"))
        batch_op.drop_index(batch_op.f("ix_contracts_timestamps_renew_at"))
        batch_op.drop_column("timestamps_renew_at")
        batch_op.drop_column("deletion_noticed_at")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_actor_user_id"))
        batch_op.create_foreign_key(
            op.f("fk_audit_events_contract_id_contracts"), "contracts", ["contract_id"], ["id"]
        )
