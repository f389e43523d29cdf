"""The one place that turns errors into responses: problem+json under /api (and /.well-known),
HTML elsewhere."""

from __future__ import annotations

import logging
import math
from typing import TypeVar

from flask import Flask, Response, g, jsonify, render_template, request
from flask_babel import gettext as _
from flask_login import AnonymousUserMixin, current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from appliance.errors import (
    ApplianceError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthenticated,
    Unavailable,
    Unprocessable,
)
from appliance.signing.normalise import UploadProblem
from appliance.web.context import current_services

log = logging.getLogger(__name__)
R = TypeVar("R", bound=BaseResponse)

STATUS_BY_ERROR: tuple[tuple[type[ApplianceError], int], ...] = (
    (Unprocessable, 422),
    (InvalidInput, 400),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (RateLimited, 429),
    (Unavailable, 503),
)
STATUS_BY_CODE: dict[str, int] = {UploadProblem.TOO_LARGE.value: 413}
"""Codes whose status is more precise than their class's (an upload over the limit is an
Unprocessable from the normaliser, but HTTP has 413 for it)."""
RETRY_AFTER_SECONDS = "30"


def status_for(error: ApplianceError) -> int:
    if error.code in STATUS_BY_CODE:
        return STATUS_BY_CODE[error.code]
    for error_type, status in STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return status
    return 500


def wants_problem_json() -> bool:
    """Machines read these paths: the API, and what apps discover under /.well-known."""
    return request.path.startswith(("/api/", "/.well-known/"))


def error_response(status: int, code: str, title: str, detail: str) -> Response:
    if wants_problem_json():
        # `code` repeats the type's last part, so clients need not parse the URN
        response = jsonify(
            {
                "type": f"urn:appliance:problem:{code}",
                "code": code,
                "title": title,
                "status": status,
                "detail": detail,
            }
        )
        response.mimetype = "application/problem+json"
    else:
        _settle_current_user()
        response = Response(
            render_template("error.html", status=status, title=title, detail=detail), mimetype="text/html"
        )
    response.status_code = status
    if status == 503:
        response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response


def _settle_current_user() -> None:
    """The page's navigation asks who is signed in; when that lookup is what failed (the
    database is down), show the page as to a visitor instead of failing inside the handler."""
    try:
        current_user._get_current_object()
    except Exception:  # whatever broke the request may break this lookup too
        log.debug("the signed-in person could not be looked up for the error page", exc_info=True)
        g._login_user = AnonymousUserMixin()


def set_retry_after(response: R, error: RateLimited) -> R:
    """Status 429 and Retry-After in whole seconds until `error.retry_at` (at least 1)."""
    seconds = (error.retry_at - current_services().clock.now()).total_seconds()
    response.status_code = 429
    response.headers["Retry-After"] = str(max(1, math.ceil(seconds)))
    return response


def install_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApplianceError)
    def handle_appliance_error(error: ApplianceError) -> Response:
        status = status_for(error)
        if status >= 500:
            log.warning("%s: %s", error.code, error.detail, exc_info=error.__cause__ is not None)
        response = error_response(status, error.code, _title_for(status), error.public)
        if isinstance(error, RateLimited):
            set_retry_after(response, error)
        if isinstance(error, Unauthenticated) and wants_problem_json():
            # RFC 6750 section 3: the API takes bearer tokens
            response.headers["WWW-Authenticate"] = 'Bearer realm="appliance"'
        return response

    @app.errorhandler(CSRFError)
    def handle_csrf(error: CSRFError) -> Response:
        return error_response(
            403,
            "csrf_failed",
            _("Form expired"),
            _("This form has expired or did not come from this site. Reload the page and try again."),
        )

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeout)
    def handle_database_down(error: Exception) -> Response:
        # Refused or lost connections, a busy SQLite file, a full disk, a pool with no free
        # connection, a serialisation failure: worth a retry, so 503. The traceback goes to
        # the log (statement values are hidden by the engine) so a real bug is not lost.
        log.warning("database error while serving %s %s", request.method, request.path, exc_info=error)
        # the signed-in person cannot be looked up either: show the page as to a visitor
        g._login_user = AnonymousUserMixin()
        return error_response(
            503,
            "database_unavailable",
            _title_for(503),
            _("The database cannot be reached right now. Try again in a few minutes."),
        )

    @app.errorhandler(HTTPException)
    def handle_http(error: HTTPException) -> Response:
        status = error.code or 500
        response = error_response(status, f"http_{status}", _title_for(status), _detail_for(status))
        valid_methods = getattr(error, "valid_methods", None)
        if valid_methods:
            response.headers["Allow"] = ", ".join(valid_methods)
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> Response:
        log.exception("unexpected error while serving %s %s", request.method, request.path)
        return error_response(
            500,
            "internal_error",
            _("Something went wrong"),
            _("The appliance could not complete this request. The details are in its log."),
        )


def _title_for(status: int) -> str:
    titles = {
        400: _("Bad request"),
        401: _("Sign-in required"),
        403: _("Not allowed"),
        404: _("Not found"),
        405: _("Method not allowed"),
        409: _("Conflict"),
        413: _("Too large"),
        415: _("Unsupported media type"),
        429: _("Too many requests"),
        503: _("Temporarily unavailable"),
    }
    return titles.get(status, _("Request failed"))


def _detail_for(status: int) -> str:
    details = {
        400: _("The request was malformed. Check what was sent and try again."),
        404: _("There is nothing at this address. Check the link."),
        405: _("This address does not accept that kind of request."),
        413: _("The upload is larger than this appliance accepts. Send a smaller file."),
        415: _("The request body has a type this address does not accept."),
        429: _("Too many requests in a short time. Wait a moment and try again."),
    }
    return details.get(status, _("The request could not be completed."))
