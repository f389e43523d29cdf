"""Reading the operation log: filtered pages, newest first, and a stream in chain order for export."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.orm import Session

from appliance.audit.pseudonyms import Pseudonyms, strings_in
from appliance.masking import mask_text
from appliance.models import AuditEvent, User

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
    """Up to `limit` records matching `where`, newest first, older than record `before`.

    The actor filter matches the names shown: a cancelled person's record is found by their
    pseudonym, not by the name it was written with.
    """
    limit = max(1, min(limit, MAX_PAGE))
    entries: list[LogEntry] = []
    cursor = before
    while True:
        query = _select(where)
        if cursor is not None:
            query = query.where(AuditEvent.seq < cursor)
        rows = session.scalars(query.order_by(AuditEvent.seq.desc()).limit(limit + 1)).all()
        entries.extend(
            e for e, row in zip(_entries(session, rows), rows, strict=True) if _shown(e, row, where)
        )
        if len(rows) <= limit or len(entries) > limit:
            break
        cursor = rows[-1].seq
    older = entries[limit - 1].seq if len(entries) > limit else None
    return LogPage(tuple(entries[:limit]), older)


def stream_log(session: Session, where: LogFilter) -> Iterator[LogEntry]:
    """Every record matching `where`, oldest first, read in batches (memory stays flat)."""
    after = 0
    while True:
        query = _select(where).where(AuditEvent.seq > after).order_by(AuditEvent.seq).limit(_EXPORT_BATCH)
        rows = session.scalars(query).all()
        if not rows:
            return
        for entry, row in zip(_entries(session, rows), rows, strict=True):
            if _shown(entry, row, where):
                yield entry
        after = rows[-1].seq
        session.expunge_all()


def _select(where: LogFilter) -> Select[AuditEvent]:
    conditions: list[ColumnElement[bool]] = []
    if where.action:
        conditions.append(AuditEvent.action.startswith(where.action, autoescape=True))
    if where.actor:
        # a cancelled person's records are found by their pseudonym (their login name now)
        cancelled = select(User.id).where(
            User.anonymised_at.is_not(None), User.username.icontains(where.actor, autoescape=True)
        )
        conditions.append(
            or_(
                AuditEvent.actor_name.icontains(where.actor, autoescape=True),
                AuditEvent.actor_user_id.in_(cancelled),
            )
        )
    if where.contract_id is not None:
        conditions.append(AuditEvent.contract_id == where.contract_id)
    if where.since is not None:
        conditions.append(AuditEvent.occurred_at >= where.since)
    if where.until is not None:
        conditions.append(AuditEvent.occurred_at < where.until)
    return select(AuditEvent).where(*conditions)


def _entries(session: Session, rows: Sequence[AuditEvent]) -> list[LogEntry]:
    pseudonyms = Pseudonyms.load(
        session,
        (row.actor_user_id for row in rows),
        (text for row in rows for text in [row.actor_name or "", *strings_in(json.loads(row.details))]),
    )
    return [_entry(row, pseudonyms) for row in rows]


def _shown(entry: LogEntry, row: AuditEvent, where: LogFilter) -> bool:
    # SQL matched the name as written; a pseudonym shown instead must match too
    if not where.actor or entry.actor_name == row.actor_name:
        return True
    return where.actor.lower() in (entry.actor_name or "").lower()


def _entry(row: AuditEvent, pseudonyms: Pseudonyms) -> LogEntry:
    return LogEntry(
        seq=row.seq,
        occurred_at=row.occurred_at,
        action=row.action,
        actor_name=pseudonyms.actor(row.actor_user_id, row.actor_name, row.occurred_at),
        object_type=row.object_type,
        object_id=row.object_id,
        contract_id=row.contract_id,
        client_address=row.client_address,
        user_agent=row.user_agent,
        # auditors are not the people the records name
        details=mask_text(pseudonyms.details(row.details, row.occurred_at)),
        hash=row.hash,
    )
