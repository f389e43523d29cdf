"""Sign-in: throttle, check the credentials, decide, record.

One attempt, in this order:

1. Text that cannot be a name or a password at all is refused as InvalidInput, uncounted
   (see `text`).
2. A slot is claimed on the counters of the client address and of the typed name, and the
   local administrator's row is read: one transaction, committed before the directory is
   asked, so other workers and nodes see the claims (see `throttle` for the policy).
3. Over-long credentials are a counted failure, refused before the directory.
4. The break-glass administrator's password is checked against its argon2 hash. Anyone else:
   the directory finds the account (search and account state), a slot is claimed on the
   counters of the entry it found, and only then does the directory check the password (the
   bind). Every spelling and second name of one person reach the same entry counters, and no
   bind happens once they are locked.
5. The outcome is decided before anything is written, then written together: the user row,
   the counters and the operation-log record.

No database transaction is held open while the directory answers. Failures are committed
before they are raised; an attempt that never reached a decision (outage, internal error)
gives its slots back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from appliance.audit import AuditRecord, append_event
from appliance.auth import passwords, throttle
from appliance.auth.errors import RefusalReason, TooManyAttempts
from appliance.auth.oplog import record_directory_tls_failure
from appliance.auth.provisioning import find_user, local_name_taken, upsert_user
from appliance.auth.records import ClientInfo
from appliance.auth.text import is_storable, is_text
from appliance.clock import Clock
from appliance.config import AuthConfig
from appliance.db import transaction
from appliance.directory import (
    AuthenticationFailed,
    Directory,
    DirectoryPerson,
    DirectoryTlsFailed,
    DirectoryUnavailable,
    FailureReason,
)
from appliance.errors import InvalidInput
from appliance.models import User, UserSource
from appliance.notify import notify_user

MAX_USERNAME_LENGTH = 256
MAX_PASSWORD_LENGTH = 1024
"""Longer credentials are an ordinary (counted) failed sign-in, refused before the directory:
a megabyte-long password would otherwise tie up a worker and the directory."""
UNUSABLE_USERNAME = "The user name holds characters no name can hold (a NUL or a lone surrogate)."
UNUSABLE_PASSWORD = "The password holds characters that are not valid text (a lone surrogate)."  # noqa: S105 - a message


@dataclass(frozen=True)
class _LocalAccount:
    user_id: int
    password_hash: str | None
    active: bool


@dataclass(frozen=True)
class _Verified:
    person: DirectoryPerson | None
    local_user_id: int | None


@dataclass
class _Attempt:
    """One sign-in attempt: who typed what from where, and the throttle slots it holds."""

    username: str
    client: ClientInfo
    claimed: list[throttle.ThrottleKey] = field(default_factory=list)
    directory_id: str | None = None
    """The immutable id of the directory entry the name found, once the search has run."""


T = TypeVar("T")


def _user_id(_session: Session, user: User) -> int:
    return user.id


class Login:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        directory: Directory | None,
        cfg: AuthConfig,
        clock: Clock,
        *,
        mail: bool = False,
    ) -> None:
        self._sessions = sessions
        self._directory = directory
        self._cfg = cfg
        self._clock = clock
        self._mail = mail

    def verify(
        self,
        username: str,
        password: str,
        client: ClientInfo,
        *,
        expect_user_id: int | None = None,
        action: str = "auth.login",
    ) -> int:
        """Check the credentials; returns the user's id (see `verify_then`)."""
        return self.verify_then(
            username, password, client, _user_id, expect_user_id=expect_user_id, action=action
        )

    def verify_then(
        self,
        username: str,
        password: str,
        client: ClientInfo,
        then: Callable[[Session, User], T],
        *,
        expect_user_id: int | None = None,
        action: str = "auth.login",
    ) -> T:
        """Check the credentials (see the module docstring); returns `then(session, user)`,
        run inside the transaction that records the success (opening the web session there
        saves a commit per sign-in).

        `expect_user_id`: the password is re-entered by this signed-in person, so it must be
        theirs. `action` names the operation-log record of a success.
        :raises InvalidInput: for a name or password that is not text (nothing is counted).
        :raises AuthenticationFailed: for every kind of refusal (one public message).
        :raises TooManyAttempts: when the account or the client address is locked out.
        :raises DirectoryUnavailable: when no directory server answers.
        """
        if not is_storable(username):
            raise InvalidInput(UNUSABLE_USERNAME)
        if not is_text(password):
            raise InvalidInput(UNUSABLE_PASSWORD)
        attempt = _Attempt(username[: MAX_USERNAME_LENGTH + 1], client)
        local = self._start(attempt, username)
        if len(username) > MAX_USERNAME_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
            self._record_failure(attempt, RefusalReason.TOO_LONG)
            raise AuthenticationFailed(RefusalReason.TOO_LONG)
        try:
            if local is not None:
                verified = _Verified(None, self._check_local(local, password))
            else:
                verified = _Verified(self._check_directory(attempt, username, password), None)
        except TooManyAttempts:
            raise  # the slots are already given back and the attempt logged
        except AuthenticationFailed as failure:
            self._record_failure(attempt, failure.reason)
            raise
        except DirectoryUnavailable as exc:
            self._give_back(attempt, "directory_unavailable", tls_failed=isinstance(exc, DirectoryTlsFailed))
            raise
        except Exception:
            # never leave the slots taken without an outcome
            self._give_back(attempt, "internal_error")
            raise
        return self._settle(attempt, verified, expect_user_id, action, then)

    # -- the steps -----------------------------------------------------------------

    def _start(self, attempt: _Attempt, username: str) -> _LocalAccount | None:
        """Claim the address's and the typed name's counters; the local administrator's row.

        :raises TooManyAttempts: when one of the counters is locked.
        """
        max_failed = self._cfg.max_failed_logins
        # the address first: a locked address creates no per-name rows (they would only pile up)
        address = throttle.address_keys(attempt.client.address, max_failed, self._cfg.address_limits)
        keys = address + throttle.name_keys(attempt.username, attempt.client.address, max_failed)
        local: _LocalAccount | None = None
        with transaction(self._sessions) as session:
            retry_at = self._take(session, attempt, keys)
            if retry_at is None and len(username) <= MAX_USERNAME_LENGTH:
                user = session.execute(
                    select(User).where(User.username == username, User.source == UserSource.LOCAL)
                ).scalar_one_or_none()
                if user is not None:
                    local = _LocalAccount(user.id, user.password_hash, user.active)
        if retry_at is not None:
            raise TooManyAttempts(retry_at)
        return local

    def _check_local(self, local: _LocalAccount, password: str) -> int:
        if not password or "\x00" in password:
            raise AuthenticationFailed(FailureReason.EMPTY_PASSWORD)
        matches = passwords.verify_password(local.password_hash, password)
        if not self._cfg.local_admin_enabled:
            raise AuthenticationFailed(RefusalReason.LOCAL_ADMIN_DISABLED)
        if not matches:
            raise AuthenticationFailed(FailureReason.WRONG_PASSWORD)
        if not local.active:
            raise AuthenticationFailed(RefusalReason.INACTIVE)
        return local.user_id

    def _check_directory(self, attempt: _Attempt, username: str, password: str) -> DirectoryPerson:
        if self._directory is None:
            self._claim(attempt, self._entry_keys(attempt, None))
            passwords.verify_password(None, password)  # same cost as a real check
            raise AuthenticationFailed(FailureReason.UNKNOWN_USER)
        account = self._directory.find_account(username)
        attempt.directory_id = account.directory_id
        self._claim(attempt, self._entry_keys(attempt, account.dn))
        return self._directory.verify_password(account, password)

    def _entry_keys(self, attempt: _Attempt, dn: str | None) -> list[throttle.ThrottleKey]:
        """Counters of the directory entry `dn`, or stand-ins of the same shape for a name that
        found no entry.

        A real person's attempt costs one more transaction (the entry's counters); without the
        same work for an unknown name, response times would tell which names exist (test plan
        A06). The stand-ins follow the typed name, so they lock together with its name counters
        and change no outcome.
        """
        entry = dn if dn is not None else "unknown:" + throttle.normalise_login_name(attempt.username)
        return throttle.entry_keys(entry, attempt.client.address, self._cfg.max_failed_logins)

    def _settle(
        self,
        attempt: _Attempt,
        verified: _Verified,
        expect_user_id: int | None,
        action: str,
        then: Callable[[Session, User], T],
    ) -> T:
        """Refuse or accept the verified person; nothing is written before the decision."""
        now = self._clock.now()
        person = verified.person
        with transaction(self._sessions) as session:
            refusal: RefusalReason | None = None
            if person is not None:
                existing = find_user(session, person)
                if existing is not None and existing.anonymised_at is not None:
                    refusal = RefusalReason.INACTIVE
                elif existing is not None and existing.frozen_at is not None:
                    refusal = RefusalReason.FROZEN
                elif local_name_taken(session, person.username):
                    refusal = RefusalReason.LOCAL_NAME_CONFLICT
                elif expect_user_id is not None and (existing is None or existing.id != expect_user_id):
                    refusal = RefusalReason.WRONG_PERSON
            else:
                local = session.get_one(User, verified.local_user_id)
                if local.anonymised_at is not None or not local.active:
                    refusal = RefusalReason.INACTIVE
                elif local.frozen_at is not None:
                    refusal = RefusalReason.FROZEN
                elif expect_user_id is not None and local.id != expect_user_id:
                    refusal = RefusalReason.WRONG_PERSON
            if refusal is None:
                if person is not None:
                    user = upsert_user(session, person, now)
                    user.active = True  # the directory has just said the account is active
                    user.last_directory_check_at = now
                else:
                    user = session.get_one(User, verified.local_user_id)
                throttle.settle_success(session, attempt.claimed)
                if action == "auth.login":
                    user.last_login_at = now
                result = then(session, user)
                append_event(
                    session,
                    AuditRecord(
                        action=action,
                        occurred_at=now,
                        actor_user_id=user.id,
                        actor_name=user.username,
                        object_type="user",
                        object_id=str(user.id),
                        client_address=attempt.client.address,
                        user_agent=attempt.client.user_agent,
                        details={
                            "source": user.source.value,
                            "roles": sorted(r.value for r in user.role_set()),
                        },
                    ),
                )
                return result
        self._record_failure(attempt, refusal)
        raise AuthenticationFailed(refusal)

    # -- the throttle slots --------------------------------------------------------

    def _claim(self, attempt: _Attempt, keys: list[throttle.ThrottleKey]) -> None:
        """Take a slot on each of `keys` in a transaction of its own.

        :raises TooManyAttempts: when one of the counters is locked.
        """
        with transaction(self._sessions) as session:
            retry_at = self._take(session, attempt, keys)
        if retry_at is not None:
            raise TooManyAttempts(retry_at)

    def _take(self, session: Session, attempt: _Attempt, keys: list[throttle.ThrottleKey]) -> datetime | None:
        """Take a slot on each of `keys` in order. At the first locked one, give back every slot
        the attempt holds, log the refusal and return when to retry; None when all were granted."""
        now = self._clock.now()
        window = timedelta(minutes=self._cfg.lockout_minutes)
        for key in keys:
            retry_at = throttle.claim(session, key, now, window)
            if retry_at is not None:
                for taken in attempt.claimed:
                    throttle.give_back(session, taken)
                attempt.claimed.clear()
                self._log_failure(session, attempt, "throttled", now, key=key.key.split(":")[0])
                return retry_at
            attempt.claimed.append(key)
        return None

    def _give_back(self, attempt: _Attempt, reason: str, *, tls_failed: bool = False) -> None:
        now = self._clock.now()
        with transaction(self._sessions) as session:
            for key in attempt.claimed:
                throttle.give_back(session, key)
            self._log_failure(session, attempt, reason, now)
            if tls_failed:
                record_directory_tls_failure(session, now, "login")
        attempt.claimed.clear()

    def _record_failure(self, attempt: _Attempt, reason: StrEnum) -> None:
        now = self._clock.now()
        lockout = timedelta(minutes=self._cfg.lockout_minutes)
        with transaction(self._sessions) as session:
            ends = {key: throttle.record_failure(session, key, now, lockout) for key in attempt.claimed}
            newly_locked = {key: until for key, until in ends.items() if until is not None}
            locked = [key.key.split(":")[0] + ("@address" if key.pair else "") for key in newly_locked]
            self._log_failure(session, attempt, reason.value, now)
            self._tell_the_person(session, attempt, newly_locked, now)
            if locked:
                append_event(
                    session,
                    AuditRecord(
                        action="auth.locked_out",
                        occurred_at=now,
                        actor_name=attempt.username[:200],
                        client_address=attempt.client.address,
                        user_agent=attempt.client.user_agent,
                        details={"keys": locked},
                    ),
                )
        attempt.claimed.clear()

    def _tell_the_person(
        self,
        session: Session,
        attempt: _Attempt,
        newly_locked: dict[throttle.ThrottleKey, datetime],
        now: datetime,
    ) -> None:
        """The person whose account a failure just locked hears of it (in-app and by mail),
        so a lock set by someone else's guessing does not go unnoticed."""
        account_locks = [
            (key, until) for key, until in newly_locked.items() if not key.key.startswith("address:")
        ]
        if not account_locks:
            return
        person = None
        if attempt.directory_id is not None:
            person = session.execute(
                select(User).where(User.directory_uuid == attempt.directory_id)
            ).scalar_one_or_none()
        if person is None:
            return  # nobody we know: a mistyped or made-up name
        key, until = max(account_locks, key=lambda lock: (not lock[0].pair, lock[1]))
        params = {"scope": "address" if key.pair else "account", "until": until.isoformat()}
        if key.pair:
            params["address"] = attempt.client.address or ""
        notify_user(session, person, "account_locked", params, now=now, mail=self._mail)

    @staticmethod
    def _log_failure(session: Session, attempt: _Attempt, reason: str, now: datetime, **extra: str) -> None:
        name = attempt.username[:200]
        user = None
        if attempt.directory_id is not None:
            user = session.execute(
                select(User).where(User.directory_uuid == attempt.directory_id)
            ).scalar_one_or_none()
        if user is None:
            user = session.execute(select(User).where(User.username == name)).scalar_one_or_none()
        if user is not None and user.anonymised_at is not None:
            name = user.username  # a cancelled account's attempts name its pseudonym, not the login typed
        append_event(
            session,
            AuditRecord(
                action="auth.login_failed",
                occurred_at=now,
                actor_user_id=user.id if user is not None else None,
                actor_name=name,
                client_address=attempt.client.address,
                user_agent=attempt.client.user_agent,
                details={"reason": reason, **extra},
            ),
        )
