"""Random credentials (web session ids, API tokens): how they are made, stored and found.

Only a credential's sha256 is stored. A web session and an API token are resolved the same
way (see `resolve`); a `Credential` says where one kind is kept and which timestamp its use
touches.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import InstrumentedAttribute

from appliance.models import ApiToken, UserSession

TOKEN_PREFIX = "esk_"  # noqa: S105 - a public prefix, not a secret
"""Marks appliance API tokens, so secret scanners and people can recognise them."""


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What is stored of a credential, and what it is looked up by."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Credential:
    """Where one kind of credential is stored, and what its use touches."""

    model: type[UserSession] | type[ApiToken]
    digest: InstrumentedAttribute[str]
    """The column holding the credential's sha256."""
    touched: InstrumentedAttribute[datetime] | InstrumentedAttribute[datetime | None]
    """When it was last used (written at most every resolve.LAST_USE_GRANULARITY)."""
    idle_timeout: timedelta | None
    """Unused this long, it is revoked; None: it lives until it expires."""
