"""The operation log: append-only rows chained by sha256, with a locked head row."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from appliance.models.base import Base


class AuditEvent(Base):
    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    """Position in the chain, 1-based, without gaps."""
    occurred_at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(100), index=True)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    """Indexed: a person's own sign-ins are read from here (appliance.workflow.personal_data)."""
    actor_name: Mapped[str | None] = mapped_column(String(200))
    object_type: Mapped[str | None] = mapped_column(String(50))
    object_id: Mapped[str | None] = mapped_column(String(100))
    contract_id: Mapped[int | None] = mapped_column(index=True)
    """The contract concerned; not a foreign key, since the log outlives deleted contracts."""
    client_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    details: Mapped[str] = mapped_column(Text, default="{}")
    """Canonical JSON (sorted keys) of extra facts; never secrets or verification codes."""
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditChainHead(Base):
    """Single row locked by each append, so concurrent writers cannot fork the chain."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_seq: Mapped[int]
    last_hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """The chain head at one moment, signed with the appliance's HSM key (appliance.audit.checkpoints).

    A checkpoint makes the log's past fixed: records up to `seq` can no longer be removed,
    edited or rewritten, even together with the head row, without the check naming them.
    """

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(index=True)
    """The newest record the checkpoint covers (0: an empty log)."""
    head_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    key_id: Mapped[int] = mapped_column(ForeignKey("hsm_keys.id"))
    """The appliance's document key, which made the signature."""
    certificate_id: Mapped[int] = mapped_column(ForeignKey("certificates.id"))
    """Its certificate, for checking a copy of the log away from the HSM."""
    digest_algorithm: Mapped[str] = mapped_column(String(16))
    signature: Mapped[bytes] = mapped_column(LargeBinary)
