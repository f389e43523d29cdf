"""Cancelling one's own account: self-service, confirmed with an e-mailed code, irreversible.

It is refused, with the list of reasons, while the person has contracts to sign or seal, or
has initiated contracts still out for approval or signing: those need them first (sign,
reject, or withdraw). The code goes to the person's directory mailbox as for adding an
authenticator app (appliance.workflow.account_codes).

Confirming anonymises the account in one transaction:

* The sha256 of each identifying value (login name, name, e-mail, phone, ID number, the
  subjects of their certificates) is kept as `FormerIdentity`; the evidence and operation
  log, which are hash-chained and kept as written, then show the pseudonym in their place
  (appliance.audit.pseudonyms).
* The account keeps only its pseudonym (`cancelled#<id>`, as login name and name) and the
  directory's opaque id of the person, which is what refuses their sign-in from then on.
  E-mail, phone, ID number, department, directory DN, language, roles, sessions, API tokens,
  the authenticator app, pending codes, login counters and their own notices are removed.
* Their personal certificates are revoked (cessation of operation) and the CRL published.
* Their name on contracts' parties, in other people's notices and in answers they gave to
  data requests becomes the pseudonym; the text of their own data requests is removed.
* Signed documents, evidence and the operation log stay: completed contracts are archived,
  never deleted (appliance.workflow.retention), so they outlive the 5-year regulatory period.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from asn1crypto import x509 as asn1_x509
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from appliance.audit.pseudonyms import remember_former_identity
from appliance.auth import throttle
from appliance.auth.records import ClientInfo, Principal
from appliance.config import CodeChannel
from appliance.db import transaction
from appliance.errors import Conflict, Forbidden, InvalidInput, Unavailable
from appliance.masking import mask_email
from appliance.models import (
    ApiToken,
    Certificate,
    CertificateKind,
    CertificateStatus,
    Contract,
    ContractState,
    DataRequest,
    Notification,
    Party,
    PartyKind,
    PendingCancellation,
    RevocationReason,
    Seal,
    SealApproval,
    SealApprover,
    SealAutomation,
    SealKeeper,
    TotpEnrolment,
    User,
    UserGroup,
    UserRole,
    UserSession,
    UserSource,
    VerificationCode,
    VpnHandout,
)
from appliance.notify.channels import CodeContext, CodePurpose
from appliance.notify.messages import CHINESE
from appliance.pki.ca import make_context
from appliance.pki.revoke import revoke_certificate
from appliance.workflow.access import active_user
from appliance.workflow.account_codes import (
    AccountAction,
    check_mailed_code,
    check_start_throttle,
    log_account_event,
    mailed_code,
)
from appliance.workflow.closing import OPEN_APPROVALS
from appliance.workflow.codes import CodeProblem, CodeRejected, code_key, normalise_code
from appliance.workflow.context import WorkflowContext
from appliance.workflow.todo import todo_query

STARTED = "account.cancellation_started"
REFUSED = "account.cancellation_refused"
CANCELLED = "account.cancelled"
CANCELLATION = AccountAction(
    purpose="account-cancellation/v1",
    started=STARTED,
    refused=REFUSED,
    lifetime=timedelta(minutes=15),
    too_many_starts="Too many attempts to cancel your account.",
    start_again=" Start the cancellation again to get a new e-mail.",
)
PSEUDONYM_PREFIX = "cancelled#"
_BLOCKERS_SHOWN = 20
_MAIL_TITLE = {"en": "Cancelling your e-signature account", CHINESE: "注销您的电子签约账户"}
_EMAIL_CODE_WRONG = "The code from the e-mail is not correct. Check it and try again."
_OPEN_STATES = (ContractState.PENDING_APPROVAL, ContractState.SIGNING)


class BlockerKind(StrEnum):
    """Why an account cannot be cancelled yet; stable values for API clients."""

    TO_SIGN = "to_sign"
    """A contract waits for the person's signature or seal."""
    INITIATED_OPEN = "initiated_open"
    """A contract the person initiated is still out for approval or signing."""
    TO_APPROVE = "to_approve"
    """A contract waits, or will wait, for the person's approval of a seal."""


@dataclass(frozen=True)
class Blocker:
    kind: BlockerKind
    contract_id: int
    title: str


@dataclass(frozen=True)
class CancellationCheck:
    blockers: tuple[Blocker, ...]
    """Up to 20 of them, to-do items first; empty when the account may be cancelled."""
    pending_until: datetime | None
    """A cancellation was started and its code is good until then."""


@dataclass(frozen=True)
class CancellationStarted:
    destination: str
    """The e-mail address the code went to, masked."""
    expires_at: datetime


class CancellationRefused(Conflict):
    """The account has open work; `blockers` lists it."""

    code = "cancellation_blocked"

    def __init__(self, blockers: tuple[Blocker, ...]) -> None:
        super().__init__(
            "Your account cannot be cancelled yet: "
            + "; ".join(_describe(b) for b in blockers)
            + ". Sign or reject the contracts waiting for you and complete or withdraw the ones you "
            "sent, then try again."
        )
        self.blockers = blockers


def pseudonym(user_id: int) -> str:
    """What a cancelled account is called from then on: stable, and naming nobody."""
    return f"{PSEUDONYM_PREFIX}{user_id}"


def check_cancellation(ctx: WorkflowContext, principal: Principal) -> CancellationCheck:
    """What stands in the way of cancelling the account now, for the "Me" page."""
    with ctx.sessions() as session:
        user = active_user(session, principal.user_id)
        pending = session.get(PendingCancellation, user.id)
        until = pending.started_at + CANCELLATION.lifetime if pending else None
        return CancellationCheck(
            _blockers(session, user), until if until and until > ctx.clock.now() else None
        )


def start_cancellation(ctx: WorkflowContext, principal: Principal, client: ClientInfo) -> CancellationStarted:
    """Start (or restart) cancelling the account: e-mail the person a code to confirm it with.

    :raises Forbidden: the appliance's local administrator, who is not cancelled like this.
    :raises CancellationRefused: the person has open work (the reasons are listed).
    :raises InvalidInput: the person has no e-mail address to send the code to.
    :raises RateLimited: too many starts by this person or from this address in the last hour.
    :raises Unavailable: mail is not set up, or the code could not be sent.
    """
    config = ctx.config.codes
    sender = ctx.code_senders.get(CodeChannel.EMAIL)
    if sender is None:
        raise Unavailable(
            "Your account cannot be cancelled here: that is confirmed with a code sent by e-mail, "
            "and mail is not set up on this appliance. Ask your administrator."
        )
    key = code_key(ctx.config.secrets.session_secret)
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        user = _locked_user(session, principal)
        blockers = _blockers(session, user)
        if blockers:
            raise CancellationRefused(blockers)
        email = user.email
        if not email:
            raise InvalidInput(
                "You have no e-mail address in the directory, and cancelling your account needs a "
                "code sent to it. Ask your administrator to add one."
            )
        check_start_throttle(session, CANCELLATION, user.id, client.address, config, now)
        nonce = secrets.token_hex(16)
        pending = session.get(PendingCancellation, user.id)
        if pending is None:
            session.add(PendingCancellation(user_id=user.id, nonce=nonce, started_at=now))
        else:
            pending.nonce, pending.started_at = nonce, now
        destination = mask_email(email)
        log_account_event(session, STARTED, user, client, now, {"to": destination})
        code = mailed_code(key, CANCELLATION, user.id, nonce, config.digits)
        expires_at = now + CANCELLATION.lifetime
        context = CodeContext(
            contract_title=_MAIL_TITLE[CHINESE if user.locale == CHINESE else "en"],
            signer_name=user.display_name,
            expires_at=expires_at,
            locale=user.locale,
            purpose=CodePurpose.CANCELLATION,
        )
    sender.send(email, code, context)
    return CancellationStarted(destination, expires_at)


def confirm_cancellation(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, email_code: str
) -> str:
    """Cancel the account for good with the e-mailed code; returns the pseudonym.

    :raises InvalidInput: no cancellation was started.
    :raises CancellationRefused: open work appeared since the start.
    :raises CodeRejected: the code is missing (`otp_required`), wrong (`otp_wrong`; the try is
        counted), or the cancellation expired or its tries are used up: then start again.
    """
    config = ctx.config.codes
    key = code_key(ctx.config.secrets.session_secret)
    now = ctx.clock.now()
    refused: CodeRejected | None = None
    with transaction(ctx.sessions) as session:
        user = _locked_user(session, principal)
        pending = session.get(PendingCancellation, user.id)
        if pending is None:
            raise InvalidInput("Start cancelling your account first, then enter the code from the e-mail.")
        if not normalise_code(email_code):
            raise CodeRejected(CodeProblem.REQUIRED, code_id=None, public="Enter the code from the e-mail.")
        try:
            check_mailed_code(
                session,
                CANCELLATION,
                user.id,
                nonce=pending.nonce,
                started_at=pending.started_at,
                presented=email_code,
                key=key,
                config=config,
                now=now,
                wrong=_EMAIL_CODE_WRONG,
            )
        except CodeRejected as failure:
            # kept on record (it is what the next try's count reads): this transaction commits
            refused = failure
            log_account_event(session, REFUSED, user, client, now, {"problem": failure.problem.value})
        else:
            blockers = _blockers(session, user)
            if blockers:
                raise CancellationRefused(blockers)
            _anonymise(ctx, session, user, now)
            log_account_event(session, CANCELLED, user, client, now, {})
            return user.username
    assert refused is not None
    raise refused


def _locked_user(session: Session, principal: Principal) -> User:
    user = active_user(session, principal.user_id)
    if user.source is not UserSource.DIRECTORY:
        raise Forbidden(
            "The appliance's local administrator account is not cancelled; disable it in the configuration."
        )
    # one person's cancellation commands run one at a time, so tries are counted exactly
    session.refresh(user, with_for_update=True)
    return user


def _blockers(session: Session, user: User) -> tuple[Blocker, ...]:
    to_sign = session.execute(
        todo_query(user)
        .with_only_columns(Contract.id, Contract.title)
        .distinct()
        .order_by(Contract.id)
        .limit(_BLOCKERS_SHOWN)
    ).all()
    initiated = session.execute(
        select(Contract.id, Contract.title)
        .where(
            Contract.initiator_id == user.id, Contract.state.in_(_OPEN_STATES), Contract.archived_at.is_(None)
        )
        .order_by(Contract.id)
        .limit(_BLOCKERS_SHOWN)
    ).all()
    to_approve = session.execute(
        select(Contract.id, Contract.title)
        .join(SealApproval, SealApproval.contract_id == Contract.id)
        .where(
            SealApproval.approver_id == user.id,
            SealApproval.status.in_(OPEN_APPROVALS),
            Contract.state == ContractState.PENDING_APPROVAL,
        )
        .distinct()
        .order_by(Contract.id)
        .limit(_BLOCKERS_SHOWN)
    ).all()
    found = [Blocker(BlockerKind.TO_SIGN, i, t) for i, t in to_sign]
    found += [Blocker(BlockerKind.TO_APPROVE, i, t) for i, t in to_approve]
    found += [Blocker(BlockerKind.INITIATED_OPEN, i, t) for i, t in initiated]
    return tuple(found[:_BLOCKERS_SHOWN])


def _describe(blocker: Blocker) -> str:
    if blocker.kind is BlockerKind.TO_SIGN:
        return f"\u201c{blocker.title}\u201d (no. {blocker.contract_id}) waits for your signature"
    if blocker.kind is BlockerKind.TO_APPROVE:
        return f"\u201c{blocker.title}\u201d (no. {blocker.contract_id}) waits for your approval"
    return f"\u201c{blocker.title}\u201d (no. {blocker.contract_id}), which you sent, is still open"


def _anonymise(ctx: WorkflowContext, session: Session, user: User, now: datetime) -> None:
    certificates = list(
        session.scalars(
            select(Certificate).where(
                Certificate.user_id == user.id, Certificate.kind == CertificateKind.PERSON
            )
        )
    )
    former = _former_values(user, certificates)
    remember_former_identity(session, user.id, former)
    name = pseudonym(user.id)
    _revoke_certificates(ctx, session, certificates)
    _forget_sign_in(session, user)
    for table in (
        UserSession,
        ApiToken,
        TotpEnrolment,
        VerificationCode,
        Notification,
        PendingCancellation,
        UserRole,
        UserGroup,
        VpnHandout,
    ):
        session.execute(delete(table).where(table.user_id == user.id))
    session.execute(
        update(Party)
        .where(Party.kind == PartyKind.PERSON, Party.user_id == user.id)
        .values(display_name=name)
    )
    _leave_seal_approvers(session, user)
    # no contract of theirs is started any more: the standing authorisation has nothing to cover
    session.execute(delete(SealAutomation).where(SealAutomation.initiator_id == user.id))
    session.execute(delete(SealKeeper).where(SealKeeper.user_id == user.id))
    session.execute(update(DataRequest).where(DataRequest.user_id == user.id).values(text=""))
    session.execute(
        update(DataRequest).where(DataRequest.answered_by_id == user.id).values(answered_by_name=name)
    )
    _rename_in_notices(session, former, name)
    session.expire(user, ["roles"])
    user.username = user.display_name = name
    user.email = user.phone = user.id_number = user.department = None
    user.directory_dn = user.locale = user.password_hash = None
    user.active = False
    user.anonymised_at = user.updated_at = now


def _leave_seal_approvers(session: Session, user: User) -> None:
    """The person approves no seal any more: later approvers move up, and a seal left with
    none needs no approval."""
    seal_ids = set(session.scalars(select(SealApprover.seal_id).where(SealApprover.user_id == user.id)))
    for seal_id in sorted(seal_ids):
        rest = session.execute(
            select(SealApprover.user_id, SealApprover.group_dn)
            .where(
                SealApprover.seal_id == seal_id,
                or_(SealApprover.user_id.is_(None), SealApprover.user_id != user.id),
            )
            .order_by(SealApprover.position)
        ).all()
        session.execute(delete(SealApprover).where(SealApprover.seal_id == seal_id))
        session.add_all(
            SealApprover(seal_id=seal_id, position=n, user_id=u, group_dn=dn)
            for n, (u, dn) in enumerate(rest, 1)
        )
        session.get_one(Seal, seal_id).requires_approval = bool(rest)


def _former_values(user: User, certificates: Iterable[Certificate]) -> set[str]:
    values = {user.username, user.display_name, user.email, user.phone, user.id_number, user.directory_dn}
    for row in certificates:
        subject = asn1_x509.Certificate.load(row.der).subject
        # as the subject appears in the records: the certificate row and the signature's evidence
        values.update((row.subject, subject.human_friendly))
    return {v for v in values if v}


def _revoke_certificates(ctx: WorkflowContext, session: Session, certificates: Iterable[Certificate]) -> None:
    live = [row for row in certificates if row.status is CertificateStatus.ACTIVE]
    if not live:
        return
    pki = make_context(ctx.signing.custody, ctx.config, ctx.clock)
    for row in live:
        revoke_certificate(session, pki, row.id, RevocationReason.CESSATION_OF_OPERATION)


def _forget_sign_in(session: Session, user: User) -> None:
    """Remove the failed-sign-in counters keyed by the person's login name or directory entry."""
    throttle.forget_account(session, user.username, user.directory_dn)


def _rename_in_notices(session: Session, former: set[str], name: str) -> None:
    """Other people's notices that name the person (an initiator, a signer) name the pseudonym."""
    for value in former:
        quoted = json.dumps(value, ensure_ascii=False)
        for row in session.scalars(
            select(Notification).where(Notification.params.contains(quoted, autoescape=True))
        ):
            params = json.loads(row.params)
            renamed = {k: name if v == value else v for k, v in params.items()}
            if renamed != params:
                row.params = json.dumps(renamed, sort_keys=True, ensure_ascii=False)
