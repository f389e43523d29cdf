"""Signing certificates on demand: the agreement, recorded consent, a key made in the HSM.

A person without a usable personal certificate is offered one when it is their turn; an
organisation's seal gets its certificate from the organisation's admin. Either way the
agreement text is shown first and the consent recorded (version, sha256 of the exact text
shown, time, address) in the transaction that issues the certificate.

The holder renews from `RENEWAL_WINDOW` before expiry, only with fresh consent (nothing renews
by itself): a new key and certificate, and the old one is superseded. The holder revokes with
a reason, and the CRL is published at once. A certificate whose subject no longer matches the
holder's directory data (name, organisation) no longer signs: the holder applies for a new one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from asn1crypto import pem
from asn1crypto import x509 as asn1_x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.auth.records import ClientInfo, Principal
from appliance.db import transaction
from appliance.errors import Conflict, NotFound
from appliance.models import (
    Certificate,
    CertificateConsent,
    CertificateKind,
    CertificateStatus,
    HsmKey,
    RevocationReason,
    User,
)
from appliance.notify import notify_user
from appliance.pki import certs
from appliance.pki.ca import make_context
from appliance.pki.errors import CertificateNotUsable
from appliance.pki.issue import issue_certificate
from appliance.pki.revoke import check_certificate_usable, revoke_certificate
from appliance.workflow.access import active_user
from appliance.workflow.agreement import AGREEMENT_VERSION, agreement_text
from appliance.workflow.context import WorkflowContext
from appliance.workflow.errors import CertificateRequired
from appliance.workflow.store import log_user_action


@dataclass(frozen=True)
class Agreement:
    version: str
    locale: str
    text: str
    sha256: str


@dataclass(frozen=True)
class Consent:
    """What the person accepted: the version and sha256 of the text they were shown."""

    agreement_version: str
    agreement_sha256: str
    locale: str


@dataclass(frozen=True)
class CertificateView:
    id: int
    kind: CertificateKind
    subject: str
    serial: str
    not_before: datetime
    not_after: datetime
    status: CertificateStatus
    sha256_fingerprint: str


@dataclass(frozen=True)
class CertificateStanding:
    usable: CertificateView | None
    """The certificate that signs now, if any."""
    renewable_from: datetime | None
    """When `usable` may be renewed (`RENEWAL_WINDOW` before it expires)."""
    outdated: bool
    """No usable certificate because the one held names the person as they no longer are."""


class HolderReason(StrEnum):
    """Why a holder revokes their certificate (the reasons the certificate agreement offers)."""

    KEY_COMPROMISE = "key_compromise"
    INFORMATION_CHANGED = "information_changed"
    NO_LONGER_NEEDED = "no_longer_needed"


HOLDER_REASONS = {
    HolderReason.KEY_COMPROMISE: RevocationReason.KEY_COMPROMISE,
    HolderReason.INFORMATION_CHANGED: RevocationReason.AFFILIATION_CHANGED,
    HolderReason.NO_LONGER_NEEDED: RevocationReason.CESSATION_OF_OPERATION,
}
"""Each holder's reason as the CRL states it (RFC 5280 CRLReason)."""

RENEWAL_WINDOW = timedelta(days=30)


def certificate_agreement(locale: str | None) -> Agreement:
    text, used_locale = agreement_text(locale)
    return Agreement(AGREEMENT_VERSION, used_locale, text, hashlib.sha256(text.encode()).hexdigest())


def my_certificate(ctx: WorkflowContext, principal: Principal) -> CertificateView | None:
    """The person's usable personal certificate, if they have one."""
    with ctx.sessions() as session:
        row = usable_personal_certificate(session, principal.user_id, ctx.clock.now())
        return certificate_view(row) if row else None


def apply_personal_certificate(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, consent: Consent
) -> CertificateView:
    now = ctx.clock.now()
    check_consent(consent)
    with transaction(ctx.sessions) as session:
        user = active_user(session, principal.user_id)
        if usable_personal_certificate(session, user.id, now) is not None:
            raise Conflict("You already have a valid personal certificate.")
        row = _issue_personal(ctx, session, user, consent, now)
        # a certificate with an outdated subject may not sign any more: the new one replaces it
        for old in _active_personal(session, user.id):
            if old.id != row.id and old.not_after > now:
                old.status = CertificateStatus.SUPERSEDED
        record_consent(session, row, user, consent, client, now)
        return certificate_view(row)


def renew_personal_certificate(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, consent: Consent
) -> CertificateView:
    """A new certificate (and key) for one that expires within `RENEWAL_WINDOW`; the old one
    is superseded at once.

    :raises Conflict: no valid certificate to renew, or it is not yet in its renewal window.
    """
    now = ctx.clock.now()
    check_consent(consent)
    with transaction(ctx.sessions) as session:
        user = active_user(session, principal.user_id)
        current = usable_personal_certificate(session, user.id, now)
        if current is None:
            raise Conflict("You have no valid certificate to renew; apply for a new one instead.")
        check_renewal_window(current, now, "Your certificate")
        row = _issue_personal(ctx, session, user, consent, now)
        current.status = CertificateStatus.SUPERSEDED
        record_consent(session, row, user, consent, client, now)
        log_user_action(
            session,
            "certificate.renewed",
            user,
            client,
            now,
            "certificate",
            row.id,
            {"serial": row.serial, "replaces_serial": current.serial},
        )
        return certificate_view(row)


def revoke_my_certificate(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, certificate_id: int, reason: HolderReason
) -> CertificateView:
    """Revoke one of the person's certificates; the issuing CA's CRL is published in the same
    transaction, so relying parties see it at once.

    :raises NotFound: no such certificate of theirs (someone else's answers the same).
    :raises Conflict: it is revoked already.
    """
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        user = active_user(session, principal.user_id)
        row = session.get(Certificate, certificate_id)
        if row is None or row.user_id != user.id or row.kind is not CertificateKind.PERSON:
            raise NotFound("You have no certificate with that id.")
        if row.status is CertificateStatus.REVOKED:
            raise Conflict("This certificate is revoked already.")
        pki = make_context(ctx.signing.custody, ctx.config, ctx.clock)
        revoke_certificate(session, pki, row.id, HOLDER_REASONS[reason])
        log_user_action(
            session,
            "certificate.revoked",
            user,
            client,
            now,
            "certificate",
            row.id,
            {"serial": row.serial, "reason": reason.value},
        )
        return certificate_view(row)


def notify_renewals_due(ctx: WorkflowContext) -> int:
    """Tell each holder once, from `RENEWAL_WINDOW` before it expires, that the certificate
    they sign with is due for renewal (in-app, and by mail when mail is on); returns how many."""
    now = ctx.clock.now()
    told = 0
    with transaction(ctx.sessions) as session:
        due = session.scalars(
            select(Certificate)
            .where(
                Certificate.kind == CertificateKind.PERSON,
                Certificate.status == CertificateStatus.ACTIVE,
                Certificate.renewal_noticed_at.is_(None),
                Certificate.user_id.is_not(None),
                Certificate.not_after > now,
                Certificate.not_after <= now + RENEWAL_WINDOW,
            )
            .order_by(Certificate.id)
        ).all()
        for row in due:
            user = session.get(User, row.user_id)
            if (
                user is None
                or not user.active
                or usable_personal_certificate(session, user.id, now) is not row
            ):
                continue  # gone, or not what they sign with (they apply anew rather than renew)
            params = {
                "serial": row.serial,
                "expires": row.not_after.isoformat(),
                "link": f"{ctx.config.private_cloud_address}/certificates",
            }
            notify_user(session, user, "certificate_renewal_due", params, now=now, mail=ctx.mail)
            row.renewal_noticed_at = now
            told += 1
    return told


def certificate_standing(ctx: WorkflowContext, principal: Principal) -> CertificateStanding:
    """What the person can do about their certificate now (the certificates page's offer)."""
    now = ctx.clock.now()
    with ctx.sessions() as session:
        user = active_user(session, principal.user_id)
        usable = usable_personal_certificate(session, user.id, now)
        if usable is None:
            return CertificateStanding(None, renewable_from=None, outdated=_has_outdated(session, user, now))
        return CertificateStanding(
            certificate_view(usable), renewable_from=usable.not_after - RENEWAL_WINDOW, outdated=False
        )


def list_my_certificates(ctx: WorkflowContext, principal: Principal) -> tuple[CertificateView, ...]:
    """Every personal certificate the person holds or held, newest first."""
    with ctx.sessions() as session:
        user = active_user(session, principal.user_id)
        rows = session.scalars(
            select(Certificate)
            .where(Certificate.user_id == user.id, Certificate.kind == CertificateKind.PERSON)
            .order_by(Certificate.not_before.desc(), Certificate.id.desc())
        )
        return tuple(certificate_view(row) for row in rows)


def my_certificate_pem(ctx: WorkflowContext, principal: Principal, certificate_id: int) -> tuple[str, bytes]:
    """A personal certificate of the person as PEM, with a file name from its serial.

    :raises NotFound: no such certificate of theirs (someone else's answers the same).
    """
    with ctx.sessions() as session:
        user = active_user(session, principal.user_id)
        row = session.get(Certificate, certificate_id)
        if row is None or row.user_id != user.id or row.kind is not CertificateKind.PERSON:
            raise NotFound("You have no certificate with that id.")
        return f"certificate-{row.serial[:40]}.pem", pem.armor("CERTIFICATE", row.der)


def usable_personal_certificate(session: Session, user_id: int, now: datetime) -> Certificate | None:
    """The person's newest certificate that may sign now: valid, not revoked or superseded,
    and naming them as the directory does today."""
    user = session.get(User, user_id)
    if user is None:
        return None
    return next(
        (
            row
            for row in _active_personal(session, user_id)
            if is_usable(session, row, now) and _names(user, row)
        ),
        None,
    )


def personal_signing_key_label(session: Session, user: User, now: datetime) -> str:
    """The HSM key label of the person's usable certificate, or CertificateRequired saying why not."""
    certificate = usable_personal_certificate(session, user.id, now)
    if certificate is None and _has_outdated(session, user, now):
        raise CertificateRequired(
            "Your name or organisation in the directory changed after your certificate was issued, so it "
            "can no longer sign. Apply for a new certificate."
        )
    return signing_key_label(session, certificate, now, seal=False)


def signing_key_label(session: Session, certificate: Certificate | None, now: datetime, *, seal: bool) -> str:
    """The HSM key label of a usable certificate, or CertificateRequired saying who must apply."""
    if certificate is None or not is_usable(session, certificate, now) or certificate.key_id is None:
        if seal:
            raise CertificateRequired(
                "This seal has no valid certificate; its organisation's admin must apply for one."
            )
        raise CertificateRequired("You need a valid personal certificate to sign; apply for one first.")
    key = session.get(HsmKey, certificate.key_id)
    assert key is not None  # certificates.key_id is a foreign key
    return key.label


def _active_personal(session: Session, user_id: int) -> list[Certificate]:
    return list(
        session.scalars(
            select(Certificate)
            .where(
                Certificate.user_id == user_id,
                Certificate.kind == CertificateKind.PERSON,
                Certificate.status == CertificateStatus.ACTIVE,
            )
            .order_by(Certificate.not_after.desc(), Certificate.id.desc())
        )
    )


def _has_outdated(session: Session, user: User, now: datetime) -> bool:
    """Whether the person holds a certificate that is fine but for its subject."""
    return any(
        is_usable(session, row, now) and not _names(user, row) for row in _active_personal(session, user.id)
    )


def _names(user: User, row: Certificate) -> bool:
    """Whether the certificate's subject names the person as the directory does now."""
    subject = asn1_x509.Certificate.load(row.der).subject.native
    if subject.get("common_name") != user.display_name[:64]:
        return False
    organisation = user.organisation
    return organisation is None or subject.get("organization_name") == organisation.name[:64]


def _issue_personal(
    ctx: WorkflowContext, session: Session, user: User, consent: Consent, now: datetime
) -> Certificate:
    organisation = user.organisation
    subject = certs.SubjectInfo(
        common_name=user.display_name[:64],
        organisation=organisation.name[:64] if organisation else ctx.config.pki.organisation[:64],
        email=user.email if user.email and user.email.isascii() else None,
        country=ctx.config.pki.country,
    )
    issued = issue_certificate(
        session,
        make_context(ctx.signing.custody, ctx.config, ctx.clock),
        kind=CertificateKind.PERSON,
        subject=subject,
        user_id=user.id,
        consent_at=now,
        consent_agreement_version=consent.agreement_version,
    )
    return issued.row


def check_renewal_window(current: Certificate, now: datetime, which: str) -> None:
    """:raises Conflict: `current` (`which`, for the message) is not in its renewal window yet."""
    opens = current.not_after - RENEWAL_WINDOW
    if now < opens:
        raise Conflict(
            f"{which} can be renewed from {opens:%Y-%m-%d}, {RENEWAL_WINDOW.days} days before it expires."
        )


def is_usable(session: Session, row: Certificate, now: datetime) -> bool:
    try:
        check_certificate_usable(session, row.id, now)
    except CertificateNotUsable:
        return False
    return True


def check_consent(consent: Consent) -> None:
    agreement = certificate_agreement(consent.locale)
    if consent.agreement_version != agreement.version or consent.agreement_sha256 != agreement.sha256:
        raise Conflict(
            "The certificate agreement you accepted is not the current one; read it again and accept it."
        )


def record_consent(
    session: Session, row: Certificate, user: User, consent: Consent, client: ClientInfo, now: datetime
) -> None:
    session.add(
        CertificateConsent(
            certificate_id=row.id,
            user_id=user.id,
            agreement_version=consent.agreement_version,
            agreement_sha256=consent.agreement_sha256,
            locale=consent.locale,
            consented_at=now,
            client_address=client.address,
            user_agent=(client.user_agent or "")[:400] or None,
        )
    )
    session.flush()
    log_user_action(
        session,
        "certificate.issued",
        user,
        client,
        now,
        "certificate",
        row.id,
        {"kind": row.kind.value, "serial": row.serial, "agreement": consent.agreement_version},
    )


def certificate_view(row: Certificate) -> CertificateView:
    return CertificateView(
        id=row.id,
        kind=row.kind,
        subject=row.subject,
        serial=row.serial,
        not_before=row.not_before,
        not_after=row.not_after,
        status=row.status,
        sha256_fingerprint=row.sha256_fingerprint,
    )
