"""`AuthService`: the login domain's entry points for the web app, the CLI and the jobs.

Each method is one use case and owns its transactions; the work is done by one module per
job: `login` (credentials and throttling), `sessions` (web sessions), `tokens` (API tokens),
`resolve` (the one path from a presented session or token to a person, with `recheck`),
`sync` (directory sync) and `local_admin` (the break-glass administrator).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from appliance.auth import throttle
from appliance.auth.access import may_act
from appliance.auth.credentials import new_secret
from appliance.auth.freeze import NOT_A_LIFTER, FrozenAccount, freeze_account, lift_freeze, list_frozen
from appliance.auth.local_admin import create_local_admin
from appliance.auth.locks import NOT_A_LOCK_ADMIN, SignInLock, lift_lock, list_locks
from appliance.auth.login import Login
from appliance.auth.recheck import DirectoryRecheck
from appliance.auth.records import ClientInfo, IssuedToken, LoginResult, Principal, SyncReport, TokenInfo
from appliance.auth.resolve import Resolver
from appliance.auth.sessions import WebSessions
from appliance.auth.sync import sync_directory
from appliance.auth.tokens import ApiTokens, check_token_name
from appliance.clock import Clock
from appliance.config import AuthConfig
from appliance.db import transaction
from appliance.directory import Directory
from appliance.errors import Forbidden, InvalidInput
from appliance.models import User


class AuthService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        directory: Directory | None,
        cfg: AuthConfig,
        clock: Clock,
        random_token: Callable[[], str] = new_secret,
        *,
        mail: bool = False,
    ) -> None:
        """`mail`: notices to people (a lock on their account) are mailed too, not only shown."""
        self._sessions = sessions
        self._directory = directory
        self._cfg = cfg
        self._clock = clock
        self._mail = mail
        self._login = Login(sessions, directory, cfg, clock, mail=mail)
        recheck = DirectoryRecheck(
            sessions, directory, timedelta(minutes=cfg.directory_recheck_minutes), clock
        )
        resolver = Resolver(sessions, recheck, clock, cfg.local_admin_enabled)
        self._web_sessions = WebSessions(sessions, resolver, cfg, clock, random_token)
        self._tokens = ApiTokens(sessions, resolver, cfg, clock, random_token)

    # -- sign-in -------------------------------------------------------------------

    def login(
        self, username: str, password: str, client: ClientInfo, previous_session: str | None = None
    ) -> LoginResult:
        """Check the credentials and open a new web session; `previous_session` ends.

        :raises InvalidInput: for a name or password that is not text (nothing is counted).
        :raises AuthenticationFailed: for every kind of refusal (one public message).
        :raises TooManyAttempts: when the account or the client address is locked out.
        :raises DirectoryUnavailable: when no directory server answers.
        """
        return self._login.verify_then(
            username,
            password,
            client,
            lambda session, user: self._web_sessions.open(session, user, client, previous_session),
        )

    def login_for_token(self, username: str, password: str, client: ClientInfo, name: str) -> IssuedToken:
        """Sign in (same checks as `login`) and issue an API token instead of a web session.

        :raises InvalidInput: also for a token name that cannot be used, before the password
            is checked (a refused name must not cost a sign-in attempt).
        """
        check_token_name(name)
        user_id = self._login.verify(username, password, client)
        return self._tokens.create(user_id, name, client)

    def create_token_with_password(
        self, user_id: int, password: str, name: str, client: ClientInfo
    ) -> IssuedToken:
        """Issue an API token to a signed-in person who has entered their password again.

        A token outlives the session by months, so a stolen session alone must not mint one.
        The password check is a sign-in in every respect (throttle, log), bound to `user_id`.
        :raises InvalidInput, AuthenticationFailed, TooManyAttempts, DirectoryUnavailable: as
            `login_for_token`.
        """
        check_token_name(name)
        with transaction(self._sessions) as session:
            username = session.get_one(User, user_id).username
        self._login.verify(username, password, client, expect_user_id=user_id, action="auth.reauthenticated")
        return self._tokens.create(user_id, name, client)

    # -- web sessions --------------------------------------------------------------

    def resolve_session(self, token: str) -> Principal | None:
        """The person behind a session id from a cookie, or None when it is not (or no longer) valid."""
        return self._web_sessions.resolve(token)

    def logout(self, token: str, client: ClientInfo) -> None:
        self._web_sessions.logout(token, client)

    # -- API tokens ----------------------------------------------------------------

    def create_token(self, user_id: int, name: str, client: ClientInfo) -> IssuedToken:
        """:raises InvalidInput: for an empty name or one that cannot be stored."""
        return self._tokens.create(user_id, name, client)

    def resolve_token(self, token: str) -> Principal | None:
        """The owner of an API token, or None when it is not (or no longer) valid."""
        return self._tokens.resolve(token)

    def list_tokens(self, user_id: int) -> list[TokenInfo]:
        return self._tokens.list_for(user_id)

    def revoke_token(self, user_id: int, token_id: int, client: ClientInfo) -> None:
        """:raises NotFound: when the token does not exist or belongs to someone else."""
        self._tokens.revoke(user_id, token_id, client)

    def revoke_presented_token(self, token: str, client: ClientInfo) -> None:
        self._tokens.revoke_presented(token, client)

    # -- sign-in locks -----------------------------------------------------------

    def list_locks(self, admin_user_id: int) -> list[SignInLock]:
        """The sign-in locks in force. :raises Forbidden: for anyone but a lock administrator."""
        with transaction(self._sessions) as session:
            return list_locks(session, self._user(session, admin_user_id), self._clock.now())

    def lift_lock(self, admin_user_id: int, key: str, client: ClientInfo) -> SignInLock:
        """:raises Forbidden: for anyone but a lock administrator. :raises NotFound: no such lock."""
        with transaction(self._sessions) as session:
            admin = self._user(session, admin_user_id)
            return lift_lock(session, key, admin, client, self._clock.now(), mail=self._mail)

    # -- frozen accounts ---------------------------------------------------------

    def freeze_my_account(self, user_id: int, client: ClientInfo) -> int:
        """Freeze the person's own account at once; returns how many sessions and tokens ended."""
        with transaction(self._sessions) as session:
            user = session.get(User, user_id)
            if user is None or not may_act(user, self._cfg.local_admin_enabled):
                raise Forbidden("This account cannot be frozen: it is not active.")
            return freeze_account(session, user, client, self._clock.now())

    def list_frozen(self, admin_user_id: int) -> list[FrozenAccount]:
        """:raises Forbidden: for anyone but an organisation or system administrator."""
        with transaction(self._sessions) as session:
            return list_frozen(session, self._admin(session, admin_user_id))

    def lift_freeze(self, admin_user_id: int, user_id: int, client: ClientInfo) -> FrozenAccount:
        """:raises Forbidden: not an administrator. :raises NotFound: no such frozen account."""
        with transaction(self._sessions) as session:
            admin = self._admin(session, admin_user_id)
            return lift_freeze(session, admin, user_id, client, self._clock.now(), mail=self._mail)

    def _admin(self, session: Session, user_id: int) -> User:
        user = session.get(User, user_id)
        if user is None or not may_act(user, self._cfg.local_admin_enabled):
            raise Forbidden(NOT_A_LIFTER)
        return user

    def _user(self, session: Session, user_id: int) -> User:
        user = session.get(User, user_id)
        if user is None or not may_act(user, self._cfg.local_admin_enabled):
            raise Forbidden(NOT_A_LOCK_ADMIN)
        return user

    # -- housekeeping, directory sync, the break-glass administrator ---------------

    def purge_login_throttles(self) -> int:
        """Delete failed-login counters that no longer hold anything back; returns how many."""
        now = self._clock.now()
        with transaction(self._sessions) as session:
            return throttle.purge_expired(session, now, timedelta(minutes=self._cfg.lockout_minutes))

    def sync_directory(self, *, force: bool = False) -> SyncReport:
        """Refresh every directory person's row; mark people no longer found as inactive.

        :raises InvalidInput: when no directory is configured.
        :raises DirectoryUnavailable: when the directory cannot be reached.
        :raises Conflict: when more than half would be marked as gone (unless `force`).
        """
        if self._directory is None:
            raise InvalidInput("No directory is configured (the `directory` section of the config).")
        return sync_directory(self._sessions, self._directory, self._clock, force=force)

    def create_local_admin(self, username: str, password: str, display_name: str | None = None) -> int:
        """Create (or reset the password of) the local system administrator.

        :raises InvalidInput: for a weak password or when local admins are disabled.
        :raises Conflict: when a directory person has this name.
        """
        return create_local_admin(self._sessions, self._cfg, self._clock, username, password, display_name)
