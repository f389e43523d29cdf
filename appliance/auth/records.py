"""Value types the login domain hands to its callers (never ORM objects)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from appliance.config import Role


@dataclass(frozen=True)
class ClientInfo:
    """Where a request came from, for the operation log."""

    address: str | None
    user_agent: str | None


@dataclass(frozen=True)
class Principal:
    """The signed-in person as the adapters see them."""

    user_id: int
    username: str
    display_name: str
    roles: frozenset[Role]
    local: bool


@dataclass(frozen=True)
class LoginResult:
    principal: Principal
    session_token: str
    """Random session id for the cookie; only its sha256 is stored."""
    expires_at: datetime


@dataclass(frozen=True)
class IssuedToken:
    token_id: int
    token: str
    """Shown once; only its sha256 is stored."""
    name: str
    expires_at: datetime


@dataclass(frozen=True)
class TokenInfo:
    token_id: int
    name: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class SyncReport:
    refreshed: int
    deactivated: int
    left: int
    """Marked as having left the directory (records kept)."""
