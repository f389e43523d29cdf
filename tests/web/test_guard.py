"""The intranet guard: outside addresses get 403; forwarded headers count only from trusted proxies."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from appliance.config import AppConfig
from appliance.db import create_db_engine, migrate_database
from appliance.web import create_app
from appliance.web.proxy import PEER_KEY, TrustedProxyMiddleware, parse_networks
from tests.conftest import ConfigFactory


def _client(write_config: ConfigFactory, **network: object) -> FlaskClient:
    _, cfg = write_config(network=network)
    migrate_database(create_db_engine(cfg.database))
    return create_app(cfg).test_client()


def _get(client: FlaskClient, peer: str, path: str = "/", **headers: str):  # type: ignore[no-untyped-def]
    return client.get(path, environ_overrides={"REMOTE_ADDR": peer}, headers=headers)


def test_inside_address_is_served(client: FlaskClient) -> None:
    assert _get(client, "10.1.2.3").status_code == 200


def test_outside_address_gets_a_plain_403_page(client: FlaskClient) -> None:
    response = _get(client, "203.0.113.9")
    assert response.status_code == 403
    body = response.get_data(as_text=True)
    assert "203.0.113.9" in body and "VPN" in body
    assert response.mimetype == "text/html"


def test_outside_address_gets_problem_json_on_the_api(client: FlaskClient) -> None:
    response = _get(client, "203.0.113.9", "/api/v1/")
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["status"] == 403 and problem["type"].endswith(":outside_network")
    assert "203.0.113.9" in problem["detail"]


def test_guard_covers_health_and_unknown_paths(client: FlaskClient) -> None:
    for path in ("/healthz", "/metrics", "/no/such/page", "/static/app.css"):
        assert _get(client, "198.51.100.7", path).status_code == 403, path


def test_spoofed_forwarded_for_from_untrusted_peer_is_ignored(client: FlaskClient) -> None:
    # No trusted proxies configured: the header must not turn an outsider into an insider.
    assert _get(client, "203.0.113.9", X_Forwarded_For="10.0.0.5").status_code == 403


def test_trusted_proxy_forwards_the_client_address(write_config: ConfigFactory) -> None:
    client = _client(write_config, allowed_networks=["10.0.0.0/8"], trusted_proxies=["192.0.2.10/32"])
    assert _get(client, "192.0.2.10", X_Forwarded_For="10.9.9.9").status_code == 200
    refused = _get(client, "192.0.2.10", "/api/v1/", X_Forwarded_For="203.0.113.50")
    assert refused.status_code == 403 and "203.0.113.50" in refused.get_json()["detail"]
    # A client-supplied first hop cannot be smuggled in front of the real one.
    smuggled = _get(client, "192.0.2.10", X_Forwarded_For="10.0.0.1, 203.0.113.50")
    assert smuggled.status_code == 403


def test_proxy_itself_outside_allowed_without_header_is_refused(write_config: ConfigFactory) -> None:
    client = _client(write_config, allowed_networks=["10.0.0.0/8"], trusted_proxies=["192.0.2.10/32"])
    assert _get(client, "192.0.2.10").status_code == 403


def test_malformed_forwarded_for_from_trusted_proxy_is_a_400(write_config: ConfigFactory) -> None:
    client = _client(write_config, allowed_networks=["10.0.0.0/8"], trusted_proxies=["192.0.2.10/32"])
    response = _get(client, "192.0.2.10", "/api/v1/", X_Forwarded_For="10.0.0.1, not-an-ip")
    assert response.status_code == 400
    assert "X-Forwarded-For" in response.get_json()["detail"]


def _seen_by_app(peer: str, **headers: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def inner(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ)
        return []

    middleware = TrustedProxyMiddleware(inner, parse_networks(["192.0.2.10/32", "192.0.2.11/32"]))
    environ = {"REMOTE_ADDR": peer, "wsgi.url_scheme": "http"}
    environ.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
    middleware(environ, lambda *a: None)
    return seen


def test_forwarded_proto_and_address_only_from_trusted_proxies() -> None:
    trusted = _seen_by_app("192.0.2.10", x_forwarded_for="10.0.0.2", x_forwarded_proto="https")
    assert trusted["REMOTE_ADDR"] == "10.0.0.2" and trusted["wsgi.url_scheme"] == "https"
    assert trusted[PEER_KEY] == "192.0.2.10"
    untrusted = _seen_by_app("10.0.0.7", x_forwarded_for="10.0.0.2", x_forwarded_proto="https")
    assert untrusted["REMOTE_ADDR"] == "10.0.0.7" and untrusted["wsgi.url_scheme"] == "http"


def test_chain_of_trusted_proxies_is_walked_from_the_right() -> None:
    seen = _seen_by_app("192.0.2.10", x_forwarded_for="203.0.113.1, 10.0.0.2, 192.0.2.11")
    assert seen["REMOTE_ADDR"] == "10.0.0.2"


def test_ipv4_mapped_ipv6_peer_is_matched(config: AppConfig, client: FlaskClient) -> None:
    assert _get(client, "::ffff:10.1.1.1").status_code == 200
