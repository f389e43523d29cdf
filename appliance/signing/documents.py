"""Signing documents with recorded HSM keys, in two steps, and verifying files.

1. `resolve_signer(session, kit, key_label)` runs inside the caller's transaction and never
   commits: it refreshes the appliance's own CRLs when they are due, finds the key's record
   and its certificate, checks that the certificate may sign now (database status, validity,
   its CA too), and reads the chain, the trust material and the timestamp authority. The
   result is plain data, usable after the transaction has ended.
2. `sign_stream(kit, signer, source, output)` signs a stream into a stream with the HSM
   (`appliance.signing.pades.sign_pdf`: path validation against the CRLs read in step 1,
   preflight, the stamp, one pass of hashing). It touches no database.

Both take the `SigningKit` built once by `build_services`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from asn1crypto import x509 as asn1_x509
from pyhanko.sign.timestamps import TimeStamper
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from appliance.clock import Clock
from appliance.config import TsaMode
from appliance.errors import NotFound, Unavailable
from appliance.hsm.api import KeyCustody, KeyRef
from appliance.models.enums import CertificateStatus, KeyPurpose
from appliance.models.pki import Certificate, HsmKey
from appliance.pki.ca import PkiContext, key_ref_of, make_context
from appliance.pki.crl import refresh_own_crls
from appliance.pki.errors import CertificateNotUsable
from appliance.pki.revoke import check_certificate_usable as check_certificate_record
from appliance.pki.tsa import TsaMaterial, load_tsa, make_timestamper
from appliance.signing.kit import SigningKit
from appliance.signing.pades import SignedDocument, SignOptions, sign_pdf
from appliance.signing.trust import TrustMaterial, load_chain, load_trust_material
from appliance.signing.validate import ValidationReport, validate_pdf

DOCUMENT_KEY_PURPOSES = frozenset({KeyPurpose.PERSON, KeyPurpose.ORGANISATION, KeyPurpose.APPLIANCE})
"""Keys that may sign documents; CA and TSA keys sign only certificates, CRLs and timestamps."""


@dataclass(frozen=True)
class ResolvedSigner:
    """A key checked fit to sign now, with everything `sign_stream` needs from the database."""

    key_label: str
    key: KeyRef
    """The HSM key as recorded (label, CKA_ID, algorithm)."""
    certificate_id: int
    """Row id of the certificate that signs (`certificates.id`), e.g. for evidence records."""
    certificate: asn1_x509.Certificate
    chain: tuple[asn1_x509.Certificate, ...]
    """Issuers of the certificate, nearest first, without the root."""
    trust: TrustMaterial
    """Roots, intermediates and the newest CRLs (after the refresh) the signature is checked against."""
    timestamper: TimeStamper | None
    """Signature (and document) timestamps; None signs PAdES B-B."""


def resolve_signer(
    session: Session, kit: SigningKit, key_label: str, *, timestamp: bool = True
) -> ResolvedSigner:
    """Find and check the signer of HSM key `key_label` inside the caller's transaction.

    May flush new CRLs of the appliance's CAs (when the newest is due); never commits. With
    `timestamp=False`, or `tsa.mode: none`, the signer has no timestamper (PAdES B-B).

    :raises Unavailable: no HSM is configured.
    :raises NotFound: no such key, or no certificate for it.
    :raises CertificateNotUsable: not a document-signing key; or the certificate is revoked,
        superseded, expired or not yet valid (its CA too).
    :raises PkiNotInitialised: the internal TSA has no certificate yet (with `timestamp`).
    """
    pki = _pki_context(kit)
    refresh_own_crls(session, pki)
    key_row = session.scalars(select(HsmKey).where(HsmKey.label == key_label)).first()
    if key_row is None:
        raise NotFound(f"no key labelled {key_label!r} is recorded in the appliance")
    if key_row.purpose not in DOCUMENT_KEY_PURPOSES:
        raise CertificateNotUsable(
            f"the key {key_label!r} is the appliance's {key_row.purpose.value} key; "
            "documents are signed only with personal, organisation or appliance keys"
        )
    certificate = _usable_certificate(session, key_row, pki)
    return ResolvedSigner(
        key_label=key_label,
        key=key_ref_of(key_row),
        certificate_id=certificate.id,
        certificate=asn1_x509.Certificate.load(certificate.der),
        chain=load_chain(session, certificate),
        trust=load_trust_material(session),
        timestamper=load_timestamper(session, kit) if timestamp else None,
    )


def sign_stream(
    kit: SigningKit,
    signer: ResolvedSigner,
    source: BinaryIO,
    output: BinaryIO,
    options: SignOptions | None = None,
) -> SignedDocument:
    """Sign `source` into `output` (readable, writable, seekable) with the resolved signer.

    As `sign_pdf`: `output` receives the input and the appended signature, and is left empty
    on failure; durable storage (fsync, rename) is the caller's (`appliance.storage.atomic_output`
    or the blob store).

    :raises Unavailable: no HSM is configured.
    :raises PdfRejected: the PDF cannot be signed, or the placement is wrong.
    :raises CertificateNotUsable: the certificate is expired, revoked or untrusted at the kit's time.
    :raises SigningFailed: pyHanko failed for another reason.
    """
    custody = _custody(kit)
    with custody.pdf_signer(signer.key, signer.certificate, signer.chain) as pdf_signer:
        return sign_pdf(
            source,
            output,
            signer=pdf_signer,
            trust=signer.trust,
            clock=kit.clock,
            timestamper=signer.timestamper,
            options=options,
        )


def load_timestamper(session: Session, kit: SigningKit) -> TimeStamper | None:
    """The configured timestamp authority, read in the caller's session, or None (`tsa.mode: none`).

    The internal TSA's certificate and chain are read here rather than on first use, so a
    timestamp never needs a second database connection while the caller's transaction is open
    (on SQLite that one holds the write lock, and the second would wait for it).

    One timestamper per TSA (certificate, or URL) is kept in the kit: pyHanko's timestamper
    learns the TSA's certificates from a first, dummy token and keeps them, so a fresh one for
    every signature would cost an extra timestamp each time. A new TSA certificate is a new
    key here; the kept one checks its material's validity for every token it makes.

    :raises PkiNotInitialised: the internal TSA has no certificate yet.
    :raises CaNotUsable: the internal TSA's certificate or a CA above it is revoked or superseded.
    """
    tsa = kit.config.tsa
    if tsa.mode is TsaMode.NONE:
        return None
    pki = _pki_context(kit)
    if tsa.mode is TsaMode.INTERNAL:
        material = load_tsa(session)
        key = ("internal", material.tsa.certificate.dump())
        loader: Callable[[], TsaMaterial] = lambda: material  # noqa: E731
    else:
        key, loader = ("external", (tsa.url or "").encode()), _no_material
    kept = kit.timestampers.get(key)
    if kept is None:
        kept = kit.timestampers.setdefault(key, make_timestamper(pki, loader))
    return cast(TimeStamper, kept)


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


def _usable_certificate(session: Session, key_row: HsmKey, pki: PkiContext) -> Certificate:
    rows = session.scalars(
        select(Certificate)
        .where(Certificate.key_id == key_row.id)
        .order_by(Certificate.not_after.desc(), Certificate.id.desc())
    ).all()
    if not rows:
        raise NotFound(f"the key {key_row.label!r} has no certificate")
    active = [row for row in rows if row.status is CertificateStatus.ACTIVE]
    # check the newest active one, or else the newest at all, so the refusal names the reason
    chosen = active[0] if active else rows[0]
    return check_certificate_record(session, chosen.id, pki.clock.now())


def _custody(kit: SigningKit) -> KeyCustody:
    if kit.custody is None:
        raise Unavailable("no HSM is configured (config section `hsm`); signing needs it")
    return kit.custody


def _pki_context(kit: SigningKit) -> PkiContext:
    return make_context(_custody(kit), kit.config, kit.clock)


def _no_material() -> TsaMaterial:
    raise Unavailable("the internal timestamp authority is not configured (tsa.mode is external)")


__all__ = [
    "DOCUMENT_KEY_PURPOSES",
    "CertificateNotUsable",
    "ResolvedSigner",
    "load_timestamper",
    "resolve_signer",
    "sign_stream",
    "verify_file",
]
