"""/metrics: one charset in its Content-Type; only this host, the configured scrape networks or
the bearer token may read it, everyone else gets the 404 of an address that does not exist."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client import CONTENT_TYPE_LATEST

from appliance.config import load_config
from appliance.db import create_db_engine, migrate_database
from appliance.errors import ConfigError
from appliance.web import create_app
from tests.conftest import ConfigFactory, ConfigFileFactory

INSIDE = "10.1.2.3"  # inside network.allowed_networks, not a scrape address
SCRAPER = "10.20.1.1"


def _client(write_config: ConfigFactory, **overrides: Any) -> FlaskClient:
    _, cfg = write_config(**overrides)
    migrate_database(create_db_engine(cfg.database))
    return create_app(cfg).test_client()


def _get(client: FlaskClient, peer: str, path: str = "/metrics", **headers: str) -> Any:
    return client.get(path, environ_overrides={"REMOTE_ADDR": peer}, headers=headers)


def _page(response: Any) -> str:
    # the language form's CSRF token differs per session; everything else must be the same
    return re.sub(r'name="csrf_token" value="[^"]+"', "", response.get_data(as_text=True))


def test_content_type_is_prometheus_latest_with_one_charset(client: FlaskClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
    assert response.headers["Content-Type"].count("charset") == 1


def test_only_this_host_by_default(write_config: ConfigFactory) -> None:
    client = _client(write_config, network={"allowed_networks": ["127.0.0.0/8", "::1/128", "10.0.0.0/8"]})
    assert _get(client, "127.0.0.1").status_code == 200
    assert _get(client, "::1").status_code == 200
    refused = _get(client, INSIDE)
    assert refused.status_code == 404
    assert "appliance_http_requests_total" not in refused.get_data(as_text=True)


def test_refusal_looks_like_an_address_that_does_not_exist(client: FlaskClient) -> None:
    refused, unknown = _get(client, INSIDE), _get(client, INSIDE, "/no-such-page")
    assert refused.status_code == unknown.status_code == 404
    assert _page(refused) == _page(unknown)
    assert refused.headers.get("WWW-Authenticate") is None
    # other methods do not give it away with a 405 either
    for method in ("POST", "PUT", "DELETE"):
        response = client.open("/metrics", method=method, environ_overrides={"REMOTE_ADDR": INSIDE})
        assert response.status_code == 404, method


def test_configured_scrape_networks(write_config: ConfigFactory) -> None:
    client = _client(write_config, metrics={"allowed_networks": ["10.20.0.0/16"]})
    assert _get(client, SCRAPER).status_code == 200
    assert _get(client, "127.0.0.1").status_code == 200
    assert _get(client, INSIDE).status_code == 404


def test_the_guard_still_comes_first(write_config: ConfigFactory) -> None:
    # a scrape network outside network.allowed_networks is refused by the intranet guard
    client = _client(write_config, metrics={"allowed_networks": ["192.0.2.0/24"]})
    assert _get(client, "192.0.2.7").status_code == 403


def test_bearer_token_from_a_secret_file(write_config: ConfigFactory, tmp_path: Path) -> None:
    token = secrets.token_urlsafe(32)
    token_file = tmp_path / "metrics-token"
    token_file.write_text(token + "\n")
    client = _client(write_config, metrics={"token_file": str(token_file)})
    assert _get(client, INSIDE, Authorization=f"Bearer {token}").status_code == 200
    assert _get(client, INSIDE, Authorization=f"bearer {token}").status_code == 200
    assert _get(client, INSIDE, Authorization=f"Bearer {token[:-1]}x").status_code == 404
    assert _get(client, INSIDE, Authorization=f"Basic {token}").status_code == 404
    assert _get(client, INSIDE, Authorization="Bearer ").status_code == 404
    assert _get(client, INSIDE).status_code == 404


def test_forwarded_clients_are_judged_by_their_own_address(write_config: ConfigFactory) -> None:
    client = _client(
        write_config,
        network={"allowed_networks": ["10.0.0.0/8", "127.0.0.0/8"], "trusted_proxies": ["127.0.0.1/32"]},
        metrics={"allowed_networks": ["10.20.0.0/16"]},
    )
    # nginx on this host forwards: the client's address counts, not nginx's
    assert _get(client, "127.0.0.1", X_Forwarded_For=INSIDE).status_code == 404
    assert _get(client, "127.0.0.1", X_Forwarded_For=SCRAPER).status_code == 200
    assert _get(client, "127.0.0.1").status_code == 200


def test_an_untrusted_forwarding_peer_is_not_taken_for_this_host(client: FlaskClient) -> None:
    # a proxy on this host missing from trusted_proxies: its clients must not look like 127.0.0.1
    assert _get(client, "127.0.0.1", X_Forwarded_For=INSIDE).status_code == 404


def test_readyz_still_answers_the_allowed_networks_with_status_words(client: FlaskClient) -> None:
    response = _get(client, INSIDE, "/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"status", "checks"}
    assert {check["status"] for check in body["checks"].values()} == {"ok"}
    assert all(set(check) == {"status"} for check in body["checks"].values())


def test_token_settings_are_validated(config_file: ConfigFileFactory, tmp_path: Path) -> None:
    short = tmp_path / "short-token"
    short.write_text("too-short")
    with pytest.raises(ConfigError) as caught:
        load_config(config_file(metrics={"token_file": str(short)}), environ={})
    assert caught.value.problems == ["metrics.token_file: the metrics token must be at least 32 characters"]
    with pytest.raises(ConfigError) as caught:
        load_config(config_file(metrics={"token_file": str(tmp_path / "missing")}), environ={})
    assert caught.value.problems == [f"metrics.token_file: file {tmp_path / 'missing'} does not exist"]
    with pytest.raises(ConfigError) as caught:
        load_config(config_file(metrics={"allowed_networks": ["prometheus"]}), environ={})
    assert caught.value.problems[0].startswith("metrics.allowed_networks.0: not an IP network")
    from_env = load_config(config_file(), environ={"APPLIANCE_METRICS_TOKEN": "e" * 32})
    assert from_env.secrets.metrics_token is not None
    assert from_env.secrets.metrics_token.get_secret_value() == "e" * 32
    assert load_config(config_file(), environ={}).secrets.metrics_token is None
