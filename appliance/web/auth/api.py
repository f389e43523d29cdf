"""/api/v1 endpoints of the login domain: who am I, and API tokens for the mobile app.

Bearer tokens only (no cookies), so the blueprint is exempt from CSRF.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from flask_babel import gettext as _

from appliance.errors import InvalidInput
from appliance.web.auth.principal import auth_service, bearer_principal, client_info

bp = Blueprint("auth_api", __name__, url_prefix="/api/v1")


def _json_body() -> object:
    """The request's JSON, or None when it is not JSON or does not parse.

    :raises InvalidInput: when it nests deeper than the parser can follow (RecursionError,
        which Flask's `silent` does not cover: it only covers ValueError).
    """
    try:
        return request.get_json(silent=True)
    except RecursionError as exc:
        raise InvalidInput(_("The JSON body is nested too deeply.")) from exc


@bp.get("/me")
def me() -> Response:
    principal = bearer_principal()
    return jsonify(
        {
            "id": principal.user_id,
            "username": principal.username,
            "display_name": principal.display_name,
            "roles": sorted(r.value for r in principal.roles),
        }
    )


@bp.post("/auth/tokens")
def issue_token() -> Response:
    """Sign in with user name and password and receive an API token (shown once)."""
    body = _json_body()
    if not isinstance(body, dict):
        raise InvalidInput(_("Send a JSON object with username, password and name."))
    username, password = body.get("username"), body.get("password")
    name = body.get("name") or "API"
    if not isinstance(username, str) or not isinstance(password, str) or not isinstance(name, str):
        raise InvalidInput(_("username, password and name must be strings."))
    issued = auth_service().login_for_token(username, password, client_info(), name)
    response = jsonify(
        {
            "token": issued.token,
            "token_id": issued.token_id,
            "name": issued.name,
            "expires_at": issued.expires_at.isoformat(),
        }
    )
    response.status_code = 201
    return response


@bp.delete("/auth/tokens/current")
def revoke_current_token() -> Response:
    bearer_principal()
    token = request.headers["Authorization"].partition(" ")[2].strip()
    auth_service().revoke_presented_token(token, client_info())
    return Response(status=204)
