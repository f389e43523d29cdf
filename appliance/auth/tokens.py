"""API tokens for /api/v1: issued after a password check, shown once, stored as a sha256,
revocable by their owner, expiring after `auth.api_token_days`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from appliance.audit import AuditRecord, append_event
from appliance.auth.credentials import TOKEN_PREFIX, Credential, digest
from appliance.auth.records import ClientInfo, IssuedToken, Principal, TokenInfo
from appliance.auth.resolve import Resolver
from appliance.auth.text import is_storable
from appliance.clock import Clock
from appliance.config import AuthConfig
from appliance.db import transaction
from appliance.errors import InvalidInput, NotFound
from appliance.models import ApiToken, User

NAME_LENGTH = 100
"""api_tokens.name's length; longer names are cut."""
MAX_TOKEN_ID = 2**31 - 1
"""The largest id api_tokens.id can hold (a 32-bit integer on PostgreSQL); a larger one
names no token, and the database drivers would refuse to send it."""


def check_token_name(name: str) -> str:
    """The name a token is stored under (stripped, cut to NAME_LENGTH).

    :raises InvalidInput: when it is empty or holds what cannot be stored.
    """
    if not is_storable(name):
        raise InvalidInput("The token name holds characters that cannot be stored; use plain text.")
    name = name.strip()[:NAME_LENGTH]
    if not name:
        raise InvalidInput("Give the token a name (for example the device or system using it).")
    return name


class ApiTokens:
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
        self._credential = Credential(ApiToken, ApiToken.token_hash, ApiToken.last_used_at, idle_timeout=None)

    def create(self, user_id: int, name: str, client: ClientInfo) -> IssuedToken:
        """:raises InvalidInput: for a name `check_token_name` refuses."""
        name = check_token_name(name)
        now = self._clock.now()
        token = TOKEN_PREFIX + self._new_secret()
        expires_at = now + timedelta(days=self._cfg.api_token_days)
        with transaction(self._sessions) as session:
            user = session.get_one(User, user_id)
            record = ApiToken(
                user_id=user.id, name=name, token_hash=digest(token), created_at=now, expires_at=expires_at
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

    def resolve(self, token: str) -> Principal | None:
        if not token.startswith(TOKEN_PREFIX):
            return None
        return self._resolver.resolve(self._credential, token)

    def list_for(self, user_id: int) -> list[TokenInfo]:
        with transaction(self._sessions) as session:
            rows = session.execute(
                select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.created_at.desc())
            ).scalars()
            return [
                TokenInfo(r.id, r.name, r.created_at, r.expires_at, r.last_used_at, r.revoked_at)
                for r in rows
            ]

    def revoke(self, user_id: int, token_id: int, client: ClientInfo) -> None:
        """:raises NotFound: when the token does not exist or belongs to someone else."""
        if not 0 < token_id <= MAX_TOKEN_ID:
            raise NotFound("There is no such token.")
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

    def revoke_presented(self, token: str, client: ClientInfo) -> None:
        with transaction(self._sessions) as session:
            record = session.execute(
                select(ApiToken).where(ApiToken.token_hash == digest(token))
            ).scalar_one_or_none()
            ids = (record.user_id, record.id) if record is not None else None
        if ids is not None:
            self.revoke(ids[0], ids[1], client)
