"""Issuing end-entity certificates for keys generated in the HSM: people, organisations, the TSA and
the appliance itself."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import keys, x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.errors import InvalidInput
from appliance.hsm import KeyRef
from appliance.models.enums import CertificateKind, KeyPurpose
from appliance.models.pki import Certificate, HsmKey
from appliance.pki import certs
from appliance.pki.ca import (
    CLOCK_SKEW,
    PkiContext,
    active_certificate,
    ca_name,
    ca_url,
    crl_url,
    generate_recorded_key,
    load_material,
    store_certificate,
)
from appliance.pki.errors import PkiNotInitialised

log = logging.getLogger(__name__)

_PURPOSE = {CertificateKind.PERSON: KeyPurpose.PERSON, CertificateKind.ORGANISATION: KeyPurpose.ORGANISATION}
# Signing certificates: digitalSignature + nonRepudiation (contentCommitment); EKU documentSigning
# (RFC 9336) and emailProtection, not critical, so validators that know neither still accept it.
SIGNING_KEY_USAGE = {"digital_signature", "non_repudiation"}
SIGNING_EKU = [certs.DOCUMENT_SIGNING_EKU, "email_protection"]
TSA_KEY_USAGE = {"digital_signature"}
MAX_FIELD = 64
"""RFC 5280 upper bound (ub-common-name etc.) for CN, O and OU."""


@dataclass(frozen=True)
class IssuedCertificate:
    row: Certificate
    certificate: x509.Certificate
    key: KeyRef


def _check_subject(subject: certs.SubjectInfo) -> None:
    for name, value in (
        ("common name", subject.common_name),
        ("organisation", subject.organisation),
        ("organisational unit", subject.organisational_unit),
    ):
        if value is None:
            continue
        if not value.strip() or len(value) > MAX_FIELD or not value.isprintable():
            raise InvalidInput(f"the {name} must be 1-{MAX_FIELD} printable characters")
    if not subject.common_name.strip():
        raise InvalidInput("a certificate needs a common name")
    if subject.email is not None:
        local, at, domain = subject.email.partition("@")
        if not (local and at and "." in domain) or not subject.email.isascii() or len(subject.email) > 128:
            raise InvalidInput("the e-mail address is not valid for a certificate")
    if subject.country is not None and (len(subject.country) != 2 or not subject.country.isalpha()):
        raise InvalidInput("the country must be a two-letter code")


def issue_certificate(
    session: Session,
    ctx: PkiContext,
    *,
    kind: CertificateKind,
    subject: certs.SubjectInfo,
    user_id: int | None = None,
    organisation_id: int | None = None,
    consent_at: datetime | None = None,
    consent_agreement_version: str | None = None,
) -> IssuedCertificate:
    """Generate a key pair in the HSM and issue a signing certificate for it from the issuing CA.

    Flushes, never commits.
    :raises InvalidInput: bad subject data or kind.
    :raises PkiNotInitialised: no issuing CA yet.
    :raises CaNotUsable: the issuing CA (or the root) is expired, revoked or superseded.
    """
    if kind not in _PURPOSE:
        raise InvalidInput("only person and organisation certificates are issued here")
    _check_subject(subject)
    now = ctx.now()
    # checked before a key is generated, so a refused request leaves nothing in the token
    issuer = load_material(session, CertificateKind.ISSUING_CA, now)
    key_row, key = generate_recorded_key(
        session, ctx, _PURPOSE[kind], owner_user_id=user_id, owner_organisation_id=organisation_id
    )
    spki = keys.PublicKeyInfo.load(key_row.public_key_der)
    template = certs.CertificateTemplate(
        serial=ctx.new_serial(),
        subject=subject.to_name(),
        subject_key=spki,
        not_before=now - CLOCK_SKEW,
        # never past the CA chain's own end: relying parties would reject the rest of it anyway
        not_after=min(now + timedelta(days=ctx.config.pki.certificate_validity_days), issuer.valid_until),
        extensions=certs.end_entity_extensions(
            spki,
            issuer_spki=issuer.certificate.public_key,
            key_usage=SIGNING_KEY_USAGE,
            extended_key_usage=SIGNING_EKU,
            eku_critical=False,
            email=subject.email,
            crl_url=crl_url(ctx.config),
            ca_issuers_url=ca_url(ctx.config),
        ),
    )
    cert = certs.issue_certificate_der(
        ctx.custody, template, issuer_key=issuer.key, issuer_name=issuer.certificate.subject
    )
    row = store_certificate(
        session,
        ctx,
        cert,
        kind=kind,
        issuer_id=issuer.row.id,
        key_row=key_row,
        user_id=user_id,
        organisation_id=organisation_id,
    )
    row.consent_at = consent_at
    row.consent_agreement_version = consent_agreement_version
    log.info("issued %s certificate %s (serial %s)", kind.value, row.subject, row.serial)
    return IssuedCertificate(row=row, certificate=cert, key=key)


def tsa_certificate_end(ctx: PkiContext, issuer_end: datetime) -> datetime:
    """When a TSA certificate issued now ends: its configured life, never past its issuer."""
    days = ctx.config.pki.tsa_validity_days
    return issuer_end if days is None else min(issuer_end, ctx.now() + timedelta(days=days))


def issue_tsa_certificate(session: Session, ctx: PkiContext) -> Certificate:
    """A TSA key in the HSM with a certificate whose only EKU is timeStamping (critical, RFC 3161)."""
    now = ctx.now()
    issuer = load_material(session, CertificateKind.ISSUING_CA, now)
    key_row, _key = generate_recorded_key(session, ctx, KeyPurpose.TSA)
    spki = keys.PublicKeyInfo.load(key_row.public_key_der)
    template = certs.CertificateTemplate(
        serial=ctx.new_serial(),
        subject=ca_name(ctx, f"{ctx.config.pki.organisation} Time-Stamping Authority"),
        subject_key=spki,
        not_before=now - CLOCK_SKEW,
        not_after=tsa_certificate_end(ctx, issuer.valid_until),
        extensions=certs.end_entity_extensions(
            spki,
            issuer_spki=issuer.certificate.public_key,
            # the TSA key only signs timestamp tokens and commits to no content: digitalSignature
            # only, so a validator that requires nonRepudiation never takes a token for a signature
            key_usage=TSA_KEY_USAGE,
            extended_key_usage=["time_stamping"],
            eku_critical=True,
            email=None,
            crl_url=crl_url(ctx.config),
            ca_issuers_url=ca_url(ctx.config),
        ),
    )
    cert = certs.issue_certificate_der(
        ctx.custody, template, issuer_key=issuer.key, issuer_name=issuer.certificate.subject
    )
    row = store_certificate(
        session, ctx, cert, kind=CertificateKind.TSA, issuer_id=issuer.row.id, key_row=key_row
    )
    log.info("issued the TSA certificate %s", row.subject)
    return row


def issue_appliance_certificate(session: Session, ctx: PkiContext) -> Certificate:
    """The appliance's own document key in the HSM, with a signing certificate from the issuing CA.

    It signs what the appliance itself produces (certificates of completion), so its
    certificate carries the same key usage and EKUs as a person's. Like the TSA's it runs to the end
    of the CA chain and is renewed by `appliance pki init`, not by a holder's request.
    Flushes, never commits.
    :raises PkiNotInitialised: no issuing CA yet.
    :raises CaNotUsable: the issuing CA (or the root) is expired, revoked or superseded.
    """
    now = ctx.now()
    issuer = load_material(session, CertificateKind.ISSUING_CA, now)
    key_row, _key = generate_recorded_key(session, ctx, KeyPurpose.APPLIANCE)
    spki = keys.PublicKeyInfo.load(key_row.public_key_der)
    template = certs.CertificateTemplate(
        serial=ctx.new_serial(),
        subject=ca_name(ctx, f"{ctx.config.pki.organisation} E-Signature Appliance"),
        subject_key=spki,
        not_before=now - CLOCK_SKEW,
        not_after=issuer.valid_until,
        extensions=certs.end_entity_extensions(
            spki,
            issuer_spki=issuer.certificate.public_key,
            key_usage=SIGNING_KEY_USAGE,
            # emailProtection too, as for people: poppler (NSS) checks document signers as
            # e-mail signers and does not trust a signer whose EKU lacks it
            extended_key_usage=SIGNING_EKU,
            eku_critical=False,
            email=None,
            crl_url=crl_url(ctx.config),
            ca_issuers_url=ca_url(ctx.config),
        ),
    )
    cert = certs.issue_certificate_der(
        ctx.custody, template, issuer_key=issuer.key, issuer_name=issuer.certificate.subject
    )
    row = store_certificate(
        session, ctx, cert, kind=CertificateKind.APPLIANCE, issuer_id=issuer.row.id, key_row=key_row
    )
    log.info("issued the appliance document certificate %s", row.subject)
    return row


def appliance_key_label(session: Session) -> str:
    """HSM label of the appliance's document key (of its newest active certificate).

    For `appliance.signing.documents.resolve_signer`, which checks that the certificate may
    sign now.
    :raises PkiNotInitialised: the appliance has no active document certificate.
    """
    row = active_certificate(session, CertificateKind.APPLIANCE)
    label = None
    if row is not None and row.key_id is not None:
        label = session.scalar(select(HsmKey.label).where(HsmKey.id == row.key_id))
    if label is None:
        raise PkiNotInitialised(
            "the appliance has no document-signing key yet; run `appliance pki init` to create it"
        )
    return label
