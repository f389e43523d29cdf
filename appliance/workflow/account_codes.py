"""Codes e-mailed to confirm an action on one's own account: adding an authenticator app,
cancelling the account.

A signed-in session alone must not be enough for such an action, or whoever holds a stolen
session (or API token) could take it: the person also proves control of their directory
mailbox. The code is stored nowhere. It is an HMAC, under the verification-code key, of the
action, the person and a random nonce that the pending action's row holds and that is fresh
on every start, so starting again replaces the code, a database reader cannot compute it (the
key derives from the session secret), and neither a log line nor the operation log holds it.

Starts and wrong tries are records of the operation log, written in the transaction that
made them (a refusal commits, nothing else being changed), and read back: starts are limited
per person and per client address per hour like signing codes, and `codes.attempts` wrong
tries since the start end it, so the person starts again. Callers take the person's row lock
first, so the tries are counted exactly.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from hashlib import sha256

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from appliance.auth.records import ClientInfo
from appliance.config import CodesConfig
from appliance.errors import RateLimited
from appliance.models import AuditEvent, User
from appliance.workflow.codes import THROTTLE_WINDOW, CodeProblem, CodeRejected, normalise_code
from appliance.workflow.store import log_user_action


@dataclass(frozen=True)
class AccountAction:
    """One kind of action confirmed by an e-mailed code."""

    purpose: str
    """Domain of the code's HMAC, e.g. "account-cancellation/v1"."""
    started: str
    """Operation-log action of a start (what the throttle counts)."""
    refused: str
    """Operation-log action of a wrong try (what the attempt limit counts)."""
    lifetime: timedelta
    too_many_starts: str
    """Refusal when the hourly limit is reached, e.g. "Too many attempts to cancel your account."."""
    start_again: str
    """Appended to a refusal that ends the pending action, e.g. " Start again to get a new e-mail."."""


def mailed_code(key: bytes, action: AccountAction, user_id: int, nonce: str, digits: int) -> str:
    """The code of `action` for the person and the pending action's nonce."""
    # the nonce is base32 or hex and the id digits, so ":" cannot be part of any field
    digest = hmac.new(key, f"{action.purpose}:{user_id}:{nonce}".encode(), sha256).digest()
    return f"{int.from_bytes(digest) % 10**digits:0{digits}d}"


def check_mailed_code(
    session: Session,
    action: AccountAction,
    user_id: int,
    *,
    nonce: str,
    started_at: datetime,
    presented: str,
    key: bytes,
    config: CodesConfig,
    now: datetime,
    wrong: str,
) -> int:
    """Refuse `presented` unless it is the code of the person's pending `action` (started at
    `started_at` with `nonce`); returns the tries it had left, this one included.

    :raises CodeRejected: it expired or its tries are used up (start again), or the code is
        wrong (`otp_wrong` with the text `wrong`, saying how many tries are left).
    """
    left = _tries_left(session, action, user_id, started_at, config, now)
    expected = mailed_code(key, action, user_id, nonce, config.digits)
    presented = normalise_code(presented)
    # compare_digest takes ASCII text only; no code of ours is anything else
    if not (presented.isascii() and hmac.compare_digest(expected, presented)):
        raise CodeRejected(CodeProblem.WRONG, code_id=None, attempts_left=left - 1, public=wrong)
    return left


def check_start_throttle(
    session: Session,
    action: AccountAction,
    user_id: int,
    address: str | None,
    config: CodesConfig,
    now: datetime,
) -> None:
    """:raises RateLimited: too many starts by this person, or from this address, in the last hour."""
    _check_throttle(session, action, AuditEvent.actor_user_id == user_id, config.per_signer_per_hour, now)
    if address is not None:
        _check_throttle(
            session, action, AuditEvent.client_address == address, config.per_address_per_hour, now
        )


def _tries_left(
    session: Session,
    action: AccountAction,
    user_id: int,
    started_at: datetime,
    config: CodesConfig,
    now: datetime,
) -> int:
    if now >= started_at + action.lifetime:
        raise CodeRejected(
            CodeProblem.EXPIRED, code_id=None, public="The e-mailed code has expired." + action.start_again
        )
    refused = session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(
            AuditEvent.action == action.refused,
            AuditEvent.actor_user_id == user_id,
            AuditEvent.occurred_at >= started_at,
        )
    )
    left = config.attempts - (refused or 0)
    if left <= 0:
        raise CodeRejected(
            CodeProblem.EXHAUSTED, code_id=None, public="Too many wrong codes." + action.start_again
        )
    return left


def log_account_event(
    session: Session,
    action: str,
    user: User,
    client: ClientInfo,
    now: datetime,
    details: dict[str, str | bool | int],
) -> None:
    """Append `action` by `user` on their own account to the operation log."""
    log_user_action(session, action, user, client, now, "user", user.id, details)


def _check_throttle(
    session: Session, action: AccountAction, who: ColumnElement[bool], limit: int, now: datetime
) -> None:
    started = (
        session.execute(
            select(AuditEvent.occurred_at)
            .where(AuditEvent.action == action.started, who, AuditEvent.occurred_at > now - THROTTLE_WINDOW)
            .order_by(AuditEvent.occurred_at)
        )
        .scalars()
        .all()
    )
    if len(started) < limit:
        return
    # below the limit again once all but limit - 1 of them have left the window
    retry_at = started[len(started) - limit] + THROTTLE_WINDOW
    raise RateLimited(f"{action.too_many_starts} Try again after {retry_at:%H:%M} UTC.", retry_at)
