"""Optional external CA: a CSR for a key in the HSM, and import of the certificate issued for it.

The imported certificate must carry exactly the HSM key's public key, allow signing
(digitalSignature + nonRepudiation) and be valid now; the chain given with it must link up
and end at a root an administrator has already trusted (`add_trust_root`, a separate,
logged admin action). An import never adds a trust anchor: its intermediates are stored as
EXTERNAL_CA, which builds paths but is never trusted on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import pairwise
from typing import TypeVar

from asn1crypto import keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.errors import Conflict
from appliance.models.enums import CertificateKind, CertificateStatus, KeyPurpose
from appliance.models.pki import Certificate, HsmKey
from appliance.pki import certs
from appliance.pki.ca import PkiContext, generate_recorded_key, key_ref_of, store_certificate
from appliance.pki.errors import CertificateMismatch, CertificateNotFound

_Ext = TypeVar("_Ext", bound=x509.ExtensionType)

_KIND_BY_PURPOSE = {
    KeyPurpose.PERSON: CertificateKind.PERSON,
    KeyPurpose.ORGANISATION: CertificateKind.ORGANISATION,
    KeyPurpose.APPLIANCE: CertificateKind.APPLIANCE,
    KeyPurpose.TSA: CertificateKind.TSA,
}


def create_csr(
    session: Session, ctx: PkiContext, subject: certs.SubjectInfo, purpose: KeyPurpose = KeyPurpose.PERSON
) -> tuple[HsmKey, bytes]:
    """Generate a key in the HSM (recorded in `hsm_keys`) and return it with a DER PKCS#10 CSR."""
    key_row, _key = generate_recorded_key(session, ctx, purpose)
    return key_row, export_csr(ctx, key_row, subject)


def export_csr(ctx: PkiContext, key_row: HsmKey, subject: certs.SubjectInfo) -> bytes:
    """DER PKCS#10 request for an existing HSM key, signed by that key (proof of possession)."""
    spki = keys.PublicKeyInfo.load(key_row.public_key_der)
    return certs.build_csr_der(ctx.custody, key_ref_of(key_row), subject.to_name(), spki)


def _load(der_or_pem: bytes) -> x509.Certificate:
    try:
        if der_or_pem.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(der_or_pem)
        return x509.load_der_x509_certificate(der_or_pem)
    except ValueError as exc:
        raise CertificateMismatch("not an X.509 certificate (DER or PEM)") from exc


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _name(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string()
    except ValueError:
        return "a certificate"


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _extension(cert: x509.Certificate, kind: type[_Ext]) -> _Ext | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except ValueError as exc:  # a malformed extension
        raise CertificateMismatch(f"{_name(cert)} has a malformed extension") from exc


def _is_ca(cert: x509.Certificate) -> bool:
    constraints = _extension(cert, x509.BasicConstraints)
    return constraints is not None and constraints.ca


def _check_valid_now(cert: x509.Certificate, now: datetime) -> None:
    if now < cert.not_valid_before_utc:
        raise CertificateMismatch(f"{_name(cert)} is not valid before {cert.not_valid_before_utc:%Y-%m-%d}")
    if now >= cert.not_valid_after_utc:
        raise CertificateMismatch(f"{_name(cert)} expired on {cert.not_valid_after_utc:%Y-%m-%d}")


def _check_signing_certificate(leaf: x509.Certificate, now: datetime, purpose: KeyPurpose) -> None:
    """Not a CA, valid now, and the key usage of a document signer (digitalSignature +
    nonRepudiation) or, for a TSA key, digitalSignature."""
    if _is_ca(leaf):
        raise CertificateMismatch("a CA certificate cannot be imported as a signing certificate")
    usage = _extension(leaf, x509.KeyUsage)
    if purpose is KeyPurpose.TSA:
        if usage is None or not usage.digital_signature:
            raise CertificateMismatch("a TSA certificate must allow digitalSignature (key usage)")
    elif usage is None or not (usage.digital_signature and usage.content_commitment):
        raise CertificateMismatch(
            "the certificate must allow digitalSignature and nonRepudiation (key usage) to sign documents"
        )
    _check_valid_now(leaf, now)


def _check_ca_certificate(cert: x509.Certificate, now: datetime) -> None:
    if not _is_ca(cert):
        raise CertificateMismatch(f"{_name(cert)} is not a CA certificate (basicConstraints cA)")
    usage = _extension(cert, x509.KeyUsage)
    if usage is not None and not usage.key_cert_sign:
        raise CertificateMismatch(f"{_name(cert)} may not sign certificates (key usage keyCertSign)")
    _check_valid_now(cert, now)


def _by_fingerprint(session: Session, der: bytes) -> Certificate | None:
    return session.scalars(
        select(Certificate).where(Certificate.sha256_fingerprint == certs.fingerprint(der))
    ).first()


def _trusted_roots(session: Session) -> list[Certificate]:
    return list(
        session.scalars(
            select(Certificate).where(
                Certificate.kind == CertificateKind.TRUST_ROOT,
                Certificate.status == CertificateStatus.ACTIVE,
            )
        ).all()
    )


def add_trust_root(session: Session, ctx: PkiContext, certificate: bytes) -> Certificate:
    """Trust an external root CA (an administrator's explicit decision). Flushes, never commits.

    The caller records this in the operation log (appliance.audit.append_event) in the same
    transaction: the audit package sits above pki in the layers, so pki cannot do it itself.
    A retired root (status superseded) becomes active again.
    :raises CertificateMismatch: not a self-signed CA certificate valid now, or garbage.
    :raises Conflict: already trusted, or the certificate is stored as something else.
    """
    root = _load(certificate)
    if not _issued_by(root, root):
        raise CertificateMismatch("a trust root must be a self-signed CA certificate")
    _check_ca_certificate(root, ctx.now())
    der = _der(root)
    row = _by_fingerprint(session, der)
    if row is not None:
        if row.kind is not CertificateKind.TRUST_ROOT:
            raise Conflict(f"this certificate is already stored as {row.kind.value}")
        if row.status is CertificateStatus.ACTIVE:
            raise Conflict("this root is already trusted")
        row.status = CertificateStatus.ACTIVE
        session.flush()
        return row
    return store_certificate(
        session,
        ctx,
        asn1_x509.Certificate.load(der),
        kind=CertificateKind.TRUST_ROOT,
        issuer_id=None,
        key_row=None,
    )


def retire_trust_root(session: Session, sha256_fingerprint: str) -> Certificate:
    """Stop trusting an admin-added root (status superseded). Flushes, never commits.

    The row stays, so certificates imported under it keep their history; validation no
    longer uses it as an anchor. The caller records this in the operation log.
    :raises CertificateNotFound: no admin-added root with that fingerprint.
    """
    row = session.scalars(
        select(Certificate).where(
            Certificate.sha256_fingerprint == sha256_fingerprint.lower().replace(":", ""),
            Certificate.kind == CertificateKind.TRUST_ROOT,
        )
    ).first()
    if row is None:
        raise CertificateNotFound("no admin-added trust root has that SHA-256 fingerprint")
    if row.status is not CertificateStatus.ACTIVE:
        raise Conflict("this root is not trusted now")
    row.status = CertificateStatus.SUPERSEDED
    session.flush()
    return row


def _anchor_for(session: Session, top: x509.Certificate) -> tuple[Certificate, bool] | None:
    """The trusted root at the top of a chain: `top` itself (True) or the root that issued it."""
    if _issued_by(top, top):
        row = _by_fingerprint(session, _der(top))
        trusted = (
            row is not None
            and row.kind is CertificateKind.TRUST_ROOT
            and row.status is CertificateStatus.ACTIVE
        )
        return (row, True) if trusted and row is not None else None
    for row in _trusted_roots(session):
        if _issued_by(top, x509.load_der_x509_certificate(row.der)):
            return row, False
    return None


def import_certificate(
    session: Session,
    ctx: PkiContext,
    key_label: str,
    certificate: bytes,
    chain: Sequence[bytes],
) -> Certificate:
    """Store the external CA's certificate for the HSM key `key_label`, with its chain.

    `chain` lists the issuing CAs, nearest first; it may end with the trusted root or stop
    below it. Flushes, never commits.
    :raises CertificateNotFound: no such key recorded.
    :raises CertificateMismatch: another key's certificate, not a signing certificate,
        expired, a broken chain, a chain that does not end at a trusted root, or garbage.
    :raises Conflict: the certificate was imported before.
    """
    key_row = session.scalars(select(HsmKey).where(HsmKey.label == key_label)).first()
    if key_row is None:
        raise CertificateNotFound("no HSM key with that label is recorded")
    leaf = _load(certificate)
    if (
        leaf.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        != key_row.public_key_der
    ):
        raise CertificateMismatch("the certificate is for another key than the HSM key")
    now = ctx.now()
    _check_signing_certificate(leaf, now, key_row.purpose)
    links = [leaf, *(_load(item) for item in chain)]
    for child, parent in pairwise(links):
        if not _issued_by(child, parent):
            raise CertificateMismatch(f"{_name(child)} is not issued by the next certificate")
    found = _anchor_for(session, links[-1])
    if found is None:
        raise CertificateMismatch(
            "the chain does not end at a root an administrator trusts;"
            " add the root first with `appliance pki trust-root add`"
        )
    anchor, top_is_anchor = found
    intermediates = links[1:-1] if top_is_anchor else links[1:]
    for ca in intermediates:
        _check_ca_certificate(ca, now)
    if now >= anchor.not_after:
        raise CertificateMismatch(f"the trusted root {anchor.subject} has expired")
    if _by_fingerprint(session, _der(leaf)) is not None:
        raise Conflict("this certificate was imported before")

    # store the intermediates top-down below the anchor, reusing rows already present
    issuer_id = anchor.id
    for ca in reversed(intermediates):
        der = _der(ca)
        row = _by_fingerprint(session, der)
        if row is None:
            row = store_certificate(
                session,
                ctx,
                asn1_x509.Certificate.load(der),
                kind=CertificateKind.EXTERNAL_CA,
                issuer_id=issuer_id,
                key_row=None,
            )
        elif row.kind is not CertificateKind.EXTERNAL_CA or row.status is not CertificateStatus.ACTIVE:
            raise CertificateMismatch(f"{_name(ca)} is stored as {row.kind.value} ({row.status.value})")
        issuer_id = row.id
    return store_certificate(
        session,
        ctx,
        asn1_x509.Certificate.load(_der(leaf)),
        kind=_KIND_BY_PURPOSE.get(key_row.purpose, CertificateKind.PERSON),
        issuer_id=issuer_id,
        key_row=key_row,
        user_id=key_row.owner_user_id,
        organisation_id=key_row.owner_organisation_id,
    )
