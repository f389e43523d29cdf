"""HSM key records, certificates and CRLs. Private keys live only in the HSM."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from appliance.models.base import Base, enum_column
from appliance.models.enums import (
    CertificateKind,
    CertificateStatus,
    KeyPurpose,
    RevocationReason,
    SealKind,
)


class HsmKey(Base):
    __tablename__ = "hsm_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(200), unique=True)
    """CKA_LABEL of the key pair in the token."""
    key_id: Mapped[str] = mapped_column(String(128), unique=True)
    """CKA_ID of the key pair, hex."""
    algorithm: Mapped[str] = mapped_column(String(30))
    purpose: Mapped[KeyPurpose] = mapped_column(enum_column(KeyPurpose, 30))
    public_key_der: Mapped[bytes] = mapped_column(LargeBinary)
    owner_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    owner_organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    created_at: Mapped[datetime]


class Certificate(Base):
    __tablename__ = "certificates"
    __table_args__ = (UniqueConstraint("issuer_id", "serial"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[str] = mapped_column(String(64))
    """Serial number, hex; unique per issuer."""
    kind: Mapped[CertificateKind] = mapped_column(enum_column(CertificateKind, 30))
    subject: Mapped[str] = mapped_column(String(1000))
    issuer_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id"))
    key_id: Mapped[int | None] = mapped_column(ForeignKey("hsm_keys.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    der: Mapped[bytes] = mapped_column(LargeBinary)
    sha256_fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[CertificateStatus] = mapped_column(
        enum_column(CertificateStatus, 20), default=CertificateStatus.ACTIVE
    )
    revoked_at: Mapped[datetime | None]
    revocation_reason: Mapped[RevocationReason | None] = mapped_column(enum_column(RevocationReason, 30))
    consent_at: Mapped[datetime | None]
    """When the holder accepted the certificate agreement (apply and each renewal)."""
    consent_agreement_version: Mapped[str | None] = mapped_column(String(50))
    renewal_noticed_at: Mapped[datetime | None]
    """When the holder was told the certificate is due for renewal (once per certificate)."""
    created_at: Mapped[datetime]


class Crl(Base):
    __tablename__ = "crls"
    # one CRL per number and issuer: two nodes regenerating at once cannot both publish number n
    __table_args__ = (UniqueConstraint("issuer_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer_id: Mapped[int] = mapped_column(ForeignKey("certificates.id"), index=True)
    number: Mapped[int] = mapped_column(BigInteger)
    """64-bit: external CAs may number CRLs by time; larger numbers are refused at import."""
    this_update: Mapped[datetime]
    next_update: Mapped[datetime]
    der: Mapped[bytes] = mapped_column(LargeBinary)


class Seal(Base):
    """An organisation's seal: its certificate and stamp image; may require approval before use."""

    __tablename__ = "seals"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[SealKind] = mapped_column(enum_column(SealKind, 30), default=SealKind.CONTRACT)
    description: Mapped[str | None] = mapped_column(Text)
    image_sha256: Mapped[str | None] = mapped_column(String(64))
    """Stamp image (PNG with transparency) in the blob store."""
    certificate_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id"))
    requires_approval: Mapped[bool] = mapped_column(default=True)
    active: Mapped[bool] = mapped_column(default=True)
    """False while disabled (it can be enabled again) and once retired."""
    retired_at: Mapped[datetime | None]
    """Retired for good. Seals are never deleted: contracts and the usage log refer to them."""
    created_at: Mapped[datetime]


class CertificateConsent(Base):
    """A holder's (or org admin's) acceptance of the certificate agreement before issuance."""

    __tablename__ = "certificate_consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    certificate_id: Mapped[int] = mapped_column(ForeignKey("certificates.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    """Who consented: the holder, or the org admin for an organisation's certificate."""
    agreement_version: Mapped[str] = mapped_column(String(50))
    agreement_sha256: Mapped[str] = mapped_column(String(64))
    """sha256 of the agreement text shown, in the language it was shown in."""
    locale: Mapped[str] = mapped_column(String(20))
    consented_at: Mapped[datetime]
    client_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
