"""Request rate limits counted in the database: one window per address, shared by every
engine (worker) on SQLite and PostgreSQL, and tidied up without a job."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from appliance.config import DatabaseConfig
from appliance.db import create_db_engine, create_session_factory, migrate_database
from appliance.models.request_counter import RequestCounter
from appliance.web.request_limit import RequestLimit, count_request

LIMIT = RequestLimit("test", limit=5, window=timedelta(minutes=1))
T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


Workers = Callable[[], sessionmaker[Session]]


@pytest.fixture
def worker(any_db_url: str) -> Iterator[Workers]:
    """A migrated database; each call gives one more engine on it, as another worker has."""
    engines: list[Engine] = []

    def connect() -> sessionmaker[Session]:
        engines.append(create_db_engine(DatabaseConfig(url=any_db_url)))
        return create_session_factory(engines[-1])

    migrating = create_db_engine(DatabaseConfig(url=any_db_url))
    migrate_database(migrating)
    migrating.dispose()
    yield connect
    for engine in engines:
        engine.dispose()


def _keys(sessions: sessionmaker[Session]) -> set[str]:
    with sessions() as session:
        return set(session.scalars(select(RequestCounter.key)))


def test_a_window_fills_then_opens_again(worker: Workers) -> None:
    sessions = worker()
    claims = [count_request(sessions, LIMIT, "10.0.0.1", T0 + timedelta(seconds=i)) for i in range(5)]
    assert all(c.granted for c in claims)
    refused = count_request(sessions, LIMIT, "10.0.0.1", T0 + timedelta(seconds=30))
    assert not refused.granted and refused.retry_at == T0 + LIMIT.window
    # refusals do not push the window on: it still ends a minute after the first request
    assert (
        count_request(sessions, LIMIT, "10.0.0.1", T0 + timedelta(seconds=59)).retry_at == T0 + LIMIT.window
    )
    # another address has its own window
    assert count_request(sessions, LIMIT, "10.0.0.2", T0 + timedelta(seconds=30)).granted
    later = T0 + LIMIT.window
    reopened = count_request(sessions, LIMIT, "10.0.0.1", later)
    assert reopened.granted and reopened.window_started_at == later


def test_two_workers_share_the_count(worker: Workers) -> None:
    """Two engines (as two gunicorn workers or nodes) and four threads each: the limit holds."""
    workers = [worker(), worker()]
    limit = RequestLimit("race", limit=20, window=timedelta(minutes=1))
    granted: list[bool] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def send(sessions: sessionmaker[Session]) -> None:
        try:
            barrier.wait(timeout=30)
            for _ in range(10):
                granted.append(count_request(sessions, limit, "10.9.9.9", T0).granted)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(workers[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(granted) == 80 and granted.count(True) == 20
    with workers[0]() as session:
        row = session.get_one(RequestCounter, "race:10.9.9.9")
        assert row.count == 21  # stops one past the limit


def test_counters_of_quiet_clients_are_purged(worker: Workers) -> None:
    sessions = worker()
    for i in range(3):
        count_request(sessions, LIMIT, f"10.0.1.{i}", T0)
    assert len(_keys(sessions)) == 3
    # each newly opened window takes one expired counter away; live ones stay
    later = T0 + LIMIT.window + timedelta(seconds=1)
    for i in range(3):
        count_request(sessions, LIMIT, f"10.0.2.{i}", later)
    assert _keys(sessions) == {f"test:10.0.2.{i}" for i in range(3)}
    # a refused request opens nothing and deletes nothing
    for _ in range(6):
        count_request(sessions, LIMIT, "10.0.2.0", later)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(RequestCounter)) == 3
