"""A signed-in browser session without a directory: the break-glass local administrator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from appliance.cli import main
from appliance.db import create_db_engine, migrate_database
from appliance.web import create_app
from tests.conftest import ConfigFactory

ADMIN = "root-admin"
ADMIN_PASSWORD = "Break-Glass-2026-xyz"


@pytest.fixture
def admin_app(write_config: ConfigFactory) -> Flask:
    """A migrated app whose database holds the local administrator ADMIN."""
    path, cfg = write_config()
    migrate_database(create_db_engine(cfg.database))
    create_local_admin(path)
    app = create_app(cfg)
    app.config["TESTING"] = True
    return app


def create_local_admin(config_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["--config", str(config_path), "admin", "create", ADMIN, "--password-stdin"],
        input=ADMIN_PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path, follow_redirects=True).get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def sign_in(client: FlaskClient) -> None:
    response = client.post(
        "/login", data={"username": ADMIN, "password": ADMIN_PASSWORD, "csrf_token": csrf_token(client)}
    )
    assert response.status_code == 303, response.get_data(as_text=True)


def create_token(client: FlaskClient, name: str) -> None:
    response = client.post(
        "/account/tokens",
        data={"name": name, "password": ADMIN_PASSWORD, "csrf_token": csrf_token(client, "/account")},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
