"""Errors and refusal reasons of the login domain (on top of directory.errors)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from appliance.errors import RateLimited


class RefusalReason(StrEnum):
    """Why the login domain refused a sign-in the directory (or the local hash) accepted or
    never saw. Raised as AuthenticationFailed, so the client sees the one common message."""

    LOCAL_ADMIN_DISABLED = "local_admin_disabled"
    INACTIVE = "inactive"
    """The account is deactivated or was cancelled (anonymised)."""
    FROZEN = "frozen"
    """The person froze the account; an administrator has not lifted it yet."""
    LOCAL_NAME_CONFLICT = "local_name_conflict"
    """A directory person has the login name of the local administrator."""
    TOO_LONG = "too_long"
    """User name or password longer than the appliance accepts (checked before the directory)."""
    WRONG_PERSON = "wrong_person"
    """Re-entering the password of a session resolved to someone else (name reassigned)."""


class TooManyAttempts(RateLimited):
    """Too many failed sign-ins for this account or address; `retry_at` says when to try again."""

    code = "too_many_attempts"

    def __init__(self, retry_at: datetime) -> None:
        super().__init__("Too many failed sign-in attempts. Wait a while before trying again.", retry_at)
