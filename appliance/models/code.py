"""Verification codes confirming a signer's intent, and authenticator-app enrolments."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from appliance.models.base import Base


class VerificationCode(Base):
    """One issued code: only its HMAC is kept, bound to who, what and which document version."""

    __tablename__ = "verification_codes"
    __table_args__ = (Index("ix_verification_codes_party_user", "party_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id", ondelete="CASCADE"), index=True)
    party_id: Mapped[int] = mapped_column(ForeignKey("parties.id", ondelete="CASCADE"))
    document_sha256: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(20))
    code_hmac: Mapped[str | None] = mapped_column(String(64))
    """HMAC-SHA256 of the code and its binding; None for an authenticator-app challenge."""
    client_address: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    attempts_left: Mapped[int]
    used_at: Mapped[datetime | None]
    superseded_at: Mapped[datetime | None]
    """Set when a newer code was issued for the same signer and party."""


class TotpEnrolment(Base):
    """A person's authenticator-app secret (RFC 6238); the last accepted step blocks reuse."""

    __tablename__ = "totp_enrolments"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]
    last_used_step: Mapped[int | None]
