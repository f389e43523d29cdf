"""Shared fixtures: configs written to disk, databases (SQLite always, PostgreSQL when
APPLIANCE_TEST_PG_URL is set), a migrated app and its test client.

With APPLIANCE_REQUIRE_BACKENDS=1 (CI) a missing backend fails instead of skipping.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient

from appliance.config import AppConfig, load_config
from appliance.db import create_db_engine, migrate_database, scratch_schema
from appliance.web import create_app

pytest_plugins: list[str] = [
    "tests.fixtures.browser",
    "tests.fixtures.hsm",
    "tests.fixtures.pdfs",
    "tests.fixtures.ldap",
    "tests.fixtures.smtp",
    "tests.fixtures.webhooks",
]

PG_URL_ENV = "APPLIANCE_TEST_PG_URL"


def require_backend(name: str, available: bool, why: str) -> None:
    """Skip locally when a backend is missing; fail in CI, where every backend must be there."""
    if available:
        return
    if os.environ.get("APPLIANCE_REQUIRE_BACKENDS") == "1":
        pytest.fail(f"{name} is required in CI but {why}")
    pytest.skip(f"{name}: {why}")


def csrf_token_from(client: FlaskClient, path: str = "/") -> str:
    """The CSRF token of the form on the page at `path` (the session cookie stays in the client)."""
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert match, f"the page {path} has no CSRF token"
    return match.group(1)


ConfigFileFactory = Callable[..., Path]
ConfigFactory = Callable[..., tuple[Path, AppConfig]]


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/appliance.db"


@pytest.fixture
def config_file(tmp_path: Path, db_url: str) -> ConfigFileFactory:
    """Write a config (plus secret files): a valid base merged with overrides."""

    def factory(**overrides: Any) -> Path:
        secrets_dir = tmp_path / "secrets"
        secrets_dir.mkdir(exist_ok=True)
        session_secret = secrets_dir / "session-secret"
        if not session_secret.exists():
            session_secret.write_text(secrets.token_urlsafe(48))
        (tmp_path / "blobs").mkdir(exist_ok=True)
        raw: dict[str, Any] = {
            "private_cloud_address": "https://esign.test.example",
            "network": {"allowed_networks": ["127.0.0.0/8", "10.0.0.0/8"], "trusted_proxies": []},
            "database": {"url": db_url},
            "storage": {"path": str(tmp_path / "blobs")},
            "auth": {"session_secret_file": str(session_secret)},
        }
        raw = _merge(raw, overrides)
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path

    return factory


@pytest.fixture
def write_config(config_file: ConfigFileFactory) -> ConfigFactory:
    """Write a valid config merged with overrides; returns its path and the loaded config."""

    def factory(**overrides: Any) -> tuple[Path, AppConfig]:
        path = config_file(**overrides)
        return path, load_config(path, environ={})

    return factory


@pytest.fixture
def config(write_config: ConfigFactory) -> AppConfig:
    return write_config()[1]


@pytest.fixture
def app(config: AppConfig) -> Flask:
    """A migrated app; CSRF protection stays on (Flask-WTF does not relax it under TESTING)."""
    migrate_database(create_db_engine(config.database))
    app = create_app(config)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind; PostgreSQL gets a throwaway schema per test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/appliance.db"
        return
    base = os.environ.get(PG_URL_ENV)
    require_backend("PostgreSQL", bool(base), f"{PG_URL_ENV} is not set")
    assert base is not None
    with scratch_schema(base, "test") as url:
        yield url
