"""Operation log: each event's hash covers its content and the previous hash.

`append_event` runs inside the caller's transaction, so a change and its log
record commit or roll back together. It never commits.

Every append locks the one chain head row (created by the migrations) until the caller
commits, so appends are serialised: call it as the last step of a transaction, after any
slow work. Per-contract evidence lives on chains of its own (one per contract), so
signings of different contracts never queue behind each other's evidence.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.errors import Unavailable
from appliance.models import AuditChainHead, AuditEvent

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class AuditRecord:
    action: str
    occurred_at: datetime
    actor_user_id: int | None = None
    actor_name: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    contract_id: int | None = None
    client_address: str | None = None
    user_agent: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    problem: str


def canonical_details(details: Mapping[str, Any]) -> str:
    """The one text form of an event's facts that its hash covers (sorted keys, no spaces)."""
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


HASHED_COLUMNS = (
    AuditEvent.occurred_at,
    AuditEvent.action,
    AuditEvent.actor_user_id,
    AuditEvent.actor_name,
    AuditEvent.object_type,
    AuditEvent.object_id,
    AuditEvent.contract_id,
    AuditEvent.client_address,
    AuditEvent.user_agent,
    AuditEvent.details,
)
"""The columns a record's hash covers, after its seq and the previous hash, in this order."""

_VERIFY_BATCH = 2000


def event_hash(seq: int, prev_hash: str, event: AuditEvent) -> str:
    """The hash record `seq` must have, after `prev_hash`."""
    return hashlib.sha256(event_payload(seq, prev_hash, event)).hexdigest()


def event_payload(seq: int, prev_hash: str, event: AuditEvent) -> bytes:
    """What the hash of record `seq` covers: its seq, `prev_hash` and its columns, as JSON."""
    return record_payload(seq, prev_hash, [getattr(event, column.key) for column in HASHED_COLUMNS])


def record_payload(seq: int, prev_hash: str, fields: Sequence[Any]) -> bytes:
    occurred_at, *rest = fields
    return json.dumps(
        [seq, prev_hash, occurred_at.isoformat(), *rest], separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def append_event(session: Session, record: AuditRecord) -> AuditEvent:
    """Append one event to the chain inside the caller's transaction."""
    return append_events(session, [record])[0]


def append_events(session: Session, records: Sequence[AuditRecord]) -> list[AuditEvent]:
    """Append `records` to the chain in order, inside the caller's transaction, with one lock
    of the head row and one write for all of them (a sweep logs hundreds at once)."""
    head = session.execute(
        select(AuditChainHead).where(AuditChainHead.id == 1).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        raise Unavailable(
            "The operation log cannot be written right now.",
            detail="the operation log's chain head row is missing: run `appliance migrate`",
        )
    events = []
    for record in records:
        seq = head.last_seq + 1
        event = AuditEvent(
            seq=seq,
            occurred_at=record.occurred_at,
            action=record.action,
            actor_user_id=record.actor_user_id,
            actor_name=record.actor_name,
            object_type=record.object_type,
            object_id=record.object_id,
            contract_id=record.contract_id,
            client_address=record.client_address,
            user_agent=(record.user_agent or "")[:400] or None,
            details=canonical_details(record.details),
            prev_hash=head.last_hash,
        )
        event.hash = event_hash(seq, head.last_hash, event)
        head.last_seq = seq
        head.last_hash = event.hash
        events.append(event)
    session.add_all(events)
    session.flush()
    return events


def verify_chain(session: Session) -> list[ChainBreak]:
    """Recompute the chain; returns the breaks found (empty when intact)."""
    breaks: list[ChainBreak] = []
    prev_hash = GENESIS_HASH
    expected_seq = 1
    # plain rows, streamed in batches: memory stays flat however long the log is
    rows = session.execute(
        select(AuditEvent.seq, AuditEvent.prev_hash, AuditEvent.hash, *HASHED_COLUMNS)
        .order_by(AuditEvent.seq)
        .execution_options(yield_per=_VERIFY_BATCH)
    )
    for seq, linked_to, stored_hash, *fields in rows:
        if seq != expected_seq:
            breaks.append(ChainBreak(seq, f"expected event {expected_seq}: events missing"))
        if linked_to != prev_hash:
            breaks.append(ChainBreak(seq, "does not link to the previous event"))
        if hashlib.sha256(record_payload(seq, linked_to, fields)).hexdigest() != stored_hash:
            breaks.append(ChainBreak(seq, "content changed after it was written"))
        prev_hash = stored_hash
        expected_seq = seq + 1
    head = session.get(AuditChainHead, 1)
    if head is not None and (head.last_seq != expected_seq - 1 or head.last_hash != prev_hash):
        breaks.append(ChainBreak(expected_seq, "the newest events were removed"))
    return breaks
