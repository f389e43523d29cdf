"""Optional external CA: a CSR for a key in the HSM, and import of the certificate issued for it.

The imported certificate must carry exactly the HSM key's public key, allow signing
(digitalSignature + nonRepudiation) and be valid now; the chain given with it must link up
and end at a root an administrator has already trusted (`add_trust_root`, a separate,
logged admin action). An import never adds a trust anchor: its intermediates are stored as
EXTERNAL_CA, which builds paths but is never trusted on its own.

Signing validates revocation hard-fail, so a certificate that names a CRL distribution point
signs only while a current CRL of its CA is stored: `import_crl` stores one (the appliance
never fetches: it has no route to the enterprise CA), and must be repeated before each
nextUpdate.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import pairwise
from typing import TypeVar

from asn1crypto import crl as asn1_crl
from asn1crypto import keys, pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from appliance.errors import Conflict, InvalidInput
from appliance.models.enums import CertificateKind, CertificateStatus, KeyPurpose
from appliance.models.pki import Certificate, Crl, HsmKey
from appliance.pki import certs
from appliance.pki.ca import PkiContext, generate_recorded_key, key_ref_of, store_certificate
from appliance.pki.crl import CA_KINDS, latest_crl
from appliance.pki.errors import CertificateMismatch, CertificateNotFound

_Ext = TypeVar("_Ext", bound=x509.ExtensionType)

EXTERNAL_ISSUER_KINDS = (CertificateKind.EXTERNAL_CA, CertificateKind.TRUST_ROOT)
"""Stored certificates whose CRLs an administrator imports (`import_crl`)."""
MAX_CRL_NUMBER = 2**63 - 1
"""`crls.number` is a 64-bit BIGINT column (RFC 5280 allows up to 20 octets; CAs stay far below)."""

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


def _load_crl(der_or_pem: bytes) -> tuple[bytes, asn1_crl.CertificateList]:
    """The DER and the fully parsed CRL; InvalidInput for anything else."""
    der = der_or_pem
    try:
        if pem.detect(der_or_pem):
            kind, _headers, der = pem.unarmor(der_or_pem)
            if kind != "X509 CRL":
                raise ValueError(f"PEM block {kind!r}")
        crl = asn1_crl.CertificateList.load(der, strict=True)
        crl.native  # noqa: B018 - asn1crypto parses lazily: force every field now
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidInput("the file is not an X.509 CRL (DER or PEM); give the CA's CRL file") from exc
    return der, crl


def _crl_signed_by(crl: x509.CertificateRevocationList, row: Certificate) -> bool:
    try:
        key = x509.load_der_x509_certificate(row.der).public_key()
        # a key that cannot sign (X25519, DH) raises TypeError: it issued no CRL
        return crl.is_signature_valid(key)  # type: ignore[arg-type]
    except (ValueError, TypeError, UnsupportedAlgorithm, InvalidSignature):
        return False


def _crl_issuer(session: Session, crl: asn1_crl.CertificateList, der: bytes) -> Certificate:
    """The active external CA or trusted root named as the CRL's issuer whose key signed it."""
    issuer_name = crl.issuer
    named = [
        row
        for row in session.scalars(
            select(Certificate).where(Certificate.kind.in_(EXTERNAL_ISSUER_KINDS + CA_KINDS))
        )
        # asn1crypto compares names as RFC 5280 says (case and spacing of strings ignored)
        if asn1_x509.Certificate.load(row.der).subject == issuer_name
    ]
    external = [
        row for row in named if row.kind in EXTERNAL_ISSUER_KINDS and row.status is CertificateStatus.ACTIVE
    ]
    try:
        signed = x509.load_der_x509_crl(der)
    except ValueError as exc:
        raise InvalidInput("the CRL cannot be read for its signature check; give the CA's CRL file") from exc
    issuer = next((row for row in external if _crl_signed_by(signed, row)), None)
    name = issuer_name.human_friendly
    if issuer is not None:
        usage = _extension(x509.load_der_x509_certificate(issuer.der), x509.KeyUsage)
        if usage is not None and not usage.crl_sign:
            # validation would ignore such a CRL and signing would still fail: say so now
            raise InvalidInput(f"the certificate of {name} may not sign CRLs (key usage cRLSign)")
        return issuer
    if any(row.kind in CA_KINDS for row in named):
        raise InvalidInput(
            f"this CRL names the appliance's own CA ({name}); the appliance publishes its own CRLs"
            " itself (`appliance pki crl`): import only CRLs of external CAs"
        )
    if external:
        raise InvalidInput(
            f"the CRL's signature does not verify with the stored certificate of {name}:"
            " it is damaged, forged or signed by another key; get the CRL from the CA again"
        )
    raise CertificateNotFound(
        f"no external CA named {name} is trusted by this appliance; trust its root"
        " (`appliance pki trust-root add`) or import a certificate it issued with its chain first"
    )


def import_crl(session: Session, ctx: PkiContext, der_or_pem: bytes) -> Crl:
    """Store a CRL of an external CA (an intermediate stored by an import, or a trusted root).

    Signing and validation then use it like the appliance's own CRLs (the newest number per
    issuer). The caller records this in the operation log in the same transaction, as for
    `add_trust_root`. Flushes, never commits.
    :raises InvalidInput: not a CRL; a delta CRL; a CRL of the appliance's own CA; a signature
        that does not verify; past its nextUpdate or without one; thisUpdate in the future;
        no CRL number, or one too large to store.
    :raises CertificateNotFound: no trusted external CA has the CRL's issuer name.
    :raises Conflict: the CRL number is not above the newest stored CRL of that CA.
    """
    der, crl = _load_crl(der_or_pem)
    if crl.delta_crl_indicator_value is not None:
        raise InvalidInput("this is a delta CRL; import the CA's full CRL instead")
    issuer = _crl_issuer(session, crl, der)
    name = issuer.subject
    tbs = crl["tbs_cert_list"]
    this_update: datetime = tbs["this_update"].native
    next_update: datetime | None = tbs["next_update"].native
    now = ctx.now()
    if next_update is None:
        raise InvalidInput(
            f"the CRL of {name} has no nextUpdate, so the appliance cannot tell when it goes stale;"
            " ask the CA for a CRL with a nextUpdate"
        )
    if this_update > now:
        raise InvalidInput(
            f"the CRL of {name} is issued in the future (thisUpdate {this_update:%Y-%m-%d %H:%M} UTC);"
            " check this appliance's clock and the CA's"
        )
    if now >= next_update:
        raise InvalidInput(
            f"the CRL of {name} is stale (nextUpdate {next_update:%Y-%m-%d %H:%M} UTC has passed);"
            " download the CA's current CRL"
        )
    number = crl.crl_number_value
    if number is None:
        raise InvalidInput(
            f"the CRL of {name} has no CRL number; the appliance needs it to tell a newer CRL"
            " from an older one, so it cannot accept this CRL"
        )
    number = int(number)
    if number > MAX_CRL_NUMBER:
        raise InvalidInput(
            f"the CRL of {name} has number {number}, larger than this appliance can store"
            f" (at most {MAX_CRL_NUMBER}); report this to the appliance's maintainers"
        )
    newest = latest_crl(session, issuer.id)
    if newest is not None and number <= newest.number:
        raise Conflict(
            f"the CRL of {name} has number {number}, but number {newest.number} is stored already;"
            " import a newer CRL"
        )
    row = Crl(issuer_id=issuer.id, number=number, this_update=this_update, next_update=next_update, der=der)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        raise Conflict(f"CRL number {number} of {name} was imported at the same time; try again") from exc
    return row
