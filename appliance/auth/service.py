"""Sign-in, server-side sessions, API tokens, directory sync and the local administrator.

Each public method is one use case and owns its transactions. A login uses several: the
throttle claims are committed before the directory is asked (so other workers see them) -
the address and login name before the search, the directory entry after the search and
before the bind - and the outcome (user row, session, counters and the operation-log
record) is committed together afterwards. The outcome is decided before anything is
written; failures are committed before they are raised. No database transaction is held
open while the directory answers.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from appliance.audit import AuditRecord, append_event
from appliance.auth import passwords, throttle
from appliance.auth.errors import RefusalReason, TooManyAttempts
from appliance.auth.provisioning import end_access, find_user, local_name_taken, upsert_user
from appliance.auth.records import (
    ClientInfo,
    IssuedToken,
    LoginResult,
    Principal,
    SyncReport,
    TokenInfo,
)
from appliance.clock import Clock
from appliance.config import AuthConfig, Role
from appliance.db import transaction
from appliance.directory import (
    AccountStatus,
    AuthenticationFailed,
    Directory,
    DirectoryAccount,
    DirectoryPerson,
    DirectoryTlsFailed,
    DirectoryUnavailable,
    FailureReason,
)
from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.models import ApiToken, User, UserRole, UserSession, UserSource

log = logging.getLogger(__name__)

TOKEN_PREFIX = "esk_"  # noqa: S105 - a public prefix, not a secret
"""Marks appliance API tokens, so secret scanners and people can recognise them."""
LAST_SEEN_GRANULARITY = timedelta(seconds=30)
"""last_seen_at is written at most this often per session (idle timeouts are minutes)."""
MAX_LEAVE_FRACTION = 0.5
"""Sync refuses to mark more than this share of people as gone unless forced: an empty
answer usually means a wrong base DN, not a mass departure."""
MAX_USERNAME_LENGTH = 256
MAX_PASSWORD_LENGTH = 1024
"""Longer credentials are an ordinary (counted) failed sign-in, refused before the directory:
a megabyte-long password would otherwise tie up a worker and the directory."""


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _random_token() -> str:
    return secrets.token_urlsafe(32)


def _principal(user: User) -> Principal:
    return Principal(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        roles=user.role_set(),
        local=user.source is UserSource.LOCAL,
    )


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
    entry_claimed: bool = False


@dataclass(frozen=True)
class _RecheckDue:
    """The session or token is valid, but its owner must be re-checked in the directory first."""

    user_id: int
    directory_uuid: str | None


class AuthService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        directory: Directory | None,
        cfg: AuthConfig,
        clock: Clock,
        random_token: Callable[[], str] = _random_token,
    ) -> None:
        self._sessions = sessions
        self._directory = directory
        self._cfg = cfg
        self._clock = clock
        self._random_token = random_token

    # -- login ---------------------------------------------------------------------

    def login(
        self, username: str, password: str, client: ClientInfo, previous_session: str | None = None
    ) -> LoginResult:
        """Check the credentials and open a new web session.

        :raises AuthenticationFailed: for every kind of refusal (one public message).
        :raises TooManyAttempts: when the account or the client address is locked out.
        :raises DirectoryUnavailable: when no directory server answers.
        """
        principal_id = self._verify(username, password, client)
        now = self._clock.now()
        token = self._random_token()
        expires_at = now + timedelta(hours=self._cfg.absolute_timeout_hours)
        with transaction(self._sessions) as session:
            user = session.get_one(User, principal_id)
            if previous_session:
                # a session id planted before login must not survive it (fixation)
                self._revoke_session(session, previous_session, now)
            session.add(
                UserSession(
                    id=_sha256(token),
                    user_id=user.id,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=expires_at,
                    client_address=client.address,
                    user_agent=(client.user_agent or "")[:400] or None,
                )
            )
            principal = _principal(user)
        return LoginResult(principal=principal, session_token=token, expires_at=expires_at)

    def login_for_token(self, username: str, password: str, client: ClientInfo, name: str) -> IssuedToken:
        """Sign in (same checks as `login`) and issue an API token instead of a web session."""
        user_id = self._verify(username, password, client)
        return self.create_token(user_id, name, client)

    def create_token_with_password(
        self, user_id: int, password: str, name: str, client: ClientInfo
    ) -> IssuedToken:
        """Issue an API token to a signed-in person who has entered their password again.

        A token outlives the session by months, so a stolen session alone must not mint one.
        The password check is a sign-in in every respect (throttle, log), bound to `user_id`.
        :raises AuthenticationFailed, TooManyAttempts, DirectoryUnavailable: as `login`.
        """
        with transaction(self._sessions) as session:
            username = session.get_one(User, user_id).username
        self._verify(username, password, client, expect_user_id=user_id, action="auth.reauthenticated")
        return self.create_token(user_id, name, client)

    def _verify(
        self,
        username: str,
        password: str,
        client: ClientInfo,
        *,
        expect_user_id: int | None = None,
        action: str = "auth.login",
    ) -> int:
        """Throttle, check the credentials, decide, then refresh the user row; returns the user's id."""
        attempt = _Attempt(username[: MAX_USERNAME_LENGTH + 1], client)
        max_failed = self._cfg.max_failed_logins
        # the address first: a locked address creates no per-name rows (they would only pile up)
        self._claim(attempt, throttle.address_keys(client.address, max_failed))
        self._claim(attempt, throttle.name_keys(attempt.username, client.address, max_failed))
        with transaction(self._sessions) as session:
            local = session.execute(
                select(User).where(User.username == username, User.source == UserSource.LOCAL)
            ).scalar_one_or_none()
            local_state = (local.id, local.password_hash, local.active) if local is not None else None

        if len(username) > MAX_USERNAME_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
            self._record_failure(attempt, RefusalReason.TOO_LONG)
            raise AuthenticationFailed(RefusalReason.TOO_LONG)

        def before_bind(account: DirectoryAccount) -> None:
            # every spelling and second name of one person reaches the same entry
            attempt.entry_claimed = True
            self._claim(attempt, throttle.entry_keys(account.dn, client.address, max_failed))

        try:
            verified = self._check_credentials(username, password, local_state, before_bind)
        except TooManyAttempts:
            raise  # the slots are already given back and the attempt logged
        except AuthenticationFailed as failure:
            if local_state is None and not attempt.entry_claimed:
                self._claim_stand_in(attempt)
            self._record_failure(attempt, failure.reason)
            raise
        except DirectoryUnavailable as exc:
            self._give_back(attempt, "directory_unavailable", tls_failed=isinstance(exc, DirectoryTlsFailed))
            raise
        except Exception:
            # never leave the slots taken without an outcome
            self._give_back(attempt, "internal_error")
            raise
        return self._settle(attempt, verified, expect_user_id, action)

    def _claim(self, attempt: _Attempt, keys: list[throttle.ThrottleKey]) -> None:
        """Take a slot on each of `keys`, or give back everything the attempt holds and refuse.

        :raises TooManyAttempts: when one of the counters is locked.
        """
        if not keys:
            return
        now = self._clock.now()
        window = timedelta(minutes=self._cfg.lockout_minutes)
        retry_at: datetime | None = None
        with transaction(self._sessions) as session:
            for key in keys:
                retry_at = throttle.claim(session, key, now, window)
                if retry_at is not None:
                    for taken in attempt.claimed:
                        throttle.give_back(session, taken)
                    attempt.claimed.clear()
                    self._log_failure(session, attempt, "throttled", now, key=key.key.split(":")[0])
                    break
                attempt.claimed.append(key)
        if retry_at is not None:
            raise TooManyAttempts(retry_at)

    def _claim_stand_in(self, attempt: _Attempt) -> None:
        """Unknown name: claim counters of the same shape as an entry's, in a transaction of its own.

        A real person's attempt costs one more transaction (the entry's counters); without the
        same work here, response times would tell which names exist (test plan A06). The
        stand-in counters follow the typed name, so they lock together with its name counters
        and change no outcome.
        """
        now = self._clock.now()
        window = timedelta(minutes=self._cfg.lockout_minutes)
        keys = throttle.entry_keys(
            "unknown:" + throttle.normalise_login_name(attempt.username),
            attempt.client.address,
            self._cfg.max_failed_logins,
        )
        with transaction(self._sessions) as session:
            for key in keys:
                if throttle.claim(session, key, now, window) is None:
                    attempt.claimed.append(key)

    def _give_back(self, attempt: _Attempt, reason: str, *, tls_failed: bool = False) -> None:
        now = self._clock.now()
        with transaction(self._sessions) as session:
            for key in attempt.claimed:
                throttle.give_back(session, key)
            self._log_failure(session, attempt, reason, now)
            if tls_failed:
                self._log_tls_failure(session, now, "login")
        attempt.claimed.clear()

    def _settle(self, attempt: _Attempt, verified: _Verified, expect_user_id: int | None, action: str) -> int:
        """Refuse or accept the verified person; nothing is written before the decision."""
        now = self._clock.now()
        person = verified.person
        with transaction(self._sessions) as session:
            refusal: RefusalReason | None = None
            if person is not None:
                existing = find_user(session, person)
                if existing is not None and existing.anonymised_at is not None:
                    refusal = RefusalReason.INACTIVE
                elif local_name_taken(session, person.username):
                    refusal = RefusalReason.LOCAL_NAME_CONFLICT
                elif expect_user_id is not None and (existing is None or existing.id != expect_user_id):
                    refusal = RefusalReason.WRONG_PERSON
            else:
                local = session.get_one(User, verified.local_user_id)
                if local.anonymised_at is not None or not local.active:
                    refusal = RefusalReason.INACTIVE
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
                return user.id
        self._record_failure(attempt, refusal)
        raise AuthenticationFailed(refusal)

    def _check_credentials(
        self,
        username: str,
        password: str,
        local: tuple[int, str | None, bool] | None,
        before_bind: Callable[[DirectoryAccount], None],
    ) -> _Verified:
        if local is not None:
            user_id, password_hash, active = local
            if not password or "\x00" in password:
                raise AuthenticationFailed(FailureReason.EMPTY_PASSWORD)
            matches = passwords.verify_password(password_hash, password)
            if not self._cfg.local_admin_enabled:
                raise AuthenticationFailed(RefusalReason.LOCAL_ADMIN_DISABLED)
            if not matches:
                raise AuthenticationFailed(FailureReason.WRONG_PASSWORD)
            if not active:
                raise AuthenticationFailed(RefusalReason.INACTIVE)
            return _Verified(None, user_id)
        if self._directory is None:
            passwords.verify_password(None, password)  # same cost as a real check
            raise AuthenticationFailed(FailureReason.UNKNOWN_USER)
        return _Verified(self._directory.authenticate(username, password, before_bind), None)

    def _record_failure(self, attempt: _Attempt, reason: StrEnum) -> None:
        now = self._clock.now()
        lockout = timedelta(minutes=self._cfg.lockout_minutes)
        with transaction(self._sessions) as session:
            locked = [
                key.key.split(":")[0] + ("@address" if key.pair else "")
                for key in attempt.claimed
                if throttle.record_failure(session, key, now, lockout)
            ]
            self._log_failure(session, attempt, reason.value, now)
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

    @staticmethod
    def _log_failure(session: Session, attempt: _Attempt, reason: str, now: datetime, **extra: str) -> None:
        name = attempt.username[:200]
        user_id = session.execute(select(User.id).where(User.username == name)).scalar_one_or_none()
        append_event(
            session,
            AuditRecord(
                action="auth.login_failed",
                occurred_at=now,
                actor_user_id=user_id,
                actor_name=name,
                client_address=attempt.client.address,
                user_agent=attempt.client.user_agent,
                details={"reason": reason, **extra},
            ),
        )

    @staticmethod
    def _log_tls_failure(session: Session, now: datetime, during: str) -> None:
        # an expired or foreign certificate can also be an interception attempt: keep a record
        append_event(
            session,
            AuditRecord(
                action="directory.tls_failed",
                occurred_at=now,
                actor_name="directory",
                details={"during": during},
            ),
        )

    # -- re-checking people in the directory ---------------------------------------

    def _recheck_due(self, user: User, now: datetime) -> _RecheckDue | None:
        if user.source is not UserSource.DIRECTORY:
            return None
        interval = timedelta(minutes=self._cfg.directory_recheck_minutes)
        if user.last_directory_check_at is not None and now - user.last_directory_check_at < interval:
            return None
        return _RecheckDue(user.id, user.directory_uuid)

    def _recheck(self, due: _RecheckDue) -> bool:
        """Ask the directory whether the person may still sign in; False ends their access.

        Disabled, locked, expired or gone: the person is deactivated, their sessions and
        tokens end. Directory down: access continues (security test plan A12), the outage is
        logged and the next check comes one interval later, so requests do not all wait for
        timeouts while the directory is down.
        """
        now = self._clock.now()
        if self._directory is None or due.directory_uuid is None:
            # nothing can vouch for this directory person (the directory section was removed):
            # refuse the request, but change nothing, since the directory may come back
            return False
        try:
            person = self._directory.lookup_by_id(due.directory_uuid)
        except DirectoryUnavailable as exc:
            log.warning("directory re-check of user %s skipped: the directory is unavailable", due.user_id)
            with transaction(self._sessions) as session:
                session.execute(
                    update(User).where(User.id == due.user_id).values(last_directory_check_at=now)
                )
                if isinstance(exc, DirectoryTlsFailed):
                    self._log_tls_failure(session, now, "recheck")
            return True
        with transaction(self._sessions) as session:
            user = session.get_one(User, due.user_id)
            if person is not None and person.status is AccountStatus.ACTIVE:
                try:
                    upsert_user(session, person, now)  # roles may have changed too
                except Conflict:
                    log.error("directory re-check of user %s: name clashes with the local account", user.id)
                user.last_directory_check_at = now
                return True
            user.active = False
            user.last_directory_check_at = now
            if person is None and user.left_directory_at is None:
                user.left_directory_at = now
            user.updated_at = now
            end_access(session, user.id, now)
            append_event(
                session,
                AuditRecord(
                    action="user.deactivated",
                    occurred_at=now,
                    object_type="user",
                    object_id=str(user.id),
                    actor_name="directory re-check",
                    details={
                        "username": user.username,
                        "status": person.status.value if person is not None else "gone",
                    },
                ),
            )
            return False

    # -- web sessions --------------------------------------------------------------

    def resolve_session(self, token: str) -> Principal | None:
        """The person behind a session id from a cookie, or None when it is not (or no longer) valid."""
        return self._resolve_with_recheck(self._resolve_session_once, token)

    def _resolve_with_recheck(
        self, resolve_once: Callable[[str], Principal | _RecheckDue | None], token: str
    ) -> Principal | None:
        # A due directory re-check runs outside the resolving transaction; a second
        # pass then sees its result.
        for _ in range(2):
            outcome = resolve_once(token)
            if not isinstance(outcome, _RecheckDue):
                return outcome
            if not self._recheck(outcome):
                return None
        return None

    def _resolve_session_once(self, token: str) -> Principal | _RecheckDue | None:
        now = self._clock.now()
        idle = timedelta(minutes=self._cfg.idle_timeout_minutes)
        with transaction(self._sessions) as session:
            record = session.get(UserSession, _sha256(token))
            if record is None or record.revoked_at is not None or record.expires_at <= now:
                return None
            if record.last_seen_at + idle <= now:
                record.revoked_at = now
                return None
            user = session.get(User, record.user_id)
            if user is None or not self._may_act(user):
                return None
            due = self._recheck_due(user, now)
            if due is not None:
                return due
            if now - record.last_seen_at >= LAST_SEEN_GRANULARITY:
                record.last_seen_at = now
            return _principal(user)

    def _may_act(self, user: User) -> bool:
        if not user.active or user.anonymised_at is not None:
            return False
        return user.source is not UserSource.LOCAL or self._cfg.local_admin_enabled

    def logout(self, token: str, client: ClientInfo) -> None:
        now = self._clock.now()
        with transaction(self._sessions) as session:
            record = session.get(UserSession, _sha256(token))
            if record is None or record.revoked_at is not None:
                return
            record.revoked_at = now
            user = session.get(User, record.user_id)
            append_event(
                session,
                AuditRecord(
                    action="auth.logout",
                    occurred_at=now,
                    actor_user_id=record.user_id,
                    actor_name=user.username if user else None,
                    object_type="user",
                    object_id=str(record.user_id),
                    client_address=client.address,
                    user_agent=client.user_agent,
                ),
            )

    @staticmethod
    def _revoke_session(session: Session, token: str, now: datetime) -> None:
        session.execute(
            update(UserSession)
            .where(UserSession.id == _sha256(token), UserSession.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    # -- API tokens ----------------------------------------------------------------

    def create_token(self, user_id: int, name: str, client: ClientInfo) -> IssuedToken:
        name = name.strip()[:100]
        if not name:
            raise InvalidInput("Give the token a name (for example the device or system using it).")
        now = self._clock.now()
        token = TOKEN_PREFIX + self._random_token()
        expires_at = now + timedelta(days=self._cfg.api_token_days)
        with transaction(self._sessions) as session:
            user = session.get_one(User, user_id)
            record = ApiToken(
                user_id=user.id, name=name, token_hash=_sha256(token), created_at=now, expires_at=expires_at
            )
            session.add(record)
            session.flush()
            append_event(
                session,
                AuditRecord(
                    action="auth.token_created",
                    occurred_at=now,
                    actor_user_id=user.id,
                    actor_name=user.username,
                    object_type="api_token",
                    object_id=str(record.id),
                    client_address=client.address,
                    user_agent=client.user_agent,
                    details={"name": name, "expires_at": expires_at.isoformat()},
                ),
            )
            return IssuedToken(record.id, token, name, expires_at)

    def resolve_token(self, token: str) -> Principal | None:
        """The owner of an API token, or None when it is not (or no longer) valid."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        return self._resolve_with_recheck(self._resolve_token_once, token)

    def _resolve_token_once(self, token: str) -> Principal | _RecheckDue | None:
        now = self._clock.now()
        with transaction(self._sessions) as session:
            record = session.execute(
                select(ApiToken).where(ApiToken.token_hash == _sha256(token))
            ).scalar_one_or_none()
            if record is None or record.revoked_at is not None or record.expires_at <= now:
                return None
            user = session.get(User, record.user_id)
            # the break-glass admin's tokens stop with auth.local_admin_enabled: false, like sessions
            if user is None or not self._may_act(user):
                return None
            due = self._recheck_due(user, now)
            if due is not None:
                return due
            if record.last_used_at is None or now - record.last_used_at >= LAST_SEEN_GRANULARITY:
                record.last_used_at = now
            return _principal(user)

    def list_tokens(self, user_id: int) -> list[TokenInfo]:
        with transaction(self._sessions) as session:
            rows = session.execute(
                select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.created_at.desc())
            ).scalars()
            return [
                TokenInfo(r.id, r.name, r.created_at, r.expires_at, r.last_used_at, r.revoked_at)
                for r in rows
            ]

    def revoke_token(self, user_id: int, token_id: int, client: ClientInfo) -> None:
        """:raises NotFound: when the token does not exist or belongs to someone else."""
        now = self._clock.now()
        with transaction(self._sessions) as session:
            record = session.get(ApiToken, token_id)
            if record is None or record.user_id != user_id:
                raise NotFound("There is no such token.")
            if record.revoked_at is not None:
                return
            record.revoked_at = now
            append_event(
                session,
                AuditRecord(
                    action="auth.token_revoked",
                    occurred_at=now,
                    actor_user_id=user_id,
                    object_type="api_token",
                    object_id=str(token_id),
                    client_address=client.address,
                    user_agent=client.user_agent,
                ),
            )

    def revoke_presented_token(self, token: str, client: ClientInfo) -> None:
        with transaction(self._sessions) as session:
            record = session.execute(
                select(ApiToken).where(ApiToken.token_hash == _sha256(token))
            ).scalar_one_or_none()
            ids = (record.user_id, record.id) if record is not None else None
        if ids is not None:
            self.revoke_token(ids[0], ids[1], client)

    # -- throttle housekeeping -----------------------------------------------------

    def purge_login_throttles(self) -> int:
        """Delete failed-login counters that no longer hold anything back; returns how many."""
        now = self._clock.now()
        with transaction(self._sessions) as session:
            return throttle.purge_expired(session, now, timedelta(minutes=self._cfg.lockout_minutes))

    # -- directory sync ------------------------------------------------------------

    def sync_directory(self, *, force: bool = False) -> SyncReport:
        """Refresh every directory person's row; mark people no longer found as inactive.

        People are looked up by their immutable id, so a renamed person keeps their row and a
        new person with a departed person's name never takes it over. Looks everyone up
        first and changes nothing if the directory fails part-way.
        :raises DirectoryUnavailable: when the directory cannot be reached.
        :raises Conflict: when more than half would be marked as gone (unless `force`).
        """
        if self._directory is None:
            raise InvalidInput("No directory is configured (the `directory` section of the config).")
        with transaction(self._sessions) as session:
            known = session.execute(
                select(User.id, User.directory_uuid).where(
                    User.source == UserSource.DIRECTORY, User.anonymised_at.is_(None)
                )
            ).all()
        # a row without an immutable id cannot be matched to anyone safely: it counts as gone
        found = {
            user_id: self._directory.lookup_by_id(directory_uuid) if directory_uuid else None
            for user_id, directory_uuid in known
        }
        gone = [user_id for user_id, person in found.items() if person is None]
        if known and not force and len(gone) > MAX_LEAVE_FRACTION * len(known) and len(gone) > 2:
            raise Conflict(
                f"{len(gone)} of {len(known)} people were not found in the directory; check "
                "directory.user_base_dn and user_filter, or run the sync with --force"
            )
        now = self._clock.now()
        refreshed = deactivated = left = 0
        with transaction(self._sessions) as session:
            for user_id, person in found.items():
                user = session.get_one(User, user_id)
                if person is None:
                    if user.left_directory_at is None:
                        user.active = False
                        user.left_directory_at = now
                        user.updated_at = now
                        end_access(session, user.id, now)
                        self._log_sync(session, user, "user.left_directory", now)
                        left += 1
                    continue
                upsert_user(session, person, now)
                user.last_directory_check_at = now
                refreshed += 1
                active = person.status is AccountStatus.ACTIVE
                if user.active and not active:
                    end_access(session, user.id, now)
                    self._log_sync(session, user, "user.deactivated", now, status=person.status.value)
                    deactivated += 1
                user.active = active
            append_event(
                session,
                AuditRecord(
                    action="directory.sync",
                    occurred_at=now,
                    details={"refreshed": refreshed, "deactivated": deactivated, "left": left},
                ),
            )
        return SyncReport(refreshed=refreshed, deactivated=deactivated, left=left)

    @staticmethod
    def _log_sync(session: Session, user: User, action: str, now: datetime, **details: str) -> None:
        append_event(
            session,
            AuditRecord(
                action=action,
                occurred_at=now,
                object_type="user",
                object_id=str(user.id),
                actor_name="directory sync",
                details={"username": user.username, **details},
            ),
        )

    # -- the break-glass local administrator ---------------------------------------

    def create_local_admin(self, username: str, password: str, display_name: str | None = None) -> int:
        """Create (or reset the password of) the local system administrator.

        :raises InvalidInput: for a weak password or when local admins are disabled.
        :raises Conflict: when a directory person has this name.
        """
        if not self._cfg.local_admin_enabled:
            raise InvalidInput("auth.local_admin_enabled is false: the local administrator is disabled.")
        username = username.strip()
        if not username or len(username) > 200 or any(ord(c) < 33 for c in username):
            raise InvalidInput("The user name must be 1-200 visible characters without spaces.")
        if len(password) > MAX_PASSWORD_LENGTH:
            raise InvalidInput(f"The password must be at most {MAX_PASSWORD_LENGTH} characters.")
        passwords.check_strength(password, username)
        now = self._clock.now()
        with transaction(self._sessions) as session:
            user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
            if user is not None and user.source is not UserSource.LOCAL:
                raise Conflict(f"{username!r} is a directory account; choose another name.")
            action = "auth.local_admin_password_reset"
            if user is None:
                action = "auth.local_admin_created"
                user = User(
                    username=username,
                    source=UserSource.LOCAL,
                    display_name=display_name or username,
                    created_at=now,
                    updated_at=now,
                    active=True,
                )
                user.roles = [UserRole(role=Role.SYSTEM_ADMIN)]
                session.add(user)
            user.password_hash = passwords.hash_password(password)
            user.updated_at = now
            user.active = True
            session.flush()
            end_access(session, user.id, now)
            append_event(
                session,
                AuditRecord(
                    action=action,
                    occurred_at=now,
                    actor_name="appliance admin create",
                    object_type="user",
                    object_id=str(user.id),
                    details={"username": username},
                ),
            )
            return user.id
