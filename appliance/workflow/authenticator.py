"""Adding an authenticator app (RFC 6238) to one's account, and removing it (lost phone).

A signed-in session alone must not be enough to move someone's verification codes to an app:
whoever holds a stolen session (or API token) would then sign in their name. So adding an app
takes two proofs in one step, `confirm_enrolment`: a code e-mailed to the person's directory
address when the enrolment started (control of the mailbox; see appliance.workflow.account_codes,
the pending enrolment's secret being the code's nonce) and a first code from the app (the
secret is in it). Until then the enrolment is pending and codes keep going by e-mail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from appliance.auth.records import ClientInfo, Principal
from appliance.config import CodeChannel
from appliance.db import transaction
from appliance.errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from appliance.masking import mask_email
from appliance.models import TotpEnrolment, User
from appliance.notify.channels import CodeContext, CodePurpose
from appliance.notify.messages import CHINESE
from appliance.workflow.access import active_user
from appliance.workflow.account_codes import (
    AccountAction,
    check_mailed_code,
    check_start_throttle,
    log_account_event,
    mailed_code,
)
from appliance.workflow.codes import (
    CodeProblem,
    CodeRejected,
    code_key,
    confirm_totp,
    enrol_totp,
    normalise_code,
    remove_totp,
)
from appliance.workflow.context import WorkflowContext

ENROLMENT_LIFETIME = timedelta(minutes=15)
"""How long the e-mailed code and the pending secret are good: longer than a signing code,
since the person may first have to install the app and scan the QR code."""
STARTED = "authenticator.enrolment_started"
REFUSED = "authenticator.enrolment_refused"
ENROLLED = "authenticator.enrolled"
REMOVED = "authenticator.removed"
ENROLMENT = AccountAction(
    purpose="authenticator-enrolment/v1",
    started=STARTED,
    refused=REFUSED,
    lifetime=ENROLMENT_LIFETIME,
    too_many_starts="Too many attempts to add an authenticator app.",
    start_again=" Start adding the authenticator app again to get a new e-mail.",
)
# What the code e-mail names as the thing being confirmed (the mail's wording is the signing
# code's, which names a contract here).
_MAIL_TITLE = {
    "en": "Adding an authenticator app to your account",
    CHINESE: "为您的账户添加身份验证器应用",
}
_EMAIL_CODE_WRONG = "The code from the e-mail is not correct. Check it and try again."
_CODES_MISSING = (
    "Enter both codes: the one e-mailed to you when you started adding the app, and the one the app shows."
)
_APP_CODE_WRONG = "The code does not match your authenticator app. Check the app's clock and try again."


@dataclass(frozen=True)
class EnrolmentStarted:
    """What the person needs to add the appliance to their app; a code went to `destination`."""

    provisioning_uri: str
    """otpauth:// URI, to show as a QR code."""
    secret: str
    """Base32, for typing in by hand when the QR code cannot be scanned."""
    expires_at: datetime
    """Confirm before this, with the e-mailed code and the app's first code."""
    destination: str
    """The e-mail address the code went to, masked."""


@dataclass(frozen=True)
class AuthenticatorStatus:
    enrolled: bool
    """A confirmed app: with `codes.channel: totp`, verification codes come from it."""
    confirmed_at: datetime | None


def start_enrolment(ctx: WorkflowContext, principal: Principal, client: ClientInfo) -> EnrolmentStarted:
    """Start (or restart) adding an app and e-mail the person a code to confirm it with.

    :raises Forbidden: this appliance sends codes by e-mail only (`codes.channel: email`).
    :raises Conflict: an app is set up already (remove it first).
    :raises InvalidInput: the person has no e-mail address.
    :raises RateLimited: too many starts by this person or from this address in the last hour.
    :raises Unavailable: mail is not set up, or the code could not be sent.
    """
    config = ctx.config.codes
    if config.channel is not CodeChannel.TOTP:
        raise Forbidden(
            "This appliance sends verification codes by e-mail; authenticator apps are not used here."
        )
    sender = ctx.code_senders.get(CodeChannel.EMAIL)
    if sender is None:
        raise Unavailable(
            "An authenticator app cannot be added: it is confirmed with a code sent by e-mail, "
            "and mail is not set up on this appliance."
        )
    key = code_key(ctx.config.secrets.session_secret)
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        user = _locked_user(session, principal)
        email = user.email
        if not email:
            raise InvalidInput(
                "You have no e-mail address in the directory, and adding an authenticator app needs "
                "a code sent to it. Ask your administrator to add one."
            )
        check_start_throttle(session, ENROLMENT, user.id, client.address, config, now)
        setup = enrol_totp(session, user.id, account_name=user.username, issuer=_issuer(ctx), now=now)
        destination = mask_email(email)
        log_account_event(session, STARTED, user, client, now, {"to": destination})
        code = mailed_code(key, ENROLMENT, user.id, setup.secret, config.digits)
        expires_at = now + ENROLMENT_LIFETIME
        context = CodeContext(
            contract_title=_MAIL_TITLE[CHINESE if user.locale == CHINESE else "en"],
            signer_name=user.display_name,
            expires_at=expires_at,
            locale=user.locale,
            purpose=CodePurpose.ENROLMENT,
        )
    sender.send(email, code, context)
    return EnrolmentStarted(setup.provisioning_uri, setup.secret, expires_at, destination)


def confirm_enrolment(
    ctx: WorkflowContext,
    principal: Principal,
    client: ClientInfo,
    email_code: str,
    authenticator_code: str,
) -> AuthenticatorStatus:
    """Confirm the pending app with the e-mailed code and the app's current code; from then on
    (with `codes.channel: totp`) verification codes for signing come from the app.

    :raises InvalidInput: no enrolment was started.
    :raises Conflict: the app is confirmed already.
    :raises CodeRejected: a code is missing (`otp_required`), or wrong (`otp_wrong`; the try is
        counted), or the enrolment expired or its tries are used up: then start again.
    """
    config = ctx.config.codes
    key = code_key(ctx.config.secrets.session_secret)
    now = ctx.clock.now()
    refused: CodeRejected | None = None
    with transaction(ctx.sessions) as session:
        user = _locked_user(session, principal)
        enrolment = session.get(TotpEnrolment, user.id)
        if enrolment is None:
            raise InvalidInput("Start adding an authenticator app first, then enter the codes.")
        if enrolment.confirmed_at is not None:
            raise Conflict("Your authenticator app is already set up.")
        if not normalise_code(email_code) or not normalise_code(authenticator_code):
            # nothing was tried, so nothing is counted
            raise CodeRejected(CodeProblem.REQUIRED, code_id=None, public=_CODES_MISSING)
        try:
            left = check_mailed_code(
                session,
                ENROLMENT,
                user.id,
                nonce=enrolment.secret,
                started_at=enrolment.created_at,
                presented=email_code,
                key=key,
                config=config,
                now=now,
                wrong=_EMAIL_CODE_WRONG,
            )
            try:
                confirm_totp(session, user.id, authenticator_code, now=now)
            except CodeRejected as wrong_app_code:
                raise CodeRejected(
                    wrong_app_code.problem, code_id=None, attempts_left=left - 1, public=_APP_CODE_WRONG
                ) from wrong_app_code
        except CodeRejected as failure:
            # kept on record (it is what the next try's count reads): this transaction commits
            refused = failure
            log_account_event(session, REFUSED, user, client, now, {"problem": failure.problem.value})
        else:
            log_account_event(session, ENROLLED, user, client, now, {})
    if refused is not None:
        raise refused
    return AuthenticatorStatus(enrolled=True, confirmed_at=now)


def remove_enrolment(ctx: WorkflowContext, principal: Principal, client: ClientInfo) -> AuthenticatorStatus:
    """Remove the person's app, confirmed or pending (lost phone); codes go by e-mail again.

    :raises NotFound: there is none.
    """
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        user = _locked_user(session, principal)
        enrolment = session.get(TotpEnrolment, user.id)
        confirmed = enrolment is not None and enrolment.confirmed_at is not None
        if not remove_totp(session, user.id):
            raise NotFound("No authenticator app is set up for your account.")
        log_account_event(session, REMOVED, user, client, now, {"was_confirmed": confirmed})
    return AuthenticatorStatus(enrolled=False, confirmed_at=None)


def enrolment_status(ctx: WorkflowContext, principal: Principal) -> AuthenticatorStatus:
    with transaction(ctx.sessions) as session:
        user = active_user(session, principal.user_id)
        enrolment = session.get(TotpEnrolment, user.id)
        if enrolment is None or enrolment.confirmed_at is None:
            return AuthenticatorStatus(enrolled=False, confirmed_at=None)
        return AuthenticatorStatus(enrolled=True, confirmed_at=enrolment.confirmed_at)


def _locked_user(session: Session, principal: Principal) -> User:
    user = active_user(session, principal.user_id)
    # one person's authenticator commands run one at a time: a first start cannot insert the
    # enrolment twice, and concurrent tries cannot each read the same count of wrong ones
    session.refresh(user, with_for_update=True)
    return user


def _issuer(ctx: WorkflowContext) -> str:
    # what the app lists the account under; a colon would end the issuer in the otpauth label
    return f"{ctx.config.pki.organisation} e-signature".replace(":", " ")
