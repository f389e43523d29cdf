"""What the appliance holds about a person: the "Me" page and its JSON export.

Only the person's own data: their profile as the directory gave it, their roles, the
certificates they hold and the agreements they accepted, the contracts they started or sign
as a person, their API tokens and the sign-ins recorded in the operation log. Archived
contracts are the archive admins' (appliance.workflow.access) and are counted, not listed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session

from appliance.audit import AuditRecord, append_event
from appliance.auth.records import ClientInfo, Principal
from appliance.db import transaction
from appliance.errors import Forbidden
from appliance.models import (
    ApiToken,
    AuditEvent,
    Certificate,
    CertificateConsent,
    Contract,
    ContractState,
    Organisation,
    Party,
    PartyKind,
    User,
    VpnHandout,
)
from appliance.workflow.certificates import CertificateView, certificate_view
from appliance.workflow.context import WorkflowContext

SIGN_IN_ACTIONS = ("auth.login", "auth.login_failed", "auth.locked_out", "auth.logout")
RECENT_SIGN_INS = 20


@dataclass(frozen=True)
class Profile:
    username: str
    display_name: str
    email: str | None
    phone: str | None
    id_number: str | None
    department: str | None
    organisation: str | None
    source: str
    """Where the profile comes from: the directory (corrected there) or the appliance."""
    locale: str | None
    created_at: datetime
    last_login_at: datetime | None
    frozen_at: datetime | None


@dataclass(frozen=True)
class ConsentRecord:
    agreement_version: str
    agreement_sha256: str
    locale: str
    consented_at: datetime
    client_address: str | None
    certificate_serial: str | None


@dataclass(frozen=True)
class MyContract:
    id: int
    title: str
    state: ContractState
    initiated: bool
    """Started by the person (otherwise they are a party to it)."""
    created_at: datetime


@dataclass(frozen=True)
class SignIn:
    occurred_at: datetime
    action: str
    client_address: str | None
    user_agent: str | None


@dataclass(frozen=True)
class TokenRecord:
    name: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class VpnCollection:
    collected_at: datetime
    client_address: str | None
    config_sha256: str


@dataclass(frozen=True)
class PersonalData:
    profile: Profile
    roles: tuple[str, ...]
    certificates: tuple[CertificateView, ...]
    consents: tuple[ConsentRecord, ...]
    contracts: tuple[MyContract, ...]
    archived_contracts: int
    """Contracts of theirs now in the archive (kept, but only archive admins open them)."""
    tokens: tuple[TokenRecord, ...]
    sign_ins: tuple[SignIn, ...]
    """The most recent sign-ins, failed ones and sign-outs, newest first."""
    vpn_configurations: tuple[VpnCollection, ...]
    """When they collected their WireGuard configuration for the phone, and from where."""
    as_of: datetime

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=_plain, ensure_ascii=False, indent=2)


def my_personal_data(ctx: WorkflowContext, principal: Principal) -> PersonalData:
    with ctx.sessions() as session:
        return _collect(ctx, session, principal.user_id)


def export_my_personal_data(ctx: WorkflowContext, principal: Principal, client: ClientInfo) -> PersonalData:
    """The same, recorded in the operation log as an export (what was handed out, and to whom)."""
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        data = _collect(ctx, session, principal.user_id)
        append_event(
            session,
            AuditRecord(
                action="personal_data.exported",
                occurred_at=now,
                actor_user_id=principal.user_id,
                actor_name=principal.username,
                object_type="user",
                object_id=str(principal.user_id),
                client_address=client.address,
                user_agent=client.user_agent,
                details={"contracts": len(data.contracts), "certificates": len(data.certificates)},
            ),
        )
        return data


def _collect(ctx: WorkflowContext, session: Session, user_id: int) -> PersonalData:
    # a frozen account may still see what is held about it: no active_user check here
    user = session.get(User, user_id)
    if user is None or user.anonymised_at is not None:
        raise Forbidden("This account was cancelled: the appliance holds no personal data of it.")
    organisation = session.get(Organisation, user.organisation_id) if user.organisation_id else None
    mine = or_(
        Contract.initiator_id == user.id,
        exists().where(
            Party.contract_id == Contract.id, Party.kind == PartyKind.PERSON, Party.user_id == user.id
        ),
    )
    contracts = session.scalars(
        select(Contract).where(mine, Contract.archived_at.is_(None)).order_by(Contract.id.desc())
    )
    archived = session.scalar(
        select(func.count()).select_from(Contract).where(mine, Contract.archived_at.is_not(None))
    )
    certificates = session.scalars(
        select(Certificate).where(Certificate.user_id == user.id).order_by(Certificate.not_before.desc())
    )
    consents = session.execute(
        select(CertificateConsent, Certificate.serial)
        .join(Certificate, Certificate.id == CertificateConsent.certificate_id)
        .where(CertificateConsent.user_id == user.id)
        .order_by(CertificateConsent.consented_at.desc())
    )
    tokens = session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at.desc())
    )
    collected = session.scalars(
        select(VpnHandout).where(VpnHandout.user_id == user.id).order_by(VpnHandout.handed_out_at.desc())
    )
    sign_ins = session.scalars(
        select(AuditEvent)
        .where(and_(AuditEvent.actor_user_id == user.id, AuditEvent.action.in_(SIGN_IN_ACTIONS)))
        .order_by(AuditEvent.seq.desc())
        .limit(RECENT_SIGN_INS)
    )
    return PersonalData(
        profile=Profile(
            username=user.username,
            display_name=user.display_name,
            email=user.email,
            phone=user.phone,
            id_number=user.id_number,
            department=user.department,
            organisation=organisation.name if organisation else None,
            source=user.source.value,
            locale=user.locale,
            created_at=user.created_at,
            last_login_at=user.last_login_at,
            frozen_at=user.frozen_at,
        ),
        roles=tuple(sorted(role.value for role in user.role_set())),
        certificates=tuple(certificate_view(row) for row in certificates),
        consents=tuple(
            ConsentRecord(
                c.agreement_version, c.agreement_sha256, c.locale, c.consented_at, c.client_address, serial
            )
            for c, serial in consents
        ),
        contracts=tuple(
            MyContract(c.id, c.title, c.state, c.initiator_id == user.id, c.created_at) for c in contracts
        ),
        archived_contracts=archived or 0,
        tokens=tuple(
            TokenRecord(t.name, t.created_at, t.expires_at, t.revoked_at, t.last_used_at) for t in tokens
        ),
        sign_ins=tuple(SignIn(e.occurred_at, e.action, e.client_address, e.user_agent) for e in sign_ins),
        vpn_configurations=tuple(
            VpnCollection(v.handed_out_at, v.client_address, v.config_sha256) for v in collected
        ),
        as_of=ctx.clock.now(),
    )


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value"):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON")
