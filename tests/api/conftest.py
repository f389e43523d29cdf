"""The API on real backends: people from the test slapd, keys in SoftHSM2 under an
initialised PKI, verification codes mailed to a real SMTP server; on SQLite and PostgreSQL.

One environment per database and test process (the PKI's keys take seconds to make);
each test makes the contracts it needs, so tests do not see each other's work.
"""

from __future__ import annotations

import io
import os
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from appliance.config import load_config
from appliance.db import create_db_engine, migrate_database, scratch_schema, transaction
from appliance.pki.bootstrap import init_pki
from appliance.pki.ca import make_context
from appliance.services import Services, build_services
from appliance.web import create_app
from tests.conftest import PG_URL_ENV, require_backend
from tests.fixtures.hsm import SoftHsm, hsm_section
from tests.fixtures.ldap import OPENLDAP_ROLE_GROUPS, SERVICE_PASSWORD, Slapd, openldap_section
from tests.fixtures.pdfs import make_pdf
from tests.fixtures.smtp import SmtpServer

PEOPLE = ("alice", "bob", "dave")
"""alice: Finance, seal keeper and (here) org admin; bob: Sales, initiator; dave: Finance, auditor
and (here) archive admin."""
ORG_ADMINS = "cn=finance-signers,ou=groups,dc=example,dc=org"
ARCHIVISTS = "cn=auditors,ou=groups,dc=example,dc=org"
MAX_UPLOAD = 256 * 1024
"""uploads.max_bytes here: small, so the size limits are cheap to test."""
FIELD = {"page": 1, "x": 72, "y": 72, "width": 180, "height": 60}
"""A signature field that fits the test PDFs' A4 pages."""
PROBLEM = "application/problem+json"


def password_of(username: str) -> str:
    return f"{username}-Secret-1"


DirectoryPerson = Callable[..., tuple[str, str]]
"""`directory_person(prefix, phone=None)`: a new person's login name and name."""


@dataclass
class ApiEnv:
    app: Flask
    services: Services
    smtp: SmtpServer
    database: str
    tokens: dict[str, str]

    def client(self) -> FlaskClient:
        return self.app.test_client()

    def auth(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[username]}"}

    def create_contract(
        self,
        username: str = "bob",
        *,
        pdf: bytes | None = None,
        filename: str = "supply-agreement.pdf",
        headers: dict[str, str] | None = None,
        **fields: str,
    ) -> TestResponse:
        form: dict[str, Any] = {"title": "Supply agreement", "not_excluded": "true", **fields}
        form["file"] = (io.BytesIO(make_pdf() if pdf is None else pdf), filename, "application/pdf")
        return self.client().post(
            "/api/v1/contracts", data=form, headers={**self.auth(username), **(headers or {})}
        )

    def draft(self, username: str = "bob", party: str = "alice") -> dict[str, Any]:
        """A draft of `username` with `party` as its one party; the contract as JSON."""
        created = self.create_contract(username)
        assert created.status_code == 201, created.get_data(as_text=True)
        contract_id = created.get_json()["id"]
        added = self.client().post(
            f"/api/v1/contracts/{contract_id}/parties",
            json={"kind": "person", "username": party, "fields": [FIELD]},
            headers=self.auth(username),
        )
        assert added.status_code == 201, added.get_data(as_text=True)
        contract: dict[str, Any] = added.get_json()
        return contract

    def sent(self, username: str = "bob", party: str = "alice") -> dict[str, Any]:
        draft = self.draft(username, party)
        response = self.client().post(f"/api/v1/contracts/{draft['id']}/send", headers=self.auth(username))
        assert response.status_code == 200, response.get_data(as_text=True)
        contract: dict[str, Any] = response.get_json()
        return contract

    def consent(self, username: str, locale: str = "en") -> dict[str, str]:
        """Consent to the certificate agreement in `locale`, as a certificate request carries it."""
        agreement = (
            self.client()
            .get(
                "/api/v1/certificates/agreement", query_string={"locale": locale}, headers=self.auth(username)
            )
            .get_json()
        )
        return {
            "agreement_version": agreement["version"],
            "agreement_sha256": agreement["sha256"],
            "locale": agreement["locale"],
        }

    def new_seal(self) -> int:
        """A seal of Finance (alice's organisation) with its certificate, made by alice."""
        client, alice = self.client(), self.auth("alice")
        seal = client.post(
            "/api/v1/seals", json={"name": f"合同专用章 {secrets.token_hex(3)}"}, headers=alice
        )
        assert seal.status_code == 201, seal.get_data(as_text=True)
        seal_id: int = seal.get_json()["id"]
        certified = client.post(
            f"/api/v1/seals/{seal_id}/certificate", json=self.consent("alice"), headers=alice
        )
        assert certified.status_code == 201, certified.get_data(as_text=True)
        return seal_id

    def codes_mailed_to(self, address: str) -> list[str]:
        """The verification codes in the mails `address` received, oldest first."""
        codes = []
        for message in self.smtp.received:
            if message["To"] != address:
                continue
            body = message.get_body(preferencelist=("plain",))
            assert body is not None
            codes += re.findall(r"^\s+([0-9]{6,8})\s*$", body.get_content(), flags=re.MULTILINE)
        return codes


def assert_problem(response: TestResponse, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is an RFC 9457 problem with `status` (and `code`); its JSON."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM, response.get_data(as_text=True)
    problem: dict[str, Any] = response.get_json()
    assert problem["status"] == status
    assert problem["type"] == f"urn:appliance:problem:{problem['code']}"
    assert problem["detail"]
    if code is not None:
        assert problem["code"] == code, problem
    return problem


@pytest.fixture(scope="session")
def smtp_session() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def api_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty database of each kind for the session; PostgreSQL gets a throwaway schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('api-sqlite')}/appliance.db"
        return
    base = os.environ.get(PG_URL_ENV)
    require_backend("PostgreSQL", bool(base), f"{PG_URL_ENV} is not set")
    assert base is not None
    with scratch_schema(base, "test_api") as url:
        yield url


@pytest.fixture(scope="session")
def api_env(
    api_database: str,
    tmp_path_factory: pytest.TempPathFactory,
    slapd: Slapd,
    softhsm: SoftHsm,
    smtp_session: SmtpServer,
) -> Iterator[ApiEnv]:
    base = tmp_path_factory.mktemp("api")
    (base / "blobs").mkdir()
    session_secret, bind_password = base / "session-secret", base / "ldap-bind-password"
    session_secret.write_text(secrets.token_urlsafe(48))
    bind_password.write_text(SERVICE_PASSWORD)
    raw: dict[str, Any] = {
        "private_cloud_address": "http://127.0.0.1:9",
        "network": {"allowed_networks": ["127.0.0.0/8"], "trusted_proxies": []},
        "database": {"url": api_database},
        "storage": {"path": str(base / "blobs")},
        "auth": {"session_secret_file": str(session_secret)},
        "hsm": hsm_section(softhsm),
        "directory": openldap_section(
            slapd,
            bind_password_file=str(bind_password),
            role_groups={**OPENLDAP_ROLE_GROUPS, "org_admin": [ORG_ADMINS], "archive_admin": [ARCHIVISTS]},
        ),
        # the session's few people ask for codes from 127.0.0.1 far more often than staff
        # would; the throttle itself is tested in tests/workflow/test_codes.py
        "codes": {"per_signer_per_hour": 1000, "per_address_per_hour": 100_000},
        "mail": {
            "enabled": True,
            "host": "127.0.0.1",
            "port": smtp_session.port,
            "starttls": False,
            "from_address": "esign@example.org",
        },
        "uploads": {"max_bytes": MAX_UPLOAD},
        "mobile": {"wireguard_clients_dir": str(base / "wireguard-clients")},
        # the tests' webhook receivers listen on loopback
        "webhooks": {"allowed_hosts": ["127.0.0.0/8"], "allow_http": True},
    }
    (base / "wireguard-clients").mkdir()
    config_path = base / "config.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    cfg = load_config(config_path, environ={})
    migrate_database(create_db_engine(cfg.database))
    services = build_services(cfg)
    with transaction(services.sessions) as session:
        init_pki(session, make_context(services.custody, cfg, services.clock))
    app = create_app(cfg, services)
    app.config["TESTING"] = True
    env = ApiEnv(app, services, smtp_session, api_database.split(":", 1)[0].split("+")[0], {})
    for username in PEOPLE:
        response = env.client().post(
            "/api/v1/auth/tokens",
            json={"username": username, "password": password_of(username), "name": "API tests"},
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        env.tokens[username] = response.get_json()["token"]
    yield env
    services.engine.dispose()


@pytest.fixture
def directory_person(api_env: ApiEnv, slapd: Slapd) -> Iterator[DirectoryPerson]:
    """People added to the directory (Sales) for one test, with `password_of` passwords; the
    directory is the session's, so each gets a login name of its own and is removed after."""
    added: list[str] = []

    def add(prefix: str, phone: str | None = None) -> tuple[str, str]:
        uid = f"{prefix}{api_env.database}{len(added)}{secrets.token_hex(2)}"
        name = f"Leona Vermeer {uid[-4:]}"
        dn = f"uid={uid},ou=Sales,ou=people,dc=example,dc=org"
        slapd.ldap_cli(
            "ldapadd",
            f"dn: {dn}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {name}\nsn: Vermeer\n"
            f"mail: {uid}@example.org\nuserPassword: {password_of(uid)}\n"
            + (f"telephoneNumber: {phone}\n" if phone else ""),
        )
        added.append(dn)
        return uid, name

    yield add
    for dn in added:
        slapd.ldap_cli("ldapdelete", f"{dn}\n")
