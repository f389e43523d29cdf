"""A contract workflow on real parts: SoftHSM2 with the appliance PKI, SQLite or PostgreSQL,
a blob store on disk, and a real SMTP server on 127.0.0.1 that receives the verification codes."""

from __future__ import annotations

import io
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.auth.records import ClientInfo, Principal
from appliance.clock import Clock
from appliance.config import load_config
from appliance.db import create_db_engine, migrate_database
from appliance.models import Organisation, PartyKind, Role, Routing, User, UserGroup, UserRole, UserSource
from appliance.pki.bootstrap import init_pki
from appliance.pki.ca import make_context
from appliance.services import Services, build_services
from appliance.workflow import certificates, drafts, seals, signatures
from appliance.workflow.drafts import NewContract, NewField, NewParty
from appliance.workflow.views import ContractView
from tests.fixtures.hsm import SoftHsm, hsm_section
from tests.fixtures.pdfs import make_pdf, make_png
from tests.fixtures.smtp import SmtpServer

CLIENT = ClientInfo(address="10.1.2.3", user_agent="pytest workflow")
FIELD = NewField(page=1, x=72, y=72, width=180, height=60)


@dataclass
class WorkflowEnv:
    services: Services
    smtp: SmtpServer
    base: Path
    people: dict[str, Principal] = field(default_factory=dict)
    seal_id: int = 0

    @property
    def ctx(self) -> Any:
        return self.services.workflow

    def add_person(
        self, username: str, name: str, *roles: Role, organisation_id: int | None = None
    ) -> Principal:
        now = datetime.now(UTC)
        with self.services.sessions.begin() as session:
            user = User(
                username=username,
                source=UserSource.DIRECTORY,
                directory_dn=f"uid={username},ou=people,dc=example,dc=com",
                display_name=name,
                email=f"{username}@example.com",
                organisation_id=organisation_id,
                active=True,
                created_at=now,
                updated_at=now,
                roles=[UserRole(role=r) for r in {Role.EMPLOYEE, *roles}],
            )
            session.add(user)
            session.flush()
            principal = Principal(user.id, username, name, frozenset({Role.EMPLOYEE, *roles}), False)
        self.people[username] = principal
        return principal

    def in_group(self, who: str, dn: str) -> None:
        """What a sign-in records of a person's directory groups (auth.provisioning): `dn` normalised."""
        with self.services.sessions.begin() as session:
            session.add(UserGroup(user_id=self.people[who].user_id, group_dn=dn))

    def give_certificate(self, who: Principal) -> None:
        agreement = certificates.certificate_agreement("en")
        certificates.apply_personal_certificate(
            self.ctx, who, CLIENT, certificates.Consent(agreement.version, agreement.sha256, agreement.locale)
        )

    def start(
        self,
        parties: list[tuple[str, int]],
        *,
        routing: Routing = Routing.SEQUENTIAL,
        pdf: bytes | None = None,
        send: bool = True,
    ) -> ContractView:
        """A contract by `initiator` with (username or "seal", routing order) parties, sent."""
        initiator = self.people["initiator"]
        view = drafts.create_contract(
            self.ctx,
            initiator,
            CLIENT,
            NewContract(
                title="供货合同 Supply contract", filename="supply.pdf", not_excluded=True, routing=routing
            ),
            io.BytesIO(pdf or make_pdf(pages=2)),
        )
        for who, order in parties:
            spec = (
                NewParty(PartyKind.SEAL, (FIELD,), seal_id=self.seal_id, routing_order=order)
                if who == "seal"
                else NewParty(PartyKind.PERSON, (FIELD,), username=who, routing_order=order)
            )
            view = drafts.add_party(self.ctx, initiator, CLIENT, view.id, spec)
        if send:
            view = drafts.send_contract(self.ctx, initiator, CLIENT, view.id)
        return view

    def code_for(self, who: Principal, contract_id: int, party_id: int) -> str:
        before = len(self.smtp.received)
        signatures.request_code(self.ctx, who, CLIENT, contract_id, party_id)
        assert len(self.smtp.received) == before + 1
        body = self.smtp.received[-1].get_content()
        found = re.search(r"^\s+(\d{6,8})\s*$", body, re.M)
        assert found, body
        return found.group(1)

    def sign(self, who: str, contract_id: int, party_id: int) -> ContractView:
        principal = self.people[who]
        code = self.code_for(principal, contract_id, party_id)
        return signatures.sign_party(self.ctx, principal, CLIENT, contract_id, party_id, code)


def party_id(view: ContractView, name: str) -> int:
    return next(p.id for p in view.parties if p.name == name)


@pytest.fixture
def workflow_factory(
    tmp_path: Path, softhsm: SoftHsm, custody: Any, smtp_server: SmtpServer
) -> Iterator[Callable[..., WorkflowEnv]]:
    built: list[Services] = []

    def build(db_url: str | None = None, clock: Clock | None = None, **overrides: Any) -> WorkflowEnv:
        """`clock`: the services' clock from the start (the PKI too); the real time by default."""
        base = tmp_path / f"wf-{len(built)}"
        (base / "blobs").mkdir(parents=True)
        secret = base / "session-secret"
        secret.write_text(secrets.token_urlsafe(48))
        raw: dict[str, Any] = {
            "private_cloud_address": "https://esign.corp.example",
            "network": {"allowed_networks": ["127.0.0.0/8"]},
            "database": {"url": db_url or f"sqlite:///{base}/appliance.db"},
            "storage": {"path": str(base / "blobs")},
            "auth": {"session_secret_file": str(secret)},
            "hsm": hsm_section(softhsm),
            "mail": {"enabled": True, "host": "127.0.0.1", "port": smtp_server.port, "starttls": False},
            **overrides,
        }
        (base / "config.yaml").write_text(yaml.safe_dump(raw))
        config = load_config(base / "config.yaml", environ={})
        migrate_database(create_db_engine(config.database))
        services = build_services(config, clock=clock)
        built.append(services)
        with services.sessions.begin() as session:
            init_pki(session, make_context(services.custody, config, services.clock))
            org = Organisation(name="北京示例科技有限公司", code="example", created_at=datetime.now(UTC))
            session.add(org)
            session.flush()
            org_id = org.id
        env = WorkflowEnv(services=services, smtp=smtp_server, base=base)
        env.add_person("initiator", "Wang Wu", Role.INITIATOR, organisation_id=org_id)
        env.add_person("alice", "张伟", organisation_id=org_id)
        env.add_person("bob", "Bob Builder", organisation_id=org_id)
        env.add_person("keeper", "Seal Keeper", Role.SEAL_KEEPER, organisation_id=org_id)
        admin = env.add_person("orgadmin", "Org Admin", Role.ORG_ADMIN, organisation_id=org_id)
        env.add_person("mallory", "Mallory", organisation_id=None)
        env.seal_id = seals.create_seal(env.ctx, admin, CLIENT, "合同专用章", make_png(200, 200))
        agreement = certificates.certificate_agreement("zh_Hans_CN")
        seals.apply_seal_certificate(
            env.ctx,
            admin,
            CLIENT,
            env.seal_id,
            certificates.Consent(agreement.version, agreement.sha256, agreement.locale),
        )
        for who in ("alice", "bob"):
            env.give_certificate(env.people[who])
        return env

    yield build
    for services in built:
        services.engine.dispose()
