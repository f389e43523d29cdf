"""The operation log's hash chain: intact chains verify; edits, deletions and truncation are found."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from appliance.audit import AuditRecord, append_event, verify_chain
from appliance.config import DatabaseConfig
from appliance.db import create_db_engine, create_session_factory, migrate_database
from appliance.errors import Unavailable
from appliance.models import AuditChainHead, AuditEvent
from tests.fixtures.tamper import lift_log_triggers

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def run_in_threads(work: Callable[[str], None], count: int) -> list[BaseException]:
    """Run `work("w0")` ... in `count` threads at once; returns what they raised."""
    errors: list[BaseException] = []

    def guarded(name: str) -> None:
        try:
            work(name)
        except BaseException as exc:  # returned to the test, which asserts on it
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(f"w{n}",)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


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
        lift_log_triggers(session)
        session.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(details='{"n":99}'))
    with sessions() as session:
        breaks = verify_chain(session)
    assert [b.seq for b in breaks] == [3]
    assert "content changed" in breaks[0].problem


def test_deleted_middle_event_is_found(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        lift_log_triggers(session)
        session.execute(delete(AuditEvent).where(AuditEvent.seq == 2))
    with sessions() as session:
        breaks = verify_chain(session)
    assert breaks and breaks[0].seq == 3


def test_truncated_tail_is_found(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        lift_log_triggers(session)
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
    def writer(name: str) -> None:
        for i in range(15):
            with sessions.begin() as session:
                append_event(session, AuditRecord(action=f"{name}.{i}", occurred_at=T0))

    assert run_in_threads(writer, 3) == []
    with sessions() as session:
        assert verify_chain(session) == []
        assert session.get(AuditChainHead, 1).last_seq == 5 + 45  # type: ignore[union-attr]


def test_two_first_writers_on_a_new_database_both_succeed(any_db_url: str) -> None:
    # On PostgreSQL both used to find no head row and race to insert it; the migration
    # creates it now, so the second writer waits for the first instead of failing.
    engine = create_db_engine(DatabaseConfig(url=any_db_url))
    migrate_database(engine)
    factory = create_session_factory(engine)
    with factory() as session:
        head = session.get(AuditChainHead, 1)
        assert head is not None and (head.last_seq, head.last_hash) == (0, "0" * 64)
    both_reading = threading.Barrier(2, timeout=10)

    def first_writer(name: str) -> None:
        with factory.begin() as session:
            if engine.dialect.name == "postgresql":
                # both transactions are open before either appends
                session.execute(select(AuditEvent.seq)).all()
                both_reading.wait()
            append_event(session, AuditRecord(action=f"{name}.first", occurred_at=T0))

    assert run_in_threads(first_writer, 2) == []
    with factory() as session:
        assert verify_chain(session) == []
        assert session.get(AuditChainHead, 1).last_seq == 2  # type: ignore[union-attr]
    engine.dispose()


def test_a_missing_head_row_is_an_outage_not_a_new_chain(engine: Engine) -> None:
    factory = create_session_factory(engine)
    with factory.begin() as session:
        session.execute(delete(AuditChainHead))
    with pytest.raises(Unavailable) as caught, factory.begin() as session:
        append_event(session, AuditRecord(action="test.after_head_loss", occurred_at=T0))
    assert "appliance migrate" in caught.value.detail
    with factory() as session:
        assert session.execute(select(AuditEvent)).first() is None
