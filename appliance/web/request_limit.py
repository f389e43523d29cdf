"""Request rate limits per client address, counted in the database.

A counter in each gunicorn worker's memory lets a client through once per worker and per
node; the database is shared by all of them. Each address gets a fixed window that opens
with its first request: at most `limit` requests are answered until the window ends, and
the next request after that opens a new one.

One INSERT ... ON CONFLICT DO UPDATE takes the slot, so two workers can never both take
the last one: PostgreSQL locks the row for the statement and SQLite runs one writer at a
time. The counter stops at limit + 1, so a client that keeps sending costs one row update
per request and never overflows anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import request
from sqlalchemy import case, delete, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from appliance.db import transaction
from appliance.errors import RateLimited
from appliance.models.base import UtcDateTime
from appliance.models.request_counter import RequestCounter
from appliance.web.context import current_services

MAX_CLIENT_LENGTH = 64
"""An IPv6 address takes at most 45 characters; the key column holds 120."""


@dataclass(frozen=True)
class RequestLimit:
    name: str
    """Prefix of the counter keys, one limit per name."""
    limit: int
    window: timedelta


@dataclass(frozen=True)
class Claim:
    granted: bool
    window_started_at: datetime
    retry_at: datetime
    """When this window ends and the next request opens a new one."""


def claim_request(session: Session, key: str, limit: int, window: timedelta, now: datetime) -> Claim:
    """Count one request against `key`; `granted` is False when the window is full."""
    expired = RequestCounter.window_started_at <= now - window
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(RequestCounter)
        .values(key=key, count=1, window_started_at=now)
        .on_conflict_do_update(
            index_elements=[RequestCounter.key],
            # every right-hand side reads the row as it was before this statement
            set_={
                "count": case(
                    (expired, 1),
                    (RequestCounter.count <= limit, RequestCounter.count + 1),
                    else_=RequestCounter.count,
                ),
                "window_started_at": case(
                    (expired, literal(now, UtcDateTime())), else_=RequestCounter.window_started_at
                ),
            },
        )
        .returning(RequestCounter.count, RequestCounter.window_started_at)
    )
    count, started = session.execute(statement).one()
    return Claim(granted=count <= limit, window_started_at=started, retry_at=started + window)


def purge_one_expired(session: Session, window: timedelta, now: datetime) -> None:
    """Delete one counter whose window is over (a full window is as good as no row).

    One row per call keeps the table as small as the set of recent clients, without a job,
    and a statement that locks a single row cannot deadlock with another worker's claim.
    """
    cutoff = now - window
    oldest = select(RequestCounter.key).where(RequestCounter.window_started_at <= cutoff).limit(1)
    session.execute(
        delete(RequestCounter).where(
            # checked again on the row itself: another worker may have just reopened it
            RequestCounter.key == oldest.scalar_subquery(),
            RequestCounter.window_started_at <= cutoff,
        )
    )


def count_request(sessions: sessionmaker[Session], limit: RequestLimit, client: str, now: datetime) -> Claim:
    """Count one request of `client` against `limit`, each step in a transaction of its own."""
    key = f"{limit.name}:{client[:MAX_CLIENT_LENGTH]}"
    with transaction(sessions) as session:
        claim = claim_request(session, key, limit.limit, limit.window, now)
    if claim.granted and claim.window_started_at == now:
        # a new window opened: tidy up after the clients that went quiet
        with transaction(sessions) as session:
            purge_one_expired(session, limit.window, now)
    return claim


def enforce_request_limit(limit: RequestLimit, public: str) -> None:
    """Count this request against `limit` for its client address (after trusted proxies).

    :raises RateLimited: with `public` and the end of the window, when the window is full.
    """
    services = current_services()
    now = services.clock.now()
    claim = count_request(services.sessions, limit, request.remote_addr or "unknown", now)
    if not claim.granted:
        raise RateLimited(public, claim.retry_at)
