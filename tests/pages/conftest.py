"""The contract pages on the API tests' real backends (slapd people, SoftHSM2 with the PKI, the
SMTP test server; SQLite and PostgreSQL): people sign in through the real login form, and the
contracts they act on are set up through the REST API.

The environment is the API tests' one (one per database and test process); each test makes
the contracts it needs. Who is who (tests/fixtures/ldap/openldap.ldif): bob (Sales) starts
contracts; alice (Finance) signs and keeps the Finance seals; dave (Finance, auditor and archive
admin) signs and cannot see Sales contracts he is no party to until they are archived.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from appliance.db import transaction
from appliance.models import Certificate, CertificateKind, CertificateStatus, User
from appliance.models.enums import RevocationReason
from appliance.pki.ca import make_context
from appliance.pki.revoke import revoke_certificate
from tests.api.conftest import (
    FIELD,
    ApiEnv,
    api_database,
    api_env,
    directory_person,
    password_of,
    smtp_session,
)
from tests.fixtures.pdfs import make_pdf

__all__ = [
    "api_database",
    "api_env",
    "directory_person",
    "smtp_session",
]  # the API tests' fixtures, used here too

EMAILS = {"alice": "alice@example.org", "bob": "bob@example.org", "dave": "dave@example.org"}


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


@dataclass
class PagesEnv:
    api: ApiEnv
    made: list[int] = field(default_factory=list)
    """Contracts `contract` made in this test: withdrawn after it, as the database is the session's."""

    def browser(self, username: str, language: str = "en") -> FlaskClient:
        """A test client signed in as `username` through the sign-in form."""
        client = self.api.client()
        client.environ_base["HTTP_ACCEPT_LANGUAGE"] = language
        token = csrf_of(client.get("/login").get_data(as_text=True))
        response = client.post(
            "/login", data={"username": username, "password": password_of(username), "csrf_token": token}
        )
        assert response.status_code == 303, response.get_data(as_text=True)
        accept_privacy_notice(client)
        return client

    def contract(
        self, parties: list[tuple[str, int]], *, title: str = "Supply agreement", send: bool = True
    ) -> dict[str, Any]:
        """A contract of bob's with (username or "seal:<id>", routing order) parties, as JSON."""
        created = self.api.create_contract("bob", pdf=make_pdf(pages=2), title=title)
        assert created.status_code == 201, created.get_data(as_text=True)
        contract: dict[str, Any] = created.get_json()
        self.made.append(contract["id"])
        for who, order in parties:
            party: dict[str, Any] = {"fields": [FIELD], "routing_order": order}
            if who.startswith("seal:"):
                party |= {"kind": "seal", "seal_id": int(who.split(":", 1)[1])}
            else:
                party |= {"kind": "person", "username": who}
            added = self.api.client().post(
                f"/api/v1/contracts/{contract['id']}/parties", json=party, headers=self.api.auth("bob")
            )
            assert added.status_code == 201, added.get_data(as_text=True)
            contract = added.get_json()
        if send:
            sent = self.api.client().post(
                f"/api/v1/contracts/{contract['id']}/send", headers=self.api.auth("bob")
            )
            assert sent.status_code == 200, sent.get_data(as_text=True)
            contract = sent.get_json()
        return contract

    def without_certificate(self, username: str) -> None:
        """Revoke `username`'s personal certificates, if any: they need a new one to sign."""
        services = self.api.services
        ctx = make_context(services.custody, services.config, services.clock)
        with transaction(services.sessions) as session:
            user_id = session.scalars(select(User.id).where(User.username == username)).one_or_none()
            for row in session.scalars(
                select(Certificate).where(
                    Certificate.user_id == user_id,
                    Certificate.kind == CertificateKind.PERSON,
                    Certificate.status == CertificateStatus.ACTIVE,
                )
            ):
                revoke_certificate(session, ctx, row.id, RevocationReason.CESSATION_OF_OPERATION)

    def ensure_certificate(self, username: str) -> None:
        """Give `username` a personal certificate through the API, unless they have one."""
        mine = self.api.client().get("/api/v1/certificates/mine", headers=self.api.auth(username))
        if mine.get_json()["certificate"] is None:
            applied = self.api.client().post(
                "/api/v1/certificates/mine", json=self.consent(username), headers=self.api.auth(username)
            )
            assert applied.status_code == 201, applied.get_data(as_text=True)

    def consent(self, username: str) -> dict[str, str]:
        return self.api.consent(username)

    def new_seal(self) -> int:
        """A certified seal of alice's organisation (Finance), which alice keeps."""
        return self.api.new_seal()

    def last_code(self, username: str) -> str:
        codes = self.api.codes_mailed_to(EMAILS[username])
        assert codes, f"no code was mailed to {username}"
        return codes[-1]


def accept_privacy_notice(client: FlaskClient) -> None:
    """Accept the privacy notice, as a person does once at their first sign-in."""
    page = client.get("/privacy").get_data(as_text=True)
    if 'id="privacy-form"' not in page:
        return  # accepted at an earlier sign-in
    form = page.split('id="privacy-form"', 1)[1].split("</form>", 1)[0]
    fields = dict(re.findall(r'name="(version|sha256|locale)"[^>]*value="([^"]+)"', form))
    accepted = client.post("/privacy/accept", data={**fields, "agree": "y", "csrf_token": csrf_of(page)})
    assert accepted.status_code == 303, accepted.get_data(as_text=True)


def post_form(client: FlaskClient, page_path: str, action: str, **fields: str) -> TestResponse:
    """Submit a form of the page at `page_path` to `action`, with that page's CSRF token."""
    token = csrf_of(client.get(page_path).get_data(as_text=True))
    return client.post(action, data={**fields, "csrf_token": token})


@pytest.fixture
def pages(api_env: ApiEnv) -> Iterator[PagesEnv]:
    env = PagesEnv(api_env)
    yield env
    # the to-do lists show the first 20 by deadline: what a test left open would crowd out the
    # next test's contracts; a contract no longer out for signing answers 409 and stays
    for contract_id in env.made:
        api_env.client().post(
            f"/api/v1/contracts/{contract_id}/withdraw",
            json={"reason": "test over"},
            headers=api_env.auth("bob"),
        )
