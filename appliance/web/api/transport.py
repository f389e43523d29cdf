"""What the API's views share below their models: blueprints that check a request's media
type and size before spectree reads it, and idempotency keys. Ids in paths and file
downloads, which the pages share too, are in appliance.web.files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from flask import Blueprint, current_app, g, request
from flask_babel import gettext as _
from werkzeug.exceptions import UnsupportedMediaType

from appliance.auth import Principal
from appliance.errors import InvalidInput
from appliance.web.api.models import IdempotencyHeaders
from appliance.web.api.spec import spec
from appliance.web.auth.principal import bearer_principal
from appliance.web.files import allow_upload_body
from appliance.workflow.idempotency import IdempotencyKey

PREFIX = "/api/v1"
JSON_BODY_LIMIT = 256 * 1024
"""The largest JSON body: a party with its fields is a few KiB."""


def api_blueprint(name: str, import_name: str) -> Blueprint:
    """A blueprint under /api/v1 whose every request needs a bearer token."""
    bp = Blueprint(name, import_name, url_prefix=PREFIX)
    # the token first: a caller without one learns nothing, not even what a valid body is
    bp.before_request(authenticate)
    bp.before_request(check_request_body)
    return bp


def authenticate() -> None:
    """:raises Unauthenticated: without a valid bearer token."""
    g.api_principal = bearer_principal()


def api_principal() -> Principal:
    """The owner of the request's bearer token, checked by `authenticate`."""
    principal = g.api_principal
    assert isinstance(principal, Principal)
    return principal


def check_request_body() -> None:
    """Set the body limit and refuse a body of the wrong type before spectree parses it.

    spectree only reads a JSON body from a JSON request and a form from a form request, and
    hands the view None otherwise; refusing those here keeps the views simple. The limit is
    set per request, before anything reads the body: werkzeug enforces it while reading.
    """
    view = current_app.view_functions.get(request.endpoint or "")
    metadata = spec.get_function_metadata(view) if view is not None else None
    if metadata is None:
        return
    if metadata.form is not None:
        allow_upload_body()
        if request.mimetype != "multipart/form-data":
            raise UnsupportedMediaType()
        return
    request.max_content_length = JSON_BODY_LIMIT
    if metadata.json is None:
        return
    if not request.is_json:
        raise UnsupportedMediaType()
    try:
        body = request.get_json(silent=True)
    except RecursionError as exc:
        # Flask's `silent` only covers ValueError
        raise InvalidInput(_("The JSON body is nested too deeply.")) from exc
    if not isinstance(body, dict):
        raise InvalidInput(_("Send a JSON object as the request body."))


def idempotency_key(
    headers: IdempotencyHeaders, operation: str, content: Mapping[str, object]
) -> IdempotencyKey | None:
    """The request's Idempotency-Key bound to `operation` and the sha256 of `content`
    (the request's body and parameters, in canonical JSON); None without the header."""
    if headers.idempotency_key is None:
        return None
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return IdempotencyKey(
        key=headers.idempotency_key,
        operation=operation,
        request_sha256=hashlib.sha256(canonical.encode()).hexdigest(),
    )
