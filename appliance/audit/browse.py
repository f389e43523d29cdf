"""Reading the operation log: filtered pages, newest first, and a stream in chain order for export."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from appliance.masking import mask_text
from appliance.models import AuditEvent

MAX_PAGE = 200
_EXPORT_BATCH = 1000


@dataclass(frozen=True)
class LogFilter:
    action: str | None = None
    """Actions starting with this, e.g. "auth." or "auth.login_failed"."""
    actor: str | None = None
    """Actor names containing this (case-insensitive)."""
    contract_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    """Exclusive."""


@dataclass(frozen=True)
class LogEntry:
    seq: int
    occurred_at: datetime
    action: str
    actor_name: str | None
    object_type: str | None
    object_id: str | None
    contract_id: int | None
    client_address: str | None
    user_agent: str | None
    details: str
    """Canonical JSON, as the chain hashes it."""
    hash: str


@dataclass(frozen=True)
class LogPage:
    entries: tuple[LogEntry, ...]
    older: int | None
    """`before` for the next (older) page; None on the last one."""


def search_log(session: Session, where: LogFilter, *, before: int | None = None, limit: int = 50) -> LogPage:
    """Up to `limit` records matching `where`, newest first, older than record `before`."""
    limit = max(1, min(limit, MAX_PAGE))
    query = _select(where)
    if before is not None:
        query = query.where(AuditEvent.seq < before)
    rows = session.scalars(query.order_by(AuditEvent.seq.desc()).limit(limit + 1)).all()
    entries = tuple(_entry(row) for row in rows[:limit])
    return LogPage(entries, entries[-1].seq if len(rows) > limit else None)


def stream_log(session: Session, where: LogFilter) -> Iterator[LogEntry]:
    """Every record matching `where`, oldest first, read in batches (memory stays flat)."""
    after = 0
    while True:
        query = _select(where).where(AuditEvent.seq > after).order_by(AuditEvent.seq).limit(_EXPORT_BATCH)
        rows = session.scalars(query).all()
        if not rows:
            return
        for row in rows:
            yield _entry(row)
        after = rows[-1].seq
        session.expunge_all()


def _select(where: LogFilter) -> Select[AuditEvent]:
    conditions: list[ColumnElement[bool]] = []
    if where.action:
        conditions.append(AuditEvent.action.startswith(where.action, autoescape=True))
    if where.actor:
        conditions.append(AuditEvent.actor_name.icontains(where.actor, autoescape=True))
    if where.contract_id is not None:
        conditions.append(AuditEvent.contract_id == where.contract_id)
    if where.since is not None:
        conditions.append(AuditEvent.occurred_at >= where.since)
    if where.until is not None:
        conditions.append(AuditEvent.occurred_at < where.until)
    return select(AuditEvent).where(*conditions)


def _entry(row: AuditEvent) -> LogEntry:
    return LogEntry(
        seq=row.seq,
        occurred_at=row.occurred_at,
        action=row.action,
        actor_name=row.actor_name,
        object_type=row.object_type,
        object_id=row.object_id,
        contract_id=row.contract_id,
        client_address=row.client_address,
        user_agent=row.user_agent,
        # auditors are not the people the records name
        details=mask_text(row.details),
        hash=row.hash,
    )
