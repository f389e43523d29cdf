"""Server-side web sessions: opened by a sign-in, found by the cookie's id, ended by logout.

The cookie holds a random id; only its sha256 is stored. A session ends when it is revoked,
after `auth.absolute_timeout_hours`, or after `auth.idle_timeout_minutes` without use.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from appliance.audit import AuditRecord, append_event
from appliance.auth.access import principal_of
from appliance.auth.credentials import Credential, digest
from appliance.auth.records import ClientInfo, LoginResult, Principal
from appliance.auth.resolve import Resolver
from appliance.clock import Clock
from appliance.config import AuthConfig
from appliance.db import transaction
from appliance.models import User, UserSession

USER_AGENT_LENGTH = 400
"""user_sessions.user_agent's length."""


class WebSessions:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        resolver: Resolver,
        cfg: AuthConfig,
        clock: Clock,
        new_secret: Callable[[], str],
    ) -> None:
        self._sessions = sessions
        self._resolver = resolver
        self._cfg = cfg
        self._clock = clock
        self._new_secret = new_secret
        self._credential = Credential(
            UserSession,
            UserSession.id,
            UserSession.last_seen_at,
            idle_timeout=timedelta(minutes=cfg.idle_timeout_minutes),
        )

    def open(
        self, session: Session, user: User, client: ClientInfo, previous_session: str | None
    ) -> LoginResult:
        """A new session for the person who has just signed in, in the caller's transaction
        (the one recording the sign-in); `previous_session` ends."""
        now = self._clock.now()
        token = self._new_secret()
        expires_at = now + timedelta(hours=self._cfg.absolute_timeout_hours)
        if previous_session:
            # a session id planted before login must not survive it (fixation)
            session.execute(
                update(UserSession)
                .where(UserSession.id == digest(previous_session), UserSession.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        session.add(
            UserSession(
                id=digest(token),
                user_id=user.id,
                created_at=now,
                last_seen_at=now,
                expires_at=expires_at,
                client_address=client.address,
                user_agent=(client.user_agent or "")[:USER_AGENT_LENGTH] or None,
            )
        )
        return LoginResult(principal=principal_of(user), session_token=token, expires_at=expires_at)

    def resolve(self, token: str) -> Principal | None:
        return self._resolver.resolve(self._credential, token)

    def logout(self, token: str, client: ClientInfo) -> None:
        now = self._clock.now()
        with transaction(self._sessions) as session:
            record = session.get(UserSession, digest(token))
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
