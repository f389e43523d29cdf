"""contract templates and their roles; standing authorisations to apply a seal automatically, and
which one authorised each automatic use

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa


revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contract_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("page_sizes", sa.Text(), nullable=False),
        sa.Column("routing", sa.String(length=20), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_contract_templates_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_contract_templates_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contract_templates")),
    )
    with op.batch_alter_table("contract_templates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contract_templates_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_contract_templates_sha256"), ["sha256"], unique=False)
    op.create_table(
        "template_roles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("seal_id", sa.Integer(), nullable=True),
        sa.Column("routing_order", sa.Integer(), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["seal_id"], ["seals.id"], name=op.f("fk_template_roles_seal_id_seals")),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["contract_templates.id"],
            name=op.f("fk_template_roles_template_id_contract_templates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_template_roles")),
    )
    with op.batch_alter_table("template_roles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_template_roles_template_id"), ["template_id"], unique=False)
    op.create_table(
        "seal_automations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seal_id", sa.Integer(), nullable=False),
        sa.Column("initiator_id", sa.Integer(), nullable=True),
        sa.Column("template_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["initiator_id"], ["users.id"], name=op.f("fk_seal_automations_initiator_id_users")
        ),
        sa.ForeignKeyConstraint(["seal_id"], ["seals.id"], name=op.f("fk_seal_automations_seal_id_seals")),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["contract_templates.id"],
            name=op.f("fk_seal_automations_template_id_contract_templates"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seal_automations")),
    )
    with op.batch_alter_table("seal_automations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_seal_automations_initiator_id"), ["initiator_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_seal_automations_seal_id"), ["seal_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_seal_automations_template_id"), ["template_id"], unique=False)
    with op.batch_alter_table("seal_usages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("automatic", sa.String(length=20), nullable=True))
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("template_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_contracts_template_id"), ["template_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_contracts_template_id_contract_templates"),
            "contract_templates",
            ["template_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_contracts_template_id_contract_templates"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_contracts_template_id"))
        batch_op.drop_column("template_id")
    with op.batch_alter_table("seal_usages", schema=None) as batch_op:
        batch_op.drop_column("automatic")
    op.drop_table("seal_automations")
    op.drop_table("template_roles")
    op.drop_table("contract_templates")
