"""Contracts, their parties and signature fields, and the append-only document versions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from appliance.models.base import Base, enum_column
from appliance.models.enums import ContractState, PartyKind, PartyStatus, Routing


class Contract(Base):
    __tablename__ = "contracts"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    initiator_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    state: Mapped[ContractState] = mapped_column(enum_column(ContractState, 30), index=True)
    routing: Mapped[Routing] = mapped_column(enum_column(Routing, 20))
    message: Mapped[str | None] = mapped_column(Text)
    deadline: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    state_changed_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    archived_at: Mapped[datetime | None]
    closing_reason: Mapped[str | None] = mapped_column(Text)
    """Why it was withdrawn or ended (a rejection's reason is on the rejecting party)."""
    voids_contract_id: Mapped[int | None] = mapped_column(ForeignKey("contracts.id"), index=True)
    """Set on a voiding agreement: the completed contract it voids once all its parties sign."""
    template_id: Mapped[int | None] = mapped_column(ForeignKey("contract_templates.id"), index=True)
    """The template it was started from, if any."""
    last_reminder_at: Mapped[datetime | None]
    deletion_noticed_at: Mapped[datetime | None]
    """When its people were told of its deletion under the retention rules (workflow.retention)."""
    timestamps_renew_at: Mapped[datetime | None] = mapped_column(index=True)
    """When a finished contract's archive timestamp is next renewed; None: not looked at yet."""
    completion_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    """The signed certificate of completion in the blob store, once completed."""
    evidence_last_seq: Mapped[int] = mapped_column(default=0)
    evidence_last_hash: Mapped[str] = mapped_column(String(64), default="0" * 64)
    """Head of this contract's evidence chain, on the row every change locks anyway."""

    parties: Mapped[list[Party]] = relationship(
        back_populates="contract", order_by="Party.routing_order", cascade="all, delete-orphan"
    )
    versions: Mapped[list[DocumentVersion]] = relationship(
        back_populates="contract", order_by="DocumentVersion.number", cascade="all, delete-orphan"
    )


class Party(Base):
    __tablename__ = "parties"
    # "is this person a party of the contract?" is asked per contract by every list
    __table_args__ = (Index("ix_parties_contract_id_user_id", "contract_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id", ondelete="CASCADE"))
    kind: Mapped[PartyKind] = mapped_column(enum_column(PartyKind, 20))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    """The signer (person) or the seal keeper who applied the seal."""
    seal_id: Mapped[int | None] = mapped_column(ForeignKey("seals.id"))
    routing_order: Mapped[int] = mapped_column(default=1)
    status: Mapped[PartyStatus] = mapped_column(enum_column(PartyStatus, 20))
    signed_at: Mapped[datetime | None]
    certificate_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id"))
    reason: Mapped[str | None] = mapped_column(Text)
    """Rejection reason given by the party."""
    display_name: Mapped[str] = mapped_column(String(200), default="")
    """Who or what signs, as shown when it was added (the person's or the seal's name)."""

    contract: Mapped[Contract] = relationship(back_populates="parties")
    fields: Mapped[list[SignatureField]] = relationship(cascade="all, delete-orphan")


class SignatureField(Base):
    __tablename__ = "signature_fields"

    id: Mapped[int] = mapped_column(primary_key=True)
    party_id: Mapped[int] = mapped_column(ForeignKey("parties.id", ondelete="CASCADE"), index=True)
    page: Mapped[int]
    """0-based page index."""
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    width: Mapped[float] = mapped_column(Float)
    height: Mapped[float] = mapped_column(Float)


class DocumentVersion(Base):
    __tablename__ = "document_versions"
    __table_args__ = (UniqueConstraint("contract_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    """1 is the uploaded original; each signature adds the next number."""
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    """Name of the blob in the content-addressed store (indexed: the sweeps ask who uses a blob)."""
    size: Mapped[int]
    filename: Mapped[str] = mapped_column(String(255))
    page_sizes: Mapped[str] = mapped_column(Text, default="[]")
    """JSON list of [width, height] in points per page, for placing fields."""
    produced_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    party_id: Mapped[int | None] = mapped_column(ForeignKey("parties.id"), index=True)
    """Indexed: deleting a party checks that no version still names it."""
    created_at: Mapped[datetime]

    contract: Mapped[Contract] = relationship(back_populates="versions")
