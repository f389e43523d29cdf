"""REST API v1: JSON in and out, errors as application/problem+json."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from appliance import __version__
from appliance.web.context import current_services

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.get("/")
def service_info() -> Response:
    cfg = current_services().config
    return jsonify(
        {
            "service": "esign-appliance",
            "version": __version__,
            "private_cloud_address": cfg.private_cloud_address,
        }
    )
