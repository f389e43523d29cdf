"""Who is asking: the Flask-Login user of a web session, or the owner of a bearer token.

The API accepts bearer tokens only: a session cookie alone never authenticates an
/api/v1 request, which is what makes it safe to exempt the API from CSRF.
"""

from __future__ import annotations

from flask import request
from flask_babel import gettext as _
from flask_login import UserMixin, current_user

from appliance.auth import AuthService, ClientInfo, Principal
from appliance.errors import Unauthenticated
from appliance.web.context import current_services


class SessionUser(UserMixin):  # type: ignore[misc]
    """Flask-Login's user: its id is the random session id, checked server-side on every request."""

    def __init__(self, principal: Principal, session_token: str) -> None:
        self.principal = principal
        self.session_token = session_token

    def get_id(self) -> str:
        return self.session_token


def auth_service() -> AuthService:
    return current_services().auth


def client_info() -> ClientInfo:
    return ClientInfo(address=request.remote_addr, user_agent=request.user_agent.string or None)


def session_user() -> SessionUser | None:
    user = current_user
    return user if isinstance(user, SessionUser) else None


def page_principal() -> Principal:
    """The person signed in to a page behind `@login_required`."""
    user = session_user()
    assert user is not None  # login_required let the request in
    return user.principal


def bearer_principal() -> Principal:
    """The owner of the request's bearer token.

    :raises Unauthenticated: when the token is missing, unknown, revoked or expired.
    """
    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(_("Send an API token: Authorization: Bearer <token>."))
    principal = auth_service().resolve_token(token.strip())
    if principal is None:
        raise Unauthenticated(_("The API token is unknown, revoked or expired."))
    return principal
