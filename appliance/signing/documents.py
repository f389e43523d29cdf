"""Signing and verifying files for operators (the CLI) and, later, the workflow.

Each function is one operation: it finds the key and its certificate, checks the
certificate may sign now (database status and CRLs), signs with the HSM and writes
the output atomically, or validates a file against the appliance's trust roots.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from pyhanko.sign.timestamps import TimeStamper
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from appliance.clock import Clock
from appliance.config import AppConfig, TsaMode
from appliance.errors import NotFound, Unavailable
from appliance.hsm.api import KeyCustody
from appliance.models.enums import CertificateStatus, KeyPurpose
from appliance.models.pki import Certificate, HsmKey
from appliance.pki.ca import make_context
from appliance.pki.crl import refresh_own_crls
from appliance.pki.errors import CertificateNotUsable
from appliance.pki.revoke import check_certificate_usable as check_certificate_record
from appliance.pki.tsa import TsaMaterial, load_tsa, make_timestamper
from appliance.signing.pades import SignedDocument, SignOptions, sign_pdf_file
from appliance.signing.trust import TrustMaterial, load_chain, load_trust_material
from appliance.signing.validate import ValidationReport, validate_pdf

DOCUMENT_KEY_PURPOSES = frozenset({KeyPurpose.PERSON, KeyPurpose.ORGANISATION, KeyPurpose.APPLIANCE})
"""Keys that may sign documents; CA and TSA keys sign only certificates, CRLs and timestamps."""


@dataclass(frozen=True)
class SignerRecord:
    """The database side of a signing key: its certificate row and the chain above it."""

    key_label: str
    certificate: Certificate
    trust: TrustMaterial


def find_signer_record(session: Session, key_label: str, now_clock: Clock) -> SignerRecord:
    """The active certificate of the HSM key labelled `key_label`, checked usable now.

    :raises NotFound: no such key, or no certificate for it.
    :raises CertificateNotUsable: not a document-signing key; or the certificate is revoked,
        superseded, expired or not yet valid (its CA too).
    """
    key_row = session.scalars(select(HsmKey).where(HsmKey.label == key_label)).first()
    if key_row is None:
        raise NotFound(f"no key labelled {key_label!r} is recorded in the appliance")
    if key_row.purpose not in DOCUMENT_KEY_PURPOSES:
        raise CertificateNotUsable(
            f"the key {key_label!r} is the appliance's {key_row.purpose.value} key; "
            "documents are signed only with personal, organisation or appliance keys"
        )
    rows = session.scalars(
        select(Certificate)
        .where(Certificate.key_id == key_row.id)
        .order_by(Certificate.not_after.desc(), Certificate.id.desc())
    ).all()
    if not rows:
        raise NotFound(f"the key {key_label!r} has no certificate")
    active = [row for row in rows if row.status is CertificateStatus.ACTIVE]
    # check the newest active one, or else the newest at all, so the refusal names the reason
    chosen = active[0] if active else rows[0]
    certificate = check_certificate_record(session, chosen.id, now_clock.now())
    return SignerRecord(key_label=key_label, certificate=certificate, trust=load_trust_material(session))


def sign_file_with_key(
    *,
    config: AppConfig,
    custody: KeyCustody | None,
    sessions: sessionmaker[Session],
    clock: Clock,
    timestamper: TimeStamper | None,
    key_label: str,
    source: Path,
    destination: Path,
    options: SignOptions,
) -> SignedDocument:
    """Sign `source` into `destination` with the HSM key `key_label` (nothing written on failure).

    The appliance's own CRLs are refreshed first when they are due (see `refresh_own_crls`).
    """
    if custody is None:
        raise Unavailable("no HSM is configured (config section `hsm`); signing needs it")
    pki = make_context(custody, config, clock)
    with sessions.begin() as session:
        refresh_own_crls(session, pki)
        record = find_signer_record(session, key_label, clock)
        certificate = asn1_x509.Certificate.load(record.certificate.der)
        chain = load_chain(session, record.certificate)
    key = custody.find_key(label=key_label)
    with custody.pdf_signer(key, certificate, chain) as signer:
        return sign_pdf_file(
            source,
            destination,
            signer=signer,
            trust=record.trust,
            clock=clock,
            timestamper=timestamper,
            options=options,
        )


def verify_file(*, sessions: sessionmaker[Session], clock: Clock, path: Path) -> ValidationReport:
    """Validation report for the PDF at `path` against the roots and CRLs in the database."""
    with sessions() as session:
        trust = load_trust_material(session)
    try:
        stream = path.open("rb")
    except FileNotFoundError as exc:
        raise NotFound(f"{path} does not exist") from exc
    with stream:
        return validate_pdf(stream, trust, clock)


def resolve_timestamper(
    config: AppConfig, custody: KeyCustody | None, sessions: sessionmaker[Session], clock: Clock
) -> TimeStamper | None:
    """The configured timestamp authority (internal TSA in the HSM, external URL) or None."""
    if config.tsa.mode is TsaMode.NONE:
        return None
    ctx = make_context(custody, config, clock)
    if config.tsa.mode is TsaMode.INTERNAL:
        with sessions() as session:
            material = load_tsa(session)
        return make_timestamper(ctx, lambda: material)
    return make_timestamper(ctx, lambda: _no_material())


def _no_material() -> TsaMaterial:
    raise Unavailable("the internal timestamp authority is not configured (tsa.mode is external)")


__all__ = [
    "CertificateNotUsable",
    "SignerRecord",
    "find_signer_record",
    "resolve_timestamper",
    "sign_file_with_key",
    "verify_file",
]
