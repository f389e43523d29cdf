"""Who may read /metrics: this host, the configured scrape networks, or a bearer token.

The allowed-networks guard runs first; inside those networks everyone else gets the same
404 as an address that does not exist, for every method, so a scan does not find it.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Flask, abort, request

from appliance.config import AppConfig
from appliance.web.proxy import PEER_KEY, IPNetwork, address_in, parse_networks

METRICS_PATH = "/metrics"
THIS_HOST = ("127.0.0.1/32", "::1/128")


def install_metrics_access(app: Flask, cfg: AppConfig) -> None:
    scrapers = parse_networks([*THIS_HOST, *cfg.metrics.allowed_networks])
    trusted_proxies = parse_networks(cfg.network.trusted_proxies)
    token = cfg.secrets.metrics_token
    # compared as digests: equal lengths, so compare_digest's time says nothing about the token
    expected = _digest(token.get_secret_value()) if token is not None else None

    @app.before_request
    def guard_metrics() -> None:
        if request.path != METRICS_PATH:
            return
        # the client address as the proxy middleware resolved it (trusted proxies only)
        if _address_is_known(trusted_proxies) and address_in(request.remote_addr or "", scrapers):
            return
        if expected is not None and hmac.compare_digest(_digest(_bearer_token()), expected):
            return
        abort(404)


def _address_is_known(trusted_proxies: tuple[IPNetwork, ...]) -> bool:
    """False when a peer that is not a trusted proxy forwards for someone else.

    An nginx missing from network.trusted_proxies would otherwise make every client it
    forwards look like this host (127.0.0.1).
    """
    if "X-Forwarded-For" not in request.headers:
        return True
    return address_in(request.environ.get(PEER_KEY, ""), trusted_proxies)


def _bearer_token() -> str:
    scheme, _sep, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()
