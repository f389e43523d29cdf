"""The operation log's hash chain: intact chains verify; edits, deletions and truncation are found."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from appliance.audit import AuditRecord, append_event, verify_chain
from appliance.config import DatabaseConfig
from appliance.db import create_db_engine, create_session_factory, migrate_database
from appliance.models import AuditChainHead, AuditEvent

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def engine(any_db_url: str) -> Engine:
    engine = create_db_engine(DatabaseConfig(url=any_db_url))
    migrate_database(engine)
    return engine


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    factory = create_session_factory(engine)
    for i in range(5):
        with factory.begin() as session:
            append_event(
                session,
                AuditRecord(
                    action=f"test.event{i}",
                    occurred_at=T0 + timedelta(seconds=i),
                    actor_name="alice",
                    client_address="10.0.0.1",
                    details={"n": i, "note": "签署"},
                ),
            )
    return factory


def test_intact_chain_verifies(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        assert verify_chain(session) == []
        seqs = session.execute(select(AuditEvent.seq).order_by(AuditEvent.seq)).scalars().all()
        assert seqs == [1, 2, 3, 4, 5]


def test_edited_details_are_found(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(details='{"n":99}'))
    with sessions() as session:
        breaks = verify_chain(session)
    assert [b.seq for b in breaks] == [3]
    assert "content changed" in breaks[0].problem


def test_deleted_middle_event_is_found(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == 2))
    with sessions() as session:
        breaks = verify_chain(session)
    assert breaks and breaks[0].seq == 3


def test_truncated_tail_is_found(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq >= 4))
    with sessions() as session:
        breaks = verify_chain(session)
    assert [b.problem for b in breaks] == ["the newest events were removed"]


def test_rolled_back_change_leaves_no_event(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(RuntimeError), sessions.begin() as session:
        append_event(session, AuditRecord(action="test.rolled_back", occurred_at=T0))
        raise RuntimeError("the business change failed")
    with sessions() as session:
        assert session.get(AuditChainHead, 1).last_seq == 5  # type: ignore[union-attr]
        assert verify_chain(session) == []


def test_concurrent_appends_do_not_fork_the_chain(sessions: sessionmaker[Session]) -> None:
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for i in range(15):
                with sessions.begin() as session:
                    append_event(session, AuditRecord(action=f"{name}.{i}", occurred_at=T0))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with sessions() as session:
        assert verify_chain(session) == []
        assert session.get(AuditChainHead, 1).last_seq == 5 + 45  # type: ignore[union-attr]
