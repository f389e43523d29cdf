"""Who applies a seal and who approves its use, each approval of a contract's seal, standing authorisations
to apply a seal automatically, and the per-seal usage log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from appliance.models.base import Base, enum_column


class SealKeeper(Base):
    """Who applies a seal: a named person, or every member of a directory group (`group_dn`,
    normalised). Exactly one of the two is set. A seal that names nobody is applied by the
    seal keepers (the role) of its organisation."""

    __tablename__ = "seal_keepers"

    id: Mapped[int] = mapped_column(primary_key=True)
    seal_id: Mapped[int] = mapped_column(ForeignKey("seals.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    group_dn: Mapped[str | None] = mapped_column(String(500))


class SealApprover(Base):
    """One of a seal's approvers; they decide in `position` order (1 first). A named person, or
    a directory group (`group_dn`, normalised) any of whose members of the organisation decides."""

    __tablename__ = "seal_approvers"
    __table_args__ = (UniqueConstraint("seal_id", "user_id"),)

    seal_id: Mapped[int] = mapped_column(ForeignKey("seals.id"), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    group_dn: Mapped[str | None] = mapped_column(String(500))


class ApprovalStatus(StrEnum):
    WAITING = "waiting"
    """An earlier approver of the same seal decides first."""
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    """Another approver rejected, or the contract was withdrawn or expired first."""


class SealApproval(Base):
    """One approver's decision on one use of a seal: a seal party of a contract, as the seal's
    approvers stood when the contract was sent."""

    __tablename__ = "seal_approvals"
    __table_args__ = (Index("ix_seal_approvals_approver_status", "approver_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id", ondelete="CASCADE"), index=True)
    party_id: Mapped[int] = mapped_column(ForeignKey("parties.id", ondelete="CASCADE"))
    seal_id: Mapped[int] = mapped_column(ForeignKey("seals.id"))
    position: Mapped[int]
    approver_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    """The approver named; for a group's approval, whoever of it decided (None until then)."""
    group_dn: Mapped[str | None] = mapped_column(String(500))
    """For an approval by a directory group's members."""
    status: Mapped[ApprovalStatus] = mapped_column(enum_column(ApprovalStatus, 10))
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    comment: Mapped[str | None] = mapped_column(Text)


class SealUsage(Base):
    """The per-seal usage log: each time a seal was applied to a contract.

    Contract and party are plain ids, like the operation log's: the log outlives contracts
    that retention deletes.
    """

    __tablename__ = "seal_usages"

    id: Mapped[int] = mapped_column(primary_key=True)
    seal_id: Mapped[int] = mapped_column(ForeignKey("seals.id"), index=True)
    contract_id: Mapped[int] = mapped_column(index=True)
    contract_title: Mapped[str] = mapped_column(String(300))
    party_id: Mapped[int]
    applied_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    applied_at: Mapped[datetime]
    document_sha256: Mapped[str] = mapped_column(String(64))
    """The signed version the seal produced."""
    automatic: Mapped[str | None] = mapped_column(String(20))
    """What authorised the appliance to apply it with no keeper ("initiator", "template"), or None."""
    approval_ids: Mapped[str] = mapped_column(String(200), default="")
    """The approvals that allowed this use, comma-separated ("" when the seal needed none)."""


class SealAutomation(Base):
    """A standing authorisation, given by the seal's organisation admin, to apply a seal with no
    keeper and no approval: to contracts of a named initiator, or started from a named template.
    Exactly one of `initiator_id` and `template_id` is set."""

    __tablename__ = "seal_automations"

    id: Mapped[int] = mapped_column(primary_key=True)
    seal_id: Mapped[int] = mapped_column(ForeignKey("seals.id"), index=True)
    initiator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    template_id: Mapped[int | None] = mapped_column(ForeignKey("contract_templates.id"), index=True)
    created_at: Mapped[datetime]
