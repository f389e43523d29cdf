"""An app wired to the test slapd, with a clock the tests can move."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from appliance.config import AppConfig
from appliance.db import create_db_engine, migrate_database
from appliance.models import AuditEvent
from appliance.services import Services, build_services
from appliance.web import create_app
from tests.conftest import ConfigFactory
from tests.fakes.clock import FakeClock
from tests.fixtures.ldap import SERVICE_PASSWORD, Slapd, ad_section, openldap_section


@dataclass
class LdapApp:
    app: Flask
    services: Services
    clock: FakeClock
    config_path: Path

    def client(self) -> FlaskClient:
        return self.app.test_client()

    def audit(self, action: str | None = None) -> list[AuditEvent]:
        with self.services.sessions() as session:
            query = select(AuditEvent).order_by(AuditEvent.seq)
            if action:
                query = query.where(AuditEvent.action == action)
            return list(session.execute(query).scalars())


LdapAppFactory = Callable[..., LdapApp]


@pytest.fixture
def ldap_app(write_config: ConfigFactory, slapd: Slapd, tmp_path: Path) -> LdapAppFactory:
    def factory(directory: dict[str, Any] | None = None, ad: bool = False, **overrides: Any) -> LdapApp:
        secret = tmp_path / "secrets" / "ldap-bind-password"
        secret.parent.mkdir(exist_ok=True)
        secret.write_text(SERVICE_PASSWORD)
        shape = ad_section if ad else openldap_section
        section = shape(slapd, bind_password_file=str(secret), **(directory or {}))
        path, cfg = write_config(directory=section, **overrides)
        return build_ldap_app(cfg, path)

    return factory


def build_ldap_app(cfg: AppConfig, path: Path) -> LdapApp:
    migrate_database(create_db_engine(cfg.database))
    clock = FakeClock()
    services = build_services(cfg, clock=clock)
    app = create_app(cfg, services)
    return LdapApp(app, services, clock, path)


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path, follow_redirects=True).get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def post_login(client: FlaskClient, username: str, password: str, **environ: str) -> Any:
    token = csrf_token(client)
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        environ_overrides=environ or None,
    )
