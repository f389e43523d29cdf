"""Migrations on SQLite and PostgreSQL, model round-trips, and the un-migrated refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from appliance.audit import AuditRecord, append_event, verify_chain
from appliance.config import DatabaseConfig
from appliance.db import (
    create_db_engine,
    create_session_factory,
    ensure_migrated,
    head_revision,
    migrate_database,
)
from appliance.errors import NotMigrated
from appliance.models import (
    Base,
    Certificate,
    CertificateKind,
    Contract,
    ContractState,
    DocumentVersion,
    HsmKey,
    KeyPurpose,
    Organisation,
    Party,
    PartyKind,
    PartyStatus,
    Role,
    Routing,
    SignatureField,
    User,
    UserRole,
    UserSource,
)

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_unmigrated_database_is_refused(any_db_url: str) -> None:
    engine = create_db_engine(DatabaseConfig(url=any_db_url))
    with pytest.raises(NotMigrated, match="run `appliance migrate` first"):
        ensure_migrated(engine)


def test_migrations_match_the_models(any_db_url: str) -> None:
    engine = create_db_engine(DatabaseConfig(url=any_db_url))
    assert migrate_database(engine) == head_revision()
    ensure_migrated(engine)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    assert migrate_database(engine) == head_revision()  # a second run is a no-op


def test_models_round_trip(any_db_url: str) -> None:
    engine = create_db_engine(DatabaseConfig(url=any_db_url))
    migrate_database(engine)
    sessions = create_session_factory(engine)
    with sessions.begin() as session:
        org = Organisation(name="Example Corp", code="example", created_at=NOW)
        dept = Organisation(name="Legal", code="example/legal", parent=org, created_at=NOW)
        alice = User(
            username="alice",
            source=UserSource.DIRECTORY,
            directory_dn="uid=alice,ou=people,dc=example",
            display_name="Alice Zhang",
            email="alice@example.test",
            organisation=dept,
            created_at=NOW,
            updated_at=NOW,
            roles=[UserRole(role=Role.INITIATOR), UserRole(role=Role.EMPLOYEE)],
        )
        key = HsmKey(
            label="person-alice-1",
            key_id="a1",
            algorithm="rsa2048",
            purpose=KeyPurpose.PERSON,
            public_key_der=b"\x30\x00",
            created_at=NOW,
        )
        session.add_all([alice, key])
        session.flush()
        cert = Certificate(
            serial="01",
            kind=CertificateKind.PERSON,
            subject="CN=Alice Zhang",
            key_id=key.id,
            user_id=alice.id,
            not_before=NOW,
            not_after=NOW + timedelta(days=730),
            der=b"\x30\x00",
            sha256_fingerprint="f" * 64,
            created_at=NOW,
        )
        contract = Contract(
            title="NDA 合同",
            initiator_id=alice.id,
            organisation_id=org.id,
            state=ContractState.DRAFT,
            routing=Routing.SEQUENTIAL,
            created_at=NOW,
            updated_at=NOW,
            state_changed_at=NOW,
        )
        party = Party(
            kind=PartyKind.PERSON,
            user_id=alice.id,
            status=PartyStatus.WAITING,
            fields=[SignatureField(page=0, x=72.0, y=72.0, width=180.0, height=60.0)],
        )
        contract.parties.append(party)
        contract.versions.append(
            DocumentVersion(number=1, sha256="a" * 64, size=1234, filename="nda.pdf", created_at=NOW)
        )
        session.add_all([cert, contract])
        append_event(
            session,
            AuditRecord(
                action="contract.created",
                occurred_at=NOW,
                actor_user_id=alice.id,
                contract_id=None,
                details={"title": "NDA 合同"},
            ),
        )
    with sessions() as session:
        loaded = session.execute(select(Contract)).scalar_one()
        assert loaded.state is ContractState.DRAFT
        assert loaded.created_at == NOW and loaded.created_at.tzinfo is not None
        assert loaded.parties[0].fields[0].width == 180.0
        assert loaded.versions[0].sha256 == "a" * 64
        user = session.execute(select(User).where(User.username == "alice")).scalar_one()
        assert user.role_set() == {Role.INITIATOR, Role.EMPLOYEE}
        assert user.organisation is not None and user.organisation.parent is not None
        assert session.execute(text("SELECT state FROM contracts")).scalar_one() == "draft"
        assert verify_chain(session) == []


def test_foreign_keys_are_enforced(any_db_url: str) -> None:
    engine = create_db_engine(DatabaseConfig(url=any_db_url))
    migrate_database(engine)
    sessions = create_session_factory(engine)
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(
            Contract(
                title="x",
                initiator_id=999,
                state=ContractState.DRAFT,
                routing=Routing.PARALLEL,
                created_at=NOW,
                updated_at=NOW,
                state_changed_at=NOW,
            )
        )


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    engine = create_db_engine(DatabaseConfig(url=f"sqlite:///{tmp_path}/a.db"))
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    migrate_database(engine)
    assert "audit_events" in inspect(engine).get_table_names()
