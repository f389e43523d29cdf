"""Organisation seals and their certificates, managed by the organisation's admins.

A seal signs with its organisation's certificate, whose key is in the HSM. The admin applies
for it with the agreement's consent (as a person does for theirs), renews it from
`RENEWAL_WINDOW` before expiry with fresh consent, and revokes it with a reason, the
organisation's dissolution or merger among them; the CRL is published at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from io import BytesIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.auth.records import ClientInfo, Principal
from appliance.db import transaction
from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.models import (
    Certificate,
    CertificateKind,
    CertificateStatus,
    Organisation,
    RevocationReason,
    Seal,
    SealKind,
    User,
    UserRole,
)
from appliance.notify import notify_user
from appliance.permissions import Action, roles_for
from appliance.pki import certs
from appliance.pki.ca import make_context
from appliance.pki.issue import issue_certificate
from appliance.pki.revoke import revoke_certificate
from appliance.signing.appearance import STAMP_FONT, load_image
from appliance.signing.seal_image import draw_round_seal
from appliance.workflow.access import NOT_A_SEAL_ADMIN, admins_seal, organisation_member
from appliance.workflow.approvals import approver_names
from appliance.workflow.certificates import (
    RENEWAL_WINDOW,
    CertificateView,
    Consent,
    certificate_view,
    check_consent,
    check_renewal_window,
    is_usable,
    record_consent,
)
from appliance.workflow.context import WorkflowContext
from appliance.workflow.seal_keepers import KeepersView, seal_keepers
from appliance.workflow.seal_policy import seal_automation
from appliance.workflow.store import log_user_action


class OrganisationReason(StrEnum):
    """Why an organisation's admin revokes a seal's certificate."""

    KEY_COMPROMISE = "key_compromise"
    INFORMATION_CHANGED = "information_changed"
    NO_LONGER_NEEDED = "no_longer_needed"
    DISSOLVED = "dissolved"
    MERGED = "merged"


ORGANISATION_REASONS = {
    OrganisationReason.KEY_COMPROMISE: RevocationReason.KEY_COMPROMISE,
    OrganisationReason.INFORMATION_CHANGED: RevocationReason.AFFILIATION_CHANGED,
    OrganisationReason.NO_LONGER_NEEDED: RevocationReason.CESSATION_OF_OPERATION,
    OrganisationReason.DISSOLVED: RevocationReason.CESSATION_OF_OPERATION,
    OrganisationReason.MERGED: RevocationReason.SUPERSEDED,
}
"""Each reason as the CRL states it (RFC 5280 CRLReason)."""


SEAL_LABELS = {
    SealKind.OFFICIAL: ("", "OFFICIAL SEAL"),
    SealKind.CONTRACT: ("合同专用章", "CONTRACT SEAL"),
    SealKind.FINANCE: ("财务专用章", "FINANCE SEAL"),
    SealKind.INVOICE: ("发票专用章", "INVOICE SEAL"),
    SealKind.HR: ("人事专用章", "HR SEAL"),
    SealKind.LEGAL_REPRESENTATIVE: ("法定代表人章", "LEGAL REPRESENTATIVE"),
}
"""What a drawn seal says below its star: in Chinese for an organisation with a Chinese name
(an official seal, 公章, carries the name alone), else in English."""


class SealState(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    """Not offered and not applied until enabled again."""
    RETIRED = "retired"
    """For good."""


@dataclass(frozen=True)
class SealView:
    id: int
    name: str
    kind: SealKind
    state: SealState
    image_sha256: str | None
    certificate: CertificateView | None
    certificate_usable: bool
    """It has a certificate that may sign now."""
    renewable_from: datetime | None
    """From when its usable certificate may be renewed."""
    approvers: tuple[str, ...]
    """Who approves its use, in order: login names, and DNs of approving groups; empty: no
    approval needed."""
    keepers: KeepersView
    """Who applies it; nobody named: the organisation's seal keepers (the role)."""
    automatic_initiators: tuple[str, ...]
    automatic_templates: tuple[tuple[int, str], ...]
    """Whose contracts, and which templates', the appliance seals itself (workflow.seal_policy)."""
    created_at: datetime


def create_seal(
    ctx: WorkflowContext,
    principal: Principal,
    client: ClientInfo,
    name: str,
    image_png: bytes | None = None,
    *,
    kind: SealKind = SealKind.CONTRACT,
) -> int:
    """A new seal of the org admin's organisation (no certificate yet); returns its id.

    `image_png`: the stamp, a PNG with transparency; without one the appliance draws the
    classic round red seal from the organisation's name and the seal's kind.
    """
    now = ctx.clock.now()
    name = name.strip()
    if not name or len(name) > 64 or not name.isprintable():
        raise InvalidInput("The seal's name must be 1 to 64 characters of text.")
    with transaction(ctx.sessions) as session:
        user = organisation_member(session, principal, Action.MANAGE_SEALS, NOT_A_SEAL_ADMIN)
        if image_png is None:
            organisation = session.get_one(Organisation, user.organisation_id)
            image_png = draw_round_seal(organisation.name, _label(organisation.name, kind), STAMP_FONT)
        else:
            load_image(image_png)  # refuses what is not a sane PNG before it is stored
        seal = Seal(
            organisation_id=user.organisation_id,
            name=name,
            kind=kind,
            image_sha256=ctx.blobs.put(BytesIO(image_png)),
            requires_approval=False,
            active=True,
            created_at=now,
        )
        session.add(seal)
        session.flush()
        details = {"name": name, "kind": kind.value}
        log_user_action(session, "seal.created", user, client, now, "seal", seal.id, details)
        return seal.id


def list_organisation_seals(ctx: WorkflowContext, principal: Principal) -> tuple[SealView, ...]:
    """The seals of the org admin's organisation, in use first, by name.

    :raises Forbidden: not an organisation's admin.
    """
    with ctx.sessions() as session:
        user = organisation_member(session, principal, Action.MANAGE_SEALS, NOT_A_SEAL_ADMIN)
        seals = session.scalars(
            select(Seal)
            .where(Seal.organisation_id == user.organisation_id)
            .order_by(Seal.retired_at.is_not(None), Seal.active.desc(), Seal.name, Seal.id)
        )
        return tuple(_seal_view(session, seal, ctx.clock.now()) for seal in seals)


def organisation_seal(ctx: WorkflowContext, principal: Principal, seal_id: int) -> SealView:
    """One seal of the org admin's organisation.

    :raises NotFound: no such seal of their organisation.
    """
    with ctx.sessions() as session:
        _user, seal = admins_seal(session, principal, seal_id)
        return _seal_view(session, seal, ctx.clock.now())


def seal_image(ctx: WorkflowContext, principal: Principal, seal_id: int) -> bytes:
    """The seal's stamp image (PNG), for its organisation's admins."""
    with ctx.sessions() as session:
        _user, seal = admins_seal(session, principal, seal_id)
        if seal.image_sha256 is None:
            raise NotFound("This seal has no image; its stamp is text.")
        sha256 = seal.image_sha256
    return ctx.blobs.get(sha256)


def set_seal_state(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, seal_id: int, state: SealState
) -> SealView:
    """Enable, disable or retire a seal. A disabled or retired seal is neither offered to
    initiators nor applied, contracts already sent with it included.

    :raises Conflict: a retired seal stays retired.
    """
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        user, seal = admins_seal(session, principal, seal_id)
        if seal.retired_at is not None:
            raise Conflict("This seal is retired for good; create a new one instead.")
        if state_of(seal) is state:
            return _seal_view(session, seal, now)
        seal.active = state is SealState.ACTIVE
        if state is SealState.RETIRED:
            seal.retired_at = now
        log_user_action(
            session, f"seal.{state.value}", user, client, now, "seal", seal.id, {"name": seal.name}
        )
        return _seal_view(session, seal, now)


def _label(organisation: str, kind: SealKind) -> str:
    chinese, english = SEAL_LABELS[kind]
    return chinese if any("\u4e00" <= c <= "\u9fff" for c in organisation) else english


def state_of(seal: Seal) -> SealState:
    if seal.retired_at is not None:
        return SealState.RETIRED
    return SealState.ACTIVE if seal.active else SealState.DISABLED


def _seal_view(session: Session, seal: Seal, now: datetime) -> SealView:
    certificate = session.get(Certificate, seal.certificate_id) if seal.certificate_id else None
    usable = certificate is not None and is_usable(session, certificate, now)
    automation = seal_automation(session, seal.id)
    return SealView(
        id=seal.id,
        name=seal.name,
        kind=seal.kind,
        state=state_of(seal),
        image_sha256=seal.image_sha256,
        certificate=certificate_view(certificate) if certificate is not None else None,
        certificate_usable=usable,
        renewable_from=certificate.not_after - RENEWAL_WINDOW if usable and certificate else None,
        approvers=approver_names(session, seal.id),
        keepers=seal_keepers(session, seal.id),
        automatic_initiators=automation.initiators,
        automatic_templates=automation.templates,
        created_at=seal.created_at,
    )


def apply_seal_certificate(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, seal_id: int, consent: Consent
) -> CertificateView:
    """The seal's certificate, issued at once with the admin's consent.

    :raises Conflict: the seal has a valid certificate already.
    """
    now = ctx.clock.now()
    check_consent(consent)
    with transaction(ctx.sessions) as session:
        user, seal = admins_seal(session, principal, seal_id)
        current = session.get(Certificate, seal.certificate_id) if seal.certificate_id else None
        if current is not None and is_usable(session, current, now):
            raise Conflict("This seal already has a valid certificate.")
        row = _issue_for(ctx, session, seal, consent, now)
        record_consent(session, row, user, consent, client, now)
        return certificate_view(row)


def renew_seal_certificate(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, seal_id: int, consent: Consent
) -> CertificateView:
    """A new certificate (and key) for the seal, from `RENEWAL_WINDOW` before the current one
    expires; the old one is superseded at once.

    :raises Conflict: no valid certificate to renew, or not yet in its renewal window.
    """
    now = ctx.clock.now()
    check_consent(consent)
    with transaction(ctx.sessions) as session:
        user, seal = admins_seal(session, principal, seal_id)
        current = session.get(Certificate, seal.certificate_id) if seal.certificate_id else None
        if current is None or not is_usable(session, current, now):
            raise Conflict("This seal has no valid certificate to renew; apply for one instead.")
        check_renewal_window(current, now, "The seal's certificate")
        row = _issue_for(ctx, session, seal, consent, now)
        current.status = CertificateStatus.SUPERSEDED
        record_consent(session, row, user, consent, client, now)
        details = {"serial": row.serial, "replaces_serial": current.serial, "seal_id": str(seal.id)}
        log_user_action(session, "certificate.renewed", user, client, now, "certificate", row.id, details)
        return certificate_view(row)


def revoke_seal_certificate(
    ctx: WorkflowContext,
    principal: Principal,
    client: ClientInfo,
    seal_id: int,
    reason: OrganisationReason,
) -> CertificateView:
    """Revoke the seal's certificate; the CRL is published in the same transaction. The seal
    signs nothing until its admin applies for a new certificate.

    :raises Conflict: the seal has no certificate, or it is revoked already.
    """
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        user, seal = admins_seal(session, principal, seal_id)
        row = session.get(Certificate, seal.certificate_id) if seal.certificate_id else None
        if row is None:
            raise Conflict("This seal has no certificate to revoke.")
        if row.status is CertificateStatus.REVOKED:
            raise Conflict("This seal's certificate is revoked already.")
        pki = make_context(ctx.signing.custody, ctx.config, ctx.clock)
        revoke_certificate(session, pki, row.id, ORGANISATION_REASONS[reason])
        details = {"serial": row.serial, "reason": reason.value, "seal_id": str(seal.id)}
        log_user_action(session, "certificate.revoked", user, client, now, "certificate", row.id, details)
        return certificate_view(row)


def notify_seal_renewals_due(ctx: WorkflowContext) -> int:
    """Tell the organisation's admins once, from `RENEWAL_WINDOW` before it expires, that a
    seal's certificate is due for renewal; returns how many certificates."""
    now = ctx.clock.now()
    told = 0
    with transaction(ctx.sessions) as session:
        due = session.execute(
            select(Seal, Certificate)
            .join(Certificate, Certificate.id == Seal.certificate_id)
            .where(
                Seal.active.is_(True),
                Certificate.status == CertificateStatus.ACTIVE,
                Certificate.renewal_noticed_at.is_(None),
                Certificate.not_after > now,
                Certificate.not_after <= now + RENEWAL_WINDOW,
            )
            .order_by(Certificate.id)
        ).all()
        for seal, row in due:
            params = {
                "seal": seal.name,
                "serial": row.serial,
                "expires": row.not_after.isoformat(),
                "link": ctx.config.private_cloud_address,
            }
            for admin in _organisation_admins(session, seal.organisation_id):
                notify_user(session, admin, "seal_certificate_renewal_due", params, now=now, mail=ctx.mail)
            row.renewal_noticed_at = now
            told += 1
    return told


def _issue_for(
    ctx: WorkflowContext, session: Session, seal: Seal, consent: Consent, now: datetime
) -> Certificate:
    organisation = session.get(Organisation, seal.organisation_id)
    org_name = (organisation.name if organisation else seal.name)[:64]
    issued = issue_certificate(
        session,
        make_context(ctx.signing.custody, ctx.config, ctx.clock),
        kind=CertificateKind.ORGANISATION,
        subject=certs.SubjectInfo(
            common_name=seal.name[:64], organisation=org_name, country=ctx.config.pki.country
        ),
        organisation_id=seal.organisation_id,
        consent_at=now,
        consent_agreement_version=consent.agreement_version,
    )
    seal.certificate_id = issued.row.id
    return issued.row


def _organisation_admins(session: Session, organisation_id: int) -> list[User]:
    return list(
        session.scalars(
            select(User)
            .join(UserRole, UserRole.user_id == User.id)
            .where(
                UserRole.role.in_(roles_for(Action.MANAGE_SEALS)),
                User.organisation_id == organisation_id,
                User.active.is_(True),
            )
            .order_by(User.id)
        )
    )
