"""Verification codes that confirm a signer's intent before each signature (test plan O01-O07).

A code is issued for one signature: a person (`user_id`), the party they sign as, its contract
and the sha256 of the document version they were shown. E-mail codes come from `secrets` and
are stored only as HMAC-SHA256 under a key derived from the session secret, over the binding
and the code, so neither a database reader nor a log reader learns a code, and a code row moved
to another signature no longer matches. With `codes.channel: totp`, a person with a confirmed
authenticator app (RFC 6238) answers a challenge row (code_hmac NULL) with the app's current
code instead.

Rules:

* Single use: `consume_code` marks the code used by one conditional UPDATE (not used, not
  superseded, not expired, attempts left, and for e-mail codes the HMAC matching), so of two
  requests racing with the same code exactly one succeeds. An authenticator code is also
  single use per time step: `totp_enrolments.last_used_step` only moves forward (conditional
  UPDATE), so the step just used, and any earlier one, is refused (RFC 6238 section 5.2).
  The previous and the next step are accepted, for clock drift; two steps away is not.
  `check_code` gives the same verdict without using the code up: the signing step checks
  before its slow part (the HSM signature) and consumes when it records the signature.
* Only the latest code counts: issuing a new code for the same person and party supersedes
  the earlier ones, and presenting an earlier one says so (`otp_superseded`).
* Limited attempts: each code allows `codes.attempts` rejected tries, then it is dead, even
  for the right code. Issuance is limited per signer and per client address per hour.

The failed-attempt contract with the caller: the caller runs `consume_code` inside the
transaction of the signing step. When the code is refused, `consume_code` raises
`CodeRejected` carrying the id of the code the try counted against; the caller lets its
transaction roll back (nothing was signed) and then calls `record_failed_attempt(session,
failure, now)` in a new transaction of its own and commits it. That decrements the code's
attempts_left with one conditional UPDATE, so the count survives the rollback and two
workers failing at once count twice. Every refusal that names a code counts: a wrong code,
a code for another binding, a superseded or reused one.

`issue_code` and `consume_code` never commit; the caller owns the transaction and delivers a
`CodeToSend` (through a `appliance.notify.channels.CodeSender`) only after its commit, so a
rolled-back issuance sends nothing.

Concurrency note: the hourly issuance counts are read, not claimed, so workers issuing for the
same signer at the same instant can each pass the count once; the overshoot is bounded by the
number of workers, which is fine for a flood limit (the attempt limit is per code and exact).
"""

from __future__ import annotations

import hmac
import logging
import secrets
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from hashlib import sha256
from typing import NoReturn

import pyotp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr
from sqlalchemy import ColumnElement, Update, or_, select, update
from sqlalchemy.orm import Session

from appliance.config import CodeChannel, CodesConfig
from appliance.db import rows_changed
from appliance.errors import ConfigError, Conflict, InvalidInput, RateLimited
from appliance.masking import mask_email
from appliance.models import TotpEnrolment, VerificationCode

log = logging.getLogger(__name__)

THROTTLE_WINDOW = timedelta(hours=1)
AUTHENTICATOR_DESTINATION = "authenticator app"
_KEY_INFO = b"verification-codes"
_HMAC_PURPOSE = "verification-code/v1"
# how many earlier codes of the same signature are checked to say "superseded" rather than
# "wrong": only recent ones help a person who opened an older e-mail
_EARLIER_CODES_CHECKED = 20


class CodeProblem(StrEnum):
    """Why a code was refused; stable values for API clients."""

    REQUIRED = "otp_required"
    WRONG = "otp_wrong"
    EXPIRED = "otp_expired"
    USED = "otp_used"
    SUPERSEDED = "otp_superseded"
    EXHAUSTED = "otp_attempts_exhausted"
    BINDING_MISMATCH = "otp_binding_mismatch"


_PUBLIC = {
    CodeProblem.REQUIRED: "Enter the verification code for this signature, or request one first.",
    CodeProblem.WRONG: "The verification code is not correct. Check it and try again.",
    CodeProblem.EXPIRED: "The verification code has expired. Request a new one.",
    CodeProblem.USED: "The verification code was already used. Request a new one.",
    CodeProblem.SUPERSEDED: "A newer verification code was issued. Enter the latest one.",
    CodeProblem.EXHAUSTED: "Too many wrong verification codes. Request a new one.",
    CodeProblem.BINDING_MISMATCH: (
        "The verification code was issued for another signature or another version of the "
        "document. Request a new one."
    ),
}
_AUTHENTICATOR_REUSED = (
    "This authenticator code was already used. Wait for the next code in your app and enter that one."
)
_AUTHENTICATOR_GONE = "Your authenticator app enrolment was removed. Request a new verification code."


class CodeRejected(InvalidInput):
    """A verification code was refused.

    `code_id` is the code the try counts against (None when there is none: nothing to count);
    pass the exception to `record_failed_attempt` after rolling back. `attempts_left` is what
    remains once that is recorded, set when the code can still be used (and 0 when exhausted).
    """

    def __init__(
        self,
        problem: CodeProblem,
        *,
        code_id: int | None,
        attempts_left: int | None = None,
        public: str | None = None,
    ) -> None:
        text = public or _PUBLIC[problem]
        if attempts_left is not None and problem is not CodeProblem.EXHAUSTED:
            text += (
                f" Attempts left: {attempts_left}."
                if attempts_left
                else " No attempts are left: request a new code."
            )
        super().__init__(text, detail=f"verification code {code_id}: {problem.value}")
        self.problem = problem
        self.code = problem.value  # the API client's stable problem code
        self.code_id = code_id
        self.attempts_left = attempts_left


@dataclass(frozen=True)
class CodeBinding:
    """The one signature a code is for."""

    user_id: int
    contract_id: int
    party_id: int
    document_sha256: str


@dataclass(frozen=True)
class CodeToSend:
    """What the caller delivers after its commit; `code` is never logged or stored."""

    code_id: int
    channel: CodeChannel
    expires_at: datetime
    destination: str
    """Masked, for the page: "l***@example.com" or "authenticator app"."""
    code: str | None
    """The plaintext for e-mail; None for the authenticator app."""


@dataclass(frozen=True)
class TotpSetup:
    """What the person needs to add the appliance to an authenticator app."""

    secret: str
    """Base32, for typing in by hand when the QR code cannot be scanned."""
    provisioning_uri: str
    """otpauth:// URI, to show as a QR code."""


def code_key(session_secret: SecretStr | None) -> bytes:
    """The HMAC key of verification codes, derived from the session secret (HKDF-SHA256).

    :raises ConfigError: without a session secret.
    """
    if session_secret is None:
        raise ConfigError(
            [
                "auth.session_secret_file: required (or set APPLIANCE_SESSION_SECRET); "
                "verification codes are keyed from the session secret"
            ]
        )
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_INFO)
    return hkdf.derive(session_secret.get_secret_value().encode())


def issue_code(
    session: Session,
    binding: CodeBinding,
    *,
    config: CodesConfig,
    key: bytes,
    now: datetime,
    client_address: str | None,
    email: str | None,
) -> CodeToSend:
    """Issue a code for `binding`, superseding this person's earlier codes for the party.

    :raises RateLimited: too many codes for this signer or from this address in the last hour.
    :raises InvalidInput: e-mail is the channel and the person has no e-mail address.
    """
    _check_throttle(session, VerificationCode.user_id == binding.user_id, config.per_signer_per_hour, now)
    if client_address is not None:
        _check_throttle(
            session, VerificationCode.client_address == client_address, config.per_address_per_hour, now
        )
    channel = _channel_for(session, binding.user_id, config, email)
    session.execute(
        update(VerificationCode)
        .where(
            VerificationCode.user_id == binding.user_id,
            VerificationCode.party_id == binding.party_id,
            VerificationCode.used_at.is_(None),
            VerificationCode.superseded_at.is_(None),
        )
        .values(superseded_at=now)
    )
    plaintext: str | None = None
    code_hmac: str | None = None
    destination = AUTHENTICATOR_DESTINATION
    if channel is CodeChannel.EMAIL:
        assert email is not None  # _channel_for chose e-mail because there is an address
        plaintext = f"{secrets.randbelow(10**config.digits):0{config.digits}d}"
        code_hmac = _code_hmac(key, binding, plaintext)
        destination = mask_email(email)
    row = VerificationCode(
        user_id=binding.user_id,
        contract_id=binding.contract_id,
        party_id=binding.party_id,
        document_sha256=binding.document_sha256,
        channel=channel.value,
        code_hmac=code_hmac,
        client_address=client_address,
        created_at=now,
        expires_at=now + timedelta(seconds=config.lifetime_seconds),
        attempts_left=config.attempts,
    )
    session.add(row)
    session.flush()
    log.info(
        "verification code %s issued via %s to user %s for party %s",
        row.id,
        channel,
        row.user_id,
        row.party_id,
    )
    return CodeToSend(row.id, channel, row.expires_at, destination, plaintext)


def check_code(
    session: Session,
    binding: CodeBinding,
    code: str,
    *,
    accepted_document_sha256s: Collection[str],
    key: bytes,
    now: datetime,
) -> None:
    """Refuse the code as `consume_code` would, without using it up.

    The signing step checks the code before its slow part (the HSM signature, made outside any
    transaction) and consumes it when it records the signature; a request racing with the same
    code can use it in between, and that consume then refuses it.

    :raises CodeRejected: as `consume_code` would.
    """
    row, presented = _latest_code(session, binding, code, accepted_document_sha256s)
    if row.code_hmac is None:
        enrolment = _confirmed_enrolment(session, row)
        step = _authenticator_step(enrolment.secret, presented, now)
        _raise_if_dead(session, row, now)
        if step is None:
            raise CodeRejected(CodeProblem.WRONG, code_id=row.id, attempts_left=row.attempts_left - 1)
        if enrolment.last_used_step is not None and enrolment.last_used_step >= step:
            raise CodeRejected(CodeProblem.USED, code_id=row.id, public=_AUTHENTICATOR_REUSED)
        return
    _raise_if_dead(session, row, now)
    if not hmac.compare_digest(row.code_hmac, _code_hmac(key, _binding_of(row), presented)):
        _refuse_wrong_emailed_code(session, row, presented, key)


def consume_code(
    session: Session,
    binding: CodeBinding,
    code: str,
    *,
    accepted_document_sha256s: Collection[str],
    key: bytes,
    now: datetime,
) -> None:
    """Use the latest code of `binding`'s person and party, once.

    `accepted_document_sha256s`: the versions whose content the signer saw (the current one,
    and earlier ones that differ only by other parties' signatures made by the appliance).

    :raises CodeRejected: with the problem; see the module docstring for what to do with it.
    """
    row, presented = _latest_code(session, binding, code, accepted_document_sha256s)
    if row.code_hmac is None:
        _consume_authenticator_code(session, row, presented, now)
    else:
        _consume_emailed_code(session, row, presented, key, now)
    log.info("verification code %s used by user %s for party %s", row.id, row.user_id, row.party_id)
    session.expire(row)  # the claim went to the database only; a later read must see used_at


def record_failed_attempt(session: Session, failure: CodeRejected, now: datetime) -> None:
    """Count a refused try against its code, in the caller's new transaction after the rollback.

    A code that has expired is left alone: its counter no longer matters.
    """
    if failure.code_id is None:
        return
    session.execute(
        update(VerificationCode)
        .where(
            VerificationCode.id == failure.code_id,
            VerificationCode.attempts_left > 0,
            VerificationCode.expires_at > now,
        )
        .values(attempts_left=VerificationCode.attempts_left - 1)
    )
    log.info("verification code %s: refused try counted (%s)", failure.code_id, failure.problem.value)


def enrol_totp(session: Session, user_id: int, *, account_name: str, issuer: str, now: datetime) -> TotpSetup:
    """Start (or restart) adding an authenticator app; it is used once `confirm_totp` succeeds.

    :raises Conflict: the person already has a confirmed authenticator app.
    """
    enrolment = session.get(TotpEnrolment, user_id, with_for_update=True)
    if enrolment is not None and enrolment.confirmed_at is not None:
        raise Conflict(
            "An authenticator app is already set up for your account. Remove it before adding another one."
        )
    secret = pyotp.random_base32()
    if enrolment is None:
        session.add(TotpEnrolment(user_id=user_id, secret=secret, created_at=now))
    else:
        enrolment.secret = secret
        enrolment.created_at = now
        enrolment.last_used_step = None
    session.flush()
    uri = pyotp.TOTP(secret).provisioning_uri(name=account_name, issuer_name=issuer)
    return TotpSetup(secret, uri)


def confirm_totp(session: Session, user_id: int, code: str, *, now: datetime) -> None:
    """Confirm an authenticator app with a first code from it; from then on it is the channel.

    :raises InvalidInput: no enrolment was started.
    :raises Conflict: it is confirmed already.
    :raises CodeRejected: the code is not the app's current one (`otp_wrong`).
    """
    enrolment = session.get(TotpEnrolment, user_id, with_for_update=True)
    if enrolment is None:
        raise InvalidInput("Start adding an authenticator app first, then enter the code it shows.")
    if enrolment.confirmed_at is not None:
        raise Conflict("Your authenticator app is already set up.")
    step = _authenticator_step(enrolment.secret, normalise_code(code), now)
    if step is None:
        raise CodeRejected(
            CodeProblem.WRONG,
            code_id=None,
            public="The code does not match your authenticator app. Check the app's clock and try again.",
        )
    enrolment.confirmed_at = now
    enrolment.last_used_step = step
    log.info("authenticator app confirmed for user %s", user_id)


def remove_totp(session: Session, user_id: int) -> bool:
    """Remove a person's authenticator app (lost phone); codes then go by e-mail.

    Returns whether there was one.
    """
    enrolment = session.get(TotpEnrolment, user_id, with_for_update=True)
    if enrolment is None:
        return False
    session.delete(enrolment)
    session.flush()
    log.info("authenticator app removed for user %s", user_id)
    return True


def _check_throttle(session: Session, who: ColumnElement[bool], limit: int, now: datetime) -> None:
    issued = (
        session.execute(
            select(VerificationCode.created_at)
            .where(who, VerificationCode.created_at > now - THROTTLE_WINDOW)
            .order_by(VerificationCode.created_at)
        )
        .scalars()
        .all()
    )
    if len(issued) < limit:
        return
    # below the limit again once all but limit - 1 of them have left the window
    retry_at = issued[len(issued) - limit] + THROTTLE_WINDOW
    raise RateLimited(
        f"Too many verification codes were requested. Try again after {retry_at:%H:%M} UTC.", retry_at
    )


def _channel_for(session: Session, user_id: int, config: CodesConfig, email: str | None) -> CodeChannel:
    if config.channel is CodeChannel.TOTP:
        enrolment = session.get(TotpEnrolment, user_id)
        if enrolment is not None and enrolment.confirmed_at is not None:
            return CodeChannel.TOTP
    if email:
        return CodeChannel.EMAIL
    if config.channel is CodeChannel.TOTP:
        raise InvalidInput(
            "You have no e-mail address in the directory to send a verification code to. Add an "
            "authenticator app to your account, or ask your administrator to add an e-mail address."
        )
    raise InvalidInput(
        "You have no e-mail address in the directory to send a verification code to. Ask your "
        "administrator to add one."
    )


def _refuse_foreign_code(session: Session, binding: CodeBinding) -> NoReturn:
    # No code for this person and party. One issued to this person for another signature, or
    # for this party to someone else, is being tried here: count the try against it (O01).
    other = session.execute(
        select(VerificationCode.id)
        .where(
            or_(VerificationCode.user_id == binding.user_id, VerificationCode.party_id == binding.party_id),
            VerificationCode.used_at.is_(None),
            VerificationCode.superseded_at.is_(None),
        )
        .order_by(VerificationCode.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if other is None:
        raise CodeRejected(CodeProblem.REQUIRED, code_id=None)
    raise CodeRejected(CodeProblem.BINDING_MISMATCH, code_id=other)


def _latest_code(
    session: Session, binding: CodeBinding, code: str, accepted_document_sha256s: Collection[str]
) -> tuple[VerificationCode, str]:
    """The code row a try counts against, and the presented code normalised."""
    presented = normalise_code(code)
    if not presented:
        raise CodeRejected(CodeProblem.REQUIRED, code_id=None)
    row = session.execute(
        select(VerificationCode)
        .where(VerificationCode.user_id == binding.user_id, VerificationCode.party_id == binding.party_id)
        .order_by(VerificationCode.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if row is None:
        _refuse_foreign_code(session, binding)
    if row.contract_id != binding.contract_id or row.document_sha256 not in accepted_document_sha256s:
        raise CodeRejected(CodeProblem.BINDING_MISMATCH, code_id=row.id)
    return row, presented


def _consume_emailed_code(
    session: Session, row: VerificationCode, presented: str, key: bytes, now: datetime
) -> None:
    if rows_changed(
        session,
        _claim(row, now).where(VerificationCode.code_hmac == _code_hmac(key, _binding_of(row), presented)),
    ):
        return
    _raise_if_dead(session, row, now)
    _refuse_wrong_emailed_code(session, row, presented, key)


def _refuse_wrong_emailed_code(
    session: Session, row: VerificationCode, presented: str, key: bytes
) -> NoReturn:
    if _matches_earlier_code(session, row, presented, key):
        raise CodeRejected(CodeProblem.SUPERSEDED, code_id=row.id, attempts_left=row.attempts_left - 1)
    raise CodeRejected(CodeProblem.WRONG, code_id=row.id, attempts_left=row.attempts_left - 1)


def _consume_authenticator_code(
    session: Session, row: VerificationCode, presented: str, now: datetime
) -> None:
    enrolment = _confirmed_enrolment(session, row)
    step = _authenticator_step(enrolment.secret, presented, now)
    if step is None or not rows_changed(
        session, _claim(row, now).where(VerificationCode.code_hmac.is_(None))
    ):
        _raise_if_dead(session, row, now)
        raise CodeRejected(CodeProblem.WRONG, code_id=row.id, attempts_left=row.attempts_left - 1)
    advanced = rows_changed(
        session,
        update(TotpEnrolment)
        .where(
            TotpEnrolment.user_id == row.user_id,
            TotpEnrolment.confirmed_at.is_not(None),
            or_(TotpEnrolment.last_used_step.is_(None), TotpEnrolment.last_used_step < step),
        )
        .values(last_used_step=step),
    )
    if not advanced:
        # the caller rolls back, which also gives the challenge back its used_at = NULL
        raise CodeRejected(CodeProblem.USED, code_id=row.id, public=_AUTHENTICATOR_REUSED)


def _confirmed_enrolment(session: Session, row: VerificationCode) -> TotpEnrolment:
    enrolment = session.get(TotpEnrolment, row.user_id)
    if enrolment is None or enrolment.confirmed_at is None:
        raise CodeRejected(CodeProblem.REQUIRED, code_id=None, public=_AUTHENTICATOR_GONE)
    return enrolment


def _binding_of(row: VerificationCode) -> CodeBinding:
    return CodeBinding(row.user_id, row.contract_id, row.party_id, row.document_sha256)


def _claim(row: VerificationCode, now: datetime) -> Update:
    return (
        update(VerificationCode)
        .where(
            VerificationCode.id == row.id,
            VerificationCode.used_at.is_(None),
            VerificationCode.superseded_at.is_(None),
            VerificationCode.expires_at > now,
            VerificationCode.attempts_left > 0,
        )
        .values(used_at=now)
        # The database alone decides: SQLAlchemy's default would also apply this to the
        # loaded row whenever the criteria match in Python, even when a racing request
        # claimed it first and no row was updated.
        .execution_options(synchronize_session=False)
    )


def _raise_if_dead(session: Session, row: VerificationCode, now: datetime) -> None:
    # read it again: a racing request may have used it since it was loaded
    session.refresh(row)
    if row.used_at is not None:
        raise CodeRejected(CodeProblem.USED, code_id=row.id)
    if row.superseded_at is not None:
        raise CodeRejected(CodeProblem.SUPERSEDED, code_id=row.id)
    if row.attempts_left <= 0:
        raise CodeRejected(CodeProblem.EXHAUSTED, code_id=row.id, attempts_left=0)
    if row.expires_at <= now:
        raise CodeRejected(CodeProblem.EXPIRED, code_id=row.id)


def _matches_earlier_code(session: Session, latest: VerificationCode, presented: str, key: bytes) -> bool:
    earlier = session.execute(
        select(VerificationCode)
        .where(
            VerificationCode.user_id == latest.user_id,
            VerificationCode.party_id == latest.party_id,
            VerificationCode.id < latest.id,
            VerificationCode.code_hmac.is_not(None),
        )
        .order_by(VerificationCode.id.desc())
        .limit(_EARLIER_CODES_CHECKED)
    ).scalars()
    for row in earlier:
        assert row.code_hmac is not None
        if hmac.compare_digest(row.code_hmac, _code_hmac(key, _binding_of(row), presented)):
            return True
    return False


def _authenticator_step(secret: str, presented: str, now: datetime) -> int | None:
    """The time step whose code `presented` is: the current one, or one before or after it for
    drift between phone and server (pyotp's verify with valid_window=1, telling which step)."""
    if not presented.isascii():
        return None  # compare_digest takes ASCII text only; no code of ours is anything else
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in (current, current - 1, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), presented):
            return step
    return None


def normalise_code(code: str) -> str:
    # full-width digits from a Chinese input method are the same digits; spaces are for reading
    return "".join(unicodedata.normalize("NFKC", code).split())


def _code_hmac(key: bytes, binding: CodeBinding, code: str) -> str:
    # ids are digits and the hash is hex, so ":" cannot be part of any field
    message = (
        f"{_HMAC_PURPOSE}:{binding.user_id}:{binding.contract_id}:{binding.party_id}:"
        f"{binding.document_sha256}:{code}"
    )
    return hmac.new(key, message.encode(), sha256).hexdigest()
