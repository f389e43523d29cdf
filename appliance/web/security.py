"""The intranet guard and the security headers every response carries."""

from __future__ import annotations

from flask import Flask, request
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from appliance.config import AppConfig
from appliance.errors import Forbidden, InvalidInput
from appliance.web.proxy import FORWARDING_ERROR_KEY, address_in, parse_networks

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class OutsideNetwork(Forbidden):
    code = "outside_network"


def install_security(app: Flask, cfg: AppConfig) -> None:
    allowed = parse_networks(cfg.network.allowed_networks)
    hsts = cfg.server.tls

    @app.before_request
    def guard_network() -> None:
        problem = request.environ.get(FORWARDING_ERROR_KEY)
        if problem:
            raise InvalidInput(_("Bad forwarding header from the proxy: %(problem)s.", problem=problem))
        client = request.remote_addr or ""
        if not address_in(client, allowed):
            raise OutsideNetwork(
                _(
                    "This appliance only answers the company network (intranet or VPN). "
                    "Your address %(address)s is outside the allowed networks: connect to the "
                    "corporate VPN, or ask IT to add your network to allowed_networks.",
                    address=client,
                )
            )

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if not request.path.startswith("/static/"):
            headers.setdefault("Cache-Control", "no-store")
        if hsts:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response
