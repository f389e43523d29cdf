"""REST API v1: JSON in and out, bearer tokens, errors as application/problem+json.

`bp` answers without a token (what this appliance is, and the OpenAPI document); the
contract, certificate and authenticator blueprints take bearer tokens only, which is why
all of these are exempt from CSRF.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from appliance import __version__
from appliance.web.api import (
    approvals,
    authenticator,
    cancellation,
    certificates,
    contracts,
    personal,
    seals,
    templates,
    webhooks,
)
from appliance.web.api.models import ServiceInfo
from appliance.web.api.spec import PUBLIC, openapi_document, responses, spec
from appliance.web.context import current_services

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.get("/")
@spec.validate(
    resp=responses(200, ServiceInfo, public=True),
    security=PUBLIC,
    tags=["service"],
    operation_id="service_info",
)
def service_info() -> ServiceInfo:
    """What this appliance is (no token needed)"""
    cfg = current_services().config
    return ServiceInfo(
        service="esign-appliance", version=__version__, private_cloud_address=cfg.private_cloud_address
    )


@bp.get("/openapi.json")
def openapi() -> Response:
    """This API's OpenAPI 3.1 document."""
    return jsonify(openapi_document())


BLUEPRINTS: tuple[Blueprint, ...] = (
    bp,
    contracts.bp,
    certificates.bp,
    authenticator.bp,
    personal.bp,
    cancellation.bp,
    approvals.bp,
    seals.bp,
    templates.bp,
    webhooks.bp,
)
"""Register each and exempt each from CSRF (Flask-WTF looks at the request's own blueprint)."""
