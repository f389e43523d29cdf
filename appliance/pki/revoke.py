"""Revocation (RFC 5280 reasons) and the rule that decides whether a certificate may sign now."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.errors import Conflict
from appliance.models.enums import CertificateKind, CertificateStatus, RevocationReason
from appliance.models.pki import Certificate
from appliance.pki.ca import PkiContext, active_certificate
from appliance.pki.crl import publish_crl
from appliance.pki.errors import CertificateNotFound, CertificateNotUsable

log = logging.getLogger(__name__)


def revoke_certificate(
    session: Session, ctx: PkiContext, certificate_id: int, reason: RevocationReason
) -> Certificate:
    """Mark the certificate revoked and publish its CA's new CRL. Flushes, never commits.

    :raises CertificateNotFound: no such certificate.
    :raises Conflict: already revoked, or a root CA (a root is retired, not revoked).
    """
    row = session.get(Certificate, certificate_id, with_for_update=True)
    if row is None:
        raise CertificateNotFound("no such certificate")
    if row.status is CertificateStatus.REVOKED:
        raise Conflict("the certificate is already revoked")
    if row.issuer_id is None or row.kind in (CertificateKind.ROOT_CA, CertificateKind.TRUST_ROOT):
        raise Conflict("a root certificate cannot be revoked; remove it from the trust list instead")
    issuer = session.get(Certificate, row.issuer_id)
    if issuer is None:
        # the foreign key makes this unreachable short of a hand-edited database
        raise CertificateNotFound("the certificate's issuer is missing from the database")
    row.status = CertificateStatus.REVOKED
    row.revoked_at = ctx.now()
    row.revocation_reason = reason
    session.flush()
    log.info("revoked certificate %s (serial %s): %s", row.subject, row.serial, reason.value)
    if issuer.key_id is not None and issuer.kind in (CertificateKind.ROOT_CA, CertificateKind.ISSUING_CA):
        publish_crl(session, ctx, issuer.kind)
    return row


def check_certificate_usable(session: Session, certificate_id: int, now: datetime) -> Certificate:
    """Return the certificate when it may sign at `now`; otherwise refuse.

    Checks the certificate and every CA above it: not revoked (or superseded), inside
    its validity period.
    :raises CertificateNotFound: no such certificate.
    :raises CertificateNotUsable: revoked, expired, not yet valid, or its CA is.
    """
    row = session.get(Certificate, certificate_id)
    if row is None:
        raise CertificateNotFound("no such certificate")
    current: Certificate | None = row
    while current is not None:
        which = "the certificate" if current is row else "its issuing CA"
        if current.status is CertificateStatus.REVOKED:
            raise CertificateNotUsable(f"{which} is revoked and cannot sign")
        if current.status is not CertificateStatus.ACTIVE:
            raise CertificateNotUsable(f"{which} has been superseded and cannot sign")
        if now >= current.not_after:
            raise CertificateNotUsable(f"{which} expired on {current.not_after:%Y-%m-%d} and cannot sign")
        if now < current.not_before:
            raise CertificateNotUsable(f"{which} is not valid yet")
        current = session.get(Certificate, current.issuer_id) if current.issuer_id is not None else None
    return row


def revoke_by_serial(
    session: Session, ctx: PkiContext, serial_hex: str, reason: RevocationReason
) -> Certificate:
    """Revoke the certificate of the issuing CA with this serial (hex, case-insensitive)."""
    try:
        serial = format(int(serial_hex.replace(":", ""), 16), "x")
    except ValueError as exc:
        raise CertificateNotFound("the serial must be hexadecimal") from exc
    issuing = active_certificate(session, CertificateKind.ISSUING_CA)
    row = session.scalars(
        select(Certificate).where(
            Certificate.serial == serial, Certificate.issuer_id == (issuing.id if issuing else None)
        )
    ).first()
    if row is None:
        raise CertificateNotFound("no certificate of the issuing CA has this serial")
    return revoke_certificate(session, ctx, row.id, reason)
