"""Per-contract evidence: each contract's events chained by sha256, its head on the contract row.

`append_evidence` runs inside the caller's transaction, after the caller has locked the
contract row (every change of a contract does: see appliance.workflow.store.lock_contract),
so two writers cannot fork one contract's chain, and contracts never wait for each other.
It never commits. `verify_evidence` recomputes a chain and checks that each document
version's blob still has its recorded hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.audit.log import GENESIS_HASH, ChainBreak, canonical_details
from appliance.models import Contract, DocumentVersion, EvidenceEvent
from appliance.storage import BlobStore


@dataclass(frozen=True)
class EvidenceRecord:
    action: str
    occurred_at: datetime
    actor_user_id: int | None = None
    actor_name: str | None = None
    client_address: str | None = None
    user_agent: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvidenceReport:
    contract_id: int
    events: int
    head_hash: str
    breaks: tuple[ChainBreak, ...]
    bad_versions: tuple[str, ...]
    """One line per document version whose blob is missing or no longer has its hash."""

    @property
    def intact(self) -> bool:
        return not self.breaks and not self.bad_versions


def _event_hash(event: EvidenceEvent) -> str:
    payload = json.dumps(
        [
            event.contract_id,
            event.seq,
            event.prev_hash,
            event.occurred_at.isoformat(),
            event.action,
            event.actor_user_id,
            event.actor_name,
            event.client_address,
            event.user_agent,
            event.details,
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def append_evidence(session: Session, contract: Contract, record: EvidenceRecord) -> EvidenceEvent:
    """Append one event to `contract`'s chain; the caller holds the contract's row lock."""
    event = EvidenceEvent(
        contract_id=contract.id,
        seq=contract.evidence_last_seq + 1,
        occurred_at=record.occurred_at,
        action=record.action,
        actor_user_id=record.actor_user_id,
        actor_name=record.actor_name,
        client_address=record.client_address,
        user_agent=(record.user_agent or "")[:400] or None,
        details=canonical_details(record.details),
        prev_hash=contract.evidence_last_hash,
    )
    event.hash = _event_hash(event)
    contract.evidence_last_seq = event.seq
    contract.evidence_last_hash = event.hash
    session.add(event)  # written with the caller's next flush: a sweep appends hundreds at once
    return event


def verify_evidence(session: Session, contract: Contract, blobs: BlobStore) -> EvidenceReport:
    breaks: list[ChainBreak] = []
    prev_hash, expected_seq = GENESIS_HASH, 1
    events = session.scalars(
        select(EvidenceEvent).where(EvidenceEvent.contract_id == contract.id).order_by(EvidenceEvent.seq)
    ).all()
    for event in events:
        if event.seq != expected_seq:
            breaks.append(ChainBreak(event.seq, f"expected event {expected_seq}: events missing"))
        if event.prev_hash != prev_hash:
            breaks.append(ChainBreak(event.seq, "does not link to the previous event"))
        if _event_hash(event) != event.hash:
            breaks.append(ChainBreak(event.seq, "content changed after it was written"))
        prev_hash, expected_seq = event.hash, event.seq + 1
    if contract.evidence_last_seq != expected_seq - 1 or contract.evidence_last_hash != prev_hash:
        breaks.append(ChainBreak(expected_seq, "the newest events were removed"))
    versions = session.scalars(
        select(DocumentVersion)
        .where(DocumentVersion.contract_id == contract.id)
        .order_by(DocumentVersion.number)
    ).all()
    bad = [
        f"version {version.number}: {problem}"
        for version in versions
        if (problem := _blob_problem(blobs, version.sha256)) is not None
    ]
    return EvidenceReport(contract.id, len(events), prev_hash, tuple(breaks), tuple(bad))


def _blob_problem(blobs: BlobStore, sha256: str) -> str | None:
    if not blobs.exists(sha256):
        return "its file is missing from the blob store"
    digest = hashlib.sha256()
    with blobs.open(sha256) as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        return "its file no longer has its recorded sha256"
    return None
