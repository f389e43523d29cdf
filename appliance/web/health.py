"""/healthz (the process answers), /readyz (its dependencies answer), /metrics."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify

from appliance import __version__
from appliance.errors import Unavailable
from appliance.web.context import current_services
from appliance.web.errors import RETRY_AFTER_SECONDS
from appliance.web.metrics import render_metrics

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok", "version": __version__})


@bp.get("/readyz")
def readyz() -> Response:
    # Status words only: what is wrong (paths, hosts, token labels) goes to the log and to
    # the operator's CLI (`appliance hsm status`, `appliance directory check`).
    checks: dict[str, dict[str, str]] = {}
    for readiness in current_services().readiness:
        try:
            readiness.check()
        except Unavailable as exc:
            log.warning("readiness check %s failed: %s", readiness.name, exc.detail)
            checks[readiness.name] = {"status": "unavailable"}
        else:
            checks[readiness.name] = {"status": "ok"}
    ready = all(c["status"] == "ok" for c in checks.values())
    response = jsonify({"status": "ready" if ready else "not ready", "checks": checks})
    if not ready:
        response.status_code = 503
        response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response


@bp.get("/metrics")
def metrics() -> Response:
    return render_metrics()
