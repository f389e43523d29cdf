"""What the API's views share below their models: blueprints that check a request's media
type and size before spectree reads it, ids in paths, idempotency keys, file downloads."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from contextlib import AbstractContextManager, ExitStack
from urllib.parse import quote

from flask import Blueprint, current_app, g, request
from flask_babel import gettext as _
from werkzeug.exceptions import UnsupportedMediaType
from werkzeug.wrappers import Response as BaseResponse
from werkzeug.wsgi import ClosingIterator, FileWrapper

from appliance.auth import Principal
from appliance.errors import InvalidInput
from appliance.web.api.models import MAX_ID, IdempotencyHeaders
from appliance.web.api.spec import spec
from appliance.web.auth.principal import bearer_principal
from appliance.web.context import current_services
from appliance.workflow.idempotency import IdempotencyKey
from appliance.workflow.queries import DocumentFile

PREFIX = "/api/v1"
ID = f"int(min=1, max={MAX_ID})"
"""URL converter of ids in paths: anything else (0, -1, 2**31, "abc") matches no route, so 404."""
JSON_BODY_LIMIT = 256 * 1024
"""The largest JSON body: a party with its fields is a few KiB."""
FORM_MARGIN = 64 * 1024
"""Room for an upload's text parts and multipart framing on top of uploads.max_bytes."""
FALLBACK_FILENAME = "contract.pdf"
DOWNLOAD_CHUNK = 256 * 1024


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
        request.max_content_length = current_services().config.uploads.max_bytes + FORM_MARGIN
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


def file_download(opened: AbstractContextManager[DocumentFile], media_type: str) -> BaseResponse:
    """Stream the document `opened` yields, closing it when the server closes the response
    (read to the end or not).

    A plain werkzeug Response on purpose: spectree reads the whole body of a Flask Response
    to validate it, which would hold the file in memory.
    """
    with ExitStack() as stack:
        document = stack.enter_context(opened)
        headers = {
            "Content-Disposition": attachment_disposition(document.filename),
            "X-Content-Type-Options": "nosniff",
        }
        body = ClosingIterator(FileWrapper(document.stream, DOWNLOAD_CHUNK), stack.pop_all().close)
    response = BaseResponse(body, mimetype=media_type, headers=headers, direct_passthrough=True)
    response.content_length = document.size
    response.set_etag(document.sha256)
    return response


def attachment_disposition(filename: str) -> str:
    """Content-Disposition for a download named `filename` (RFC 6266).

    The name is cut to its printable characters without path or quoting characters; a name
    that is not plain ASCII goes in filename* (RFC 8187) with an ASCII fallback in filename.
    """
    name = "".join(c for c in filename if c.isprintable() and c not in '\\/"<>:|?*;%').strip(" .")
    name = name or FALLBACK_FILENAME
    fallback = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    fallback = re.sub(r"[^A-Za-z0-9 ._()+-]+", "_", fallback)
    if not re.search(r"[A-Za-z0-9]", fallback.rsplit(".", 1)[0]):
        fallback = FALLBACK_FILENAME  # nothing of the name is left in ASCII but its extension
    fallback = fallback.strip(" ._")
    if fallback == name:
        return f'attachment; filename="{name}"'
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
