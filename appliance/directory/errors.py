"""Directory errors. Every authentication failure carries the same public message;
the true reason is kept for the operation log."""

from __future__ import annotations

from enum import StrEnum

from appliance.errors import Unauthenticated, Unavailable

INVALID_LOGIN_MESSAGE = "The user name or password is incorrect, or the account cannot sign in."


class FailureReason(StrEnum):
    """Why the directory refused a sign-in (the login domain adds its own reasons)."""

    EMPTY_PASSWORD = "empty_password"  # noqa: S105 - a reason code, not a password
    INVALID_USERNAME = "invalid_username"
    UNKNOWN_USER = "unknown_user"
    AMBIGUOUS_USER = "ambiguous_user"
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 - a reason code, not a password
    DISABLED = "disabled"
    EXPIRED = "expired"
    LOCKED = "locked"


class AuthenticationFailed(Unauthenticated):
    """One public message for every reason, so a client cannot tell them apart.

    `reason` is a FailureReason from the directory, or a reason of the login domain
    (appliance.auth.errors.RefusalReason); only its value reaches the operation log.
    """

    code = "invalid_login"

    def __init__(self, reason: StrEnum) -> None:
        super().__init__(INVALID_LOGIN_MESSAGE)
        self.reason = reason


class DirectoryUnavailable(Unavailable):
    code = "directory_unavailable"

    def __init__(self, public: str = "The company directory (LDAP) cannot be reached right now.") -> None:
        super().__init__(public)


class DirectoryTlsFailed(DirectoryUnavailable):
    """No server could be reached over verified TLS (certificate, name or StartTLS refused).

    Answered like any outage; the login domain also records it in the operation log,
    because it can mean an interception attempt as well as an expired certificate.
    """

    def __init__(self) -> None:
        super().__init__()
