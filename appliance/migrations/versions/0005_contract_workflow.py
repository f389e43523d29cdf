"""contract workflow: evidence chains, verification codes, certificate consents, idempotency

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

Each contract carries the head of its own evidence chain, so signings of different
contracts never queue behind one another's evidence.
"""

from alembic import op
import sqlalchemy as sa


revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotent_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("operation", sa.String(length=100), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_idempotent_results_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotent_results")),
        sa.UniqueConstraint("user_id", "key", name=op.f("uq_idempotent_results_user_id")),
    )
    with op.batch_alter_table("idempotent_results", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idempotent_results_created_at"), ["created_at"], unique=False)

    op.create_table(
        "totp_enrolments",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_step", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_totp_enrolments_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_totp_enrolments")),
    )
    op.create_table(
        "evidence_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=50), nullable=False),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("actor_name", sa.String(length=200), nullable=True),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=400), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_user_id"], ["users.id"], name=op.f("fk_evidence_events_actor_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contracts.id"],
            name=op.f("fk_evidence_events_contract_id_contracts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evidence_events")),
        sa.UniqueConstraint("contract_id", "seq", name=op.f("uq_evidence_events_contract_id")),
        sa.UniqueConstraint("hash", name=op.f("uq_evidence_events_hash")),
    )
    with op.batch_alter_table("evidence_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_evidence_events_contract_id"), ["contract_id"], unique=False)

    op.create_table(
        "certificate_consents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("certificate_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("agreement_version", sa.String(length=50), nullable=False),
        sa.Column("agreement_sha256", sa.String(length=64), nullable=False),
        sa.Column("locale", sa.String(length=20), nullable=False),
        sa.Column("consented_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=400), nullable=True),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name=op.f("fk_certificate_consents_certificate_id_certificates"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_certificate_consents_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificate_consents")),
    )
    with op.batch_alter_table("certificate_consents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_certificate_consents_certificate_id"), ["certificate_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_certificate_consents_user_id"), ["user_id"], unique=False)

    op.create_table(
        "verification_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sa.Integer(), nullable=False),
        sa.Column("party_id", sa.Integer(), nullable=False),
        sa.Column("document_sha256", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("code_hmac", sa.String(length=64), nullable=True),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts_left", sa.Integer(), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contracts.id"],
            name=op.f("fk_verification_codes_contract_id_contracts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["party_id"],
            ["parties.id"],
            name=op.f("fk_verification_codes_party_id_parties"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_verification_codes_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verification_codes")),
    )
    with op.batch_alter_table("verification_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_verification_codes_contract_id"), ["contract_id"], unique=False)
        batch_op.create_index("ix_verification_codes_party_user", ["party_id", "user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_verification_codes_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("closing_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("voids_contract_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("last_reminder_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("completion_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("evidence_last_seq", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("evidence_last_hash", sa.String(length=64), nullable=False, server_default="0" * 64)
        )
        batch_op.create_index(
            batch_op.f("ix_contracts_voids_contract_id"), ["voids_contract_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_contracts_voids_contract_id_contracts"), "contracts", ["voids_contract_id"], ["id"]
        )

    with op.batch_alter_table("document_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("page_sizes", sa.Text(), nullable=False, server_default="[]"))

    with op.batch_alter_table("parties", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("display_name", sa.String(length=200), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("parties", schema=None) as batch_op:
        batch_op.drop_column("display_name")

    with op.batch_alter_table("document_versions", schema=None) as batch_op:
        batch_op.drop_column("page_sizes")

    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_contracts_voids_contract_id_contracts"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_contracts_voids_contract_id"))
        batch_op.drop_column("evidence_last_hash")
        batch_op.drop_column("evidence_last_seq")
        batch_op.drop_column("completion_sha256")
        batch_op.drop_column("last_reminder_at")
        batch_op.drop_column("voids_contract_id")
        batch_op.drop_column("closing_reason")

    with op.batch_alter_table("verification_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_verification_codes_user_id"))
        batch_op.drop_index("ix_verification_codes_party_user")
        batch_op.drop_index(batch_op.f("ix_verification_codes_contract_id"))

    op.drop_table("verification_codes")
    with op.batch_alter_table("certificate_consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_certificate_consents_user_id"))
        batch_op.drop_index(batch_op.f("ix_certificate_consents_certificate_id"))

    op.drop_table("certificate_consents")
    with op.batch_alter_table("evidence_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evidence_events_contract_id"))

    op.drop_table("evidence_events")
    op.drop_table("totp_enrolments")
    with op.batch_alter_table("idempotent_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotent_results_created_at"))

    op.drop_table("idempotent_results")
