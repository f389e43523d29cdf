"""Sign-in, sessions and API tokens: the login domain, without Flask."""

from appliance.auth.credentials import TOKEN_PREFIX
from appliance.auth.errors import RefusalReason, TooManyAttempts
from appliance.auth.locks import SignInLock
from appliance.auth.records import (
    ClientInfo,
    IssuedToken,
    LoginResult,
    Principal,
    SyncReport,
    TokenInfo,
)
from appliance.auth.service import AuthService

__all__ = [
    "TOKEN_PREFIX",
    "AuthService",
    "ClientInfo",
    "IssuedToken",
    "LoginResult",
    "Principal",
    "RefusalReason",
    "SignInLock",
    "SyncReport",
    "TokenInfo",
    "TooManyAttempts",
]
