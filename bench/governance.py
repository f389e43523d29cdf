"""Governance benchmark (not a test): the retention sweep and `appliance verify-log` at scale.

    .venv/bin/python bench/governance.py [--contracts 100000] [--records 1000000]
                                         [--postgresql URL] [--quick]

Retention sweep. A fresh database (an SQLite file; with --postgresql also a scratch schema
there) migrated to head, one initiator, and `--contracts` contracts inserted in bulk, each
with a party, a signature field, a document version and an evidence event, in mixed states:
  20% drafts past their 12 months whose people were told 31 days ago (deleted),
  20% withdrawn, rejected or expired 13 months ago, told 31 days ago (deleted),
  10% drafts 11.5 months old (their people are told now),
  20% completed 61 months ago (archived),
  30% out for signing since last week (left alone).
The deleted contracts' documents are real files in the blob store (removed by the sweep).
On PostgreSQL the loaded tables are analysed before the sweep, as autovacuum would have.
One sweep at the time those rules imply runs in a child process; printed: its seconds and
the growth of the child's peak memory during the sweep, for a tenth of the contracts and for
all of them. Target: under 60 s for all; memory flat in the number of contracts (the two
growths alike, not ten times apart).

verify-log. `--records` operation log records are appended in bulk, chained exactly as
`append_event` chains them, and `verify_chain` (what `appliance verify-log` runs before it
checks the checkpoints) reads them back and recomputes every hash. Baseline, measured in the
same run: a plain sha256 over the same serialized records (the JSON each record's hash covers),
already in memory. Printed: records per second of both and their ratio. Target: >= 0.5.

With --quick: 20,000 contracts and 200,000 records.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import multiprocessing
import resource
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import insert, select, text, update

from appliance.audit.log import HASHED_COLUMNS, canonical_details, event_payload, record_payload, verify_chain
from appliance.config import load_config
from appliance.db import create_db_engine, migrate_database, scratch_schema
from appliance.models import (
    AuditChainHead,
    AuditEvent,
    Contract,
    ContractState,
    DocumentVersion,
    EvidenceEvent,
    Party,
    PartyKind,
    PartyStatus,
    Routing,
    SignatureField,
    User,
    UserSource,
)
from appliance.services import build_services
from appliance.workflow.retention import months_before, sweep_retention

NOW = datetime(2031, 6, 1, 9, 0, tzinfo=UTC)
CHUNK = 5000
SWEEP_TARGET_SECONDS = 60
VERIFY_TARGET_RATIO = 0.5


class _FixedClock:
    def now(self) -> datetime:
        return NOW


@dataclasses.dataclass(frozen=True)
class SweepFigures:
    contracts: int
    seconds: float
    memory_growth_mb: float
    peak_mb: float
    deleted: int
    archived: int
    notified: int


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--contracts", type=int, default=100_000)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument(
        "--postgresql", metavar="URL", help="also on this PostgreSQL database (a scratch schema)"
    )
    parser.add_argument("--quick", action="store_true", help="20,000 contracts and 200,000 records")
    args = parser.parse_args()
    contracts, records = (20_000, 200_000) if args.quick else (args.contracts, args.records)

    backends: list[tuple[str, str | None]] = [("SQLite", None)]
    if args.postgresql:
        backends.append(("PostgreSQL", args.postgresql))
    for label, url in backends:
        print(f"== retention sweep, {label}")
        for count in (contracts // 10, contracts):
            figures = _sweep_once(url, count)
            print(
                f"  {figures.contracts:>7} contracts: {figures.seconds:6.1f} s, "
                f"peak RSS {figures.peak_mb:.0f} MB (+{figures.memory_growth_mb:.1f} MB during the sweep) "
                f"(deleted {figures.deleted}, archived {figures.archived}, told {figures.notified})"
            )
        print(
            f"  target: under {SWEEP_TARGET_SECONDS} s for {contracts}, "
            "memory flat in the number of contracts"
        )
        print(f"== verify-log, {label}")
        verify, in_memory, read_and_hash = _in_child(_verify_once, url, records)
        print(f"  verify_chain:              {verify:>10,.0f} records/s over {records:,} records")
        print(f"  sha256, in memory:         {in_memory:>10,.0f} records/s (the serialized records, hashed)")
        print(f"  read, serialize, sha256:   {read_and_hash:>10,.0f} records/s (read from the database)")
        print(
            f"  ratio: {verify / in_memory:.2f} against sha256 in memory, "
            f"{verify / read_and_hash:.2f} against read+sha256 (target >= {VERIFY_TARGET_RATIO})"
        )


def _in_child(function: Any, *arguments: Any) -> Any:
    """Run in a fresh process, so each figure's peak memory is its own."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, arguments)


@contextmanager
def _workspace(url: str | None) -> Iterator[tuple[str, str]]:
    """A fresh database (SQLite file, or a scratch schema at `url`) and folder for the blob
    store and config; yields the database URL and the folder, migrated to head."""
    with tempfile.TemporaryDirectory(prefix="bench-governance-") as folder:
        if url is None:
            database_url = f"sqlite:///{folder}/appliance.db"
            _services(database_url, folder).engine.dispose()
            yield database_url, folder
        else:
            with scratch_schema(url, "bench_governance") as scoped:
                _services(scoped, folder).engine.dispose()
                yield scoped, folder


def _services(database_url: str, folder: str) -> Any:
    """Services on the workspace (no HSM, directory or mail), at the bench's fixed time."""
    base = Path(folder)
    (base / "blobs").mkdir(exist_ok=True)
    secret = base / "session-secret"
    if not secret.exists():
        secret.write_text(secrets.token_urlsafe(48))
    raw = {
        "private_cloud_address": "https://esign.bench.example",
        "network": {"allowed_networks": ["127.0.0.0/8"]},
        "database": {"url": database_url},
        "storage": {"path": str(base / "blobs")},
        "auth": {"session_secret_file": str(secret)},
    }
    (base / "config.yaml").write_text(yaml.safe_dump(raw))
    config = load_config(base / "config.yaml", environ={})
    migrate_database(create_db_engine(config.database))
    return build_services(config, clock=_FixedClock())


def _sweep_once(url: str | None, count: int) -> SweepFigures:
    with _workspace(url) as (database_url, folder):
        _in_child(_seed_child, database_url, folder, count)
        return _in_child(_sweep_child, database_url, folder, count)  # type: ignore[no-any-return]


def _seed_child(database_url: str, folder: str, count: int) -> None:
    services = _services(database_url, folder)
    _seed_contracts(services, count)
    if services.engine.dialect.name == "postgresql":
        # a production database has its planner statistics, kept by autovacuum; the bulk load
        # above is swept before autovacuum's next round would have analysed it
        with services.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("ANALYZE contracts, parties, signature_fields, document_versions, evidence_events")
            )
    services.engine.dispose()


def _sweep_child(database_url: str, folder: str, count: int) -> SweepFigures:
    services = _services(database_url, folder)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    report = sweep_retention(services.workflow)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    services.engine.dispose()
    return SweepFigures(
        count,
        seconds,
        (after - before) / 1024,
        after / 1024,
        report.deleted,
        report.archived,
        report.notified,
    )


def _seed_contracts(services: Any, count: int) -> None:
    with services.sessions.begin() as session:
        user = User(
            username="initiator",
            source=UserSource.DIRECTORY,
            display_name="Bench Initiator",
            email="initiator@bench.example",
            active=True,
            created_at=NOW,
            updated_at=NOW,
        )
        session.add(user)
        session.flush()
        user_id = user.id
    closed = (ContractState.WITHDRAWN, ContractState.REJECTED, ContractState.EXPIRED)
    old_enough = months_before(NOW, 13)
    for start in range(0, count, CHUNK):
        contracts, parties, fields, versions, evidence = [], [], [], [], []
        for number in range(start + 1, min(start + CHUNK, count) + 1):
            kind = number % 10
            noticed = None
            if kind in (0, 1):
                state, created, changed, noticed = (
                    ContractState.DRAFT,
                    old_enough,
                    old_enough,
                    NOW - timedelta(days=31),
                )
            elif kind in (2, 3):
                state, created, changed, noticed = (
                    closed[number % 3],
                    old_enough,
                    old_enough,
                    NOW - timedelta(days=31),
                )
            elif kind == 4:
                created = months_before(NOW, 11) - timedelta(days=15)
                state, changed = ContractState.DRAFT, created
            elif kind in (5, 6):
                created = months_before(NOW, 62)
                state, changed = ContractState.COMPLETED, months_before(NOW, 61)
            else:
                state, created, changed = (
                    ContractState.SIGNING,
                    NOW - timedelta(days=7),
                    NOW - timedelta(days=7),
                )
            sha256 = hashlib.sha256(f"contract {number}".encode()).hexdigest()
            if noticed is not None:
                services.blobs.put(_Bytes(f"contract {number}".encode()))
            contracts.append(
                {
                    "id": number,
                    "title": f"Bench contract {number}",
                    "initiator_id": user_id,
                    "state": state,
                    "routing": Routing.SEQUENTIAL,
                    "created_at": created,
                    "updated_at": changed,
                    "state_changed_at": changed,
                    "completed_at": changed if state is ContractState.COMPLETED else None,
                    "deletion_noticed_at": noticed,
                    "evidence_last_seq": 1,
                    "evidence_last_hash": "1" * 64,
                }
            )
            parties.append(
                {
                    "id": number,
                    "contract_id": number,
                    "kind": PartyKind.PERSON,
                    "user_id": user_id,
                    "routing_order": 1,
                    "status": PartyStatus.PENDING,
                    "display_name": "Bench Initiator",
                }
            )
            fields.append(
                {"party_id": number, "page": 0, "x": 72.0, "y": 72.0, "width": 180.0, "height": 60.0}
            )
            versions.append(
                {
                    "contract_id": number,
                    "number": 1,
                    "sha256": sha256,
                    "size": 100,
                    "filename": "bench.pdf",
                    "created_at": created,
                }
            )
            evidence.append(
                {
                    "contract_id": number,
                    "seq": 1,
                    "occurred_at": created,
                    "action": "created",
                    "actor_name": "Bench Initiator",
                    "details": "{}",
                    "prev_hash": "0" * 64,
                    "hash": hashlib.sha256(f"evidence {number}".encode()).hexdigest(),
                }
            )
        with services.sessions.begin() as session:
            for model, rows in (
                (Contract, contracts),
                (Party, parties),
                (SignatureField, fields),
                (DocumentVersion, versions),
                (EvidenceEvent, evidence),
            ):
                session.execute(insert(model), rows)


class _Bytes:
    """A readable stream over bytes, as the blob store reads an upload."""

    def __init__(self, data: bytes) -> None:
        self._data, self._offset = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._offset + size
        chunk, self._offset = self._data[self._offset : end], min(end, len(self._data))
        return chunk

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _verify_once(url: str | None, count: int) -> tuple[float, float, float]:
    with _workspace(url) as (database_url, folder):
        services = _services(database_url, folder)
        payloads = _seed_log(services, count)
        started = time.perf_counter()
        for payload in payloads:
            hashlib.sha256(payload).hexdigest()
        in_memory = count / (time.perf_counter() - started)
        del payloads
        with services.sessions() as session:
            started = time.perf_counter()
            for payload in _read_serialized(session):
                hashlib.sha256(payload).hexdigest()
            read_and_hash = count / (time.perf_counter() - started)
        with services.sessions() as session:
            started = time.perf_counter()
            breaks = verify_chain(session)
            verify = count / (time.perf_counter() - started)
        services.engine.dispose()
        if breaks:
            raise SystemExit(f"the seeded log does not verify: {breaks[:3]}")
        return verify, in_memory, read_and_hash


def _read_serialized(session: Any) -> Iterator[bytes]:
    """Each stored record read back (as plain rows, the way verify_chain reads them) and
    serialized as its hash covers it: the least any check of the log has to do."""
    query = select(AuditEvent.seq, AuditEvent.prev_hash, *HASHED_COLUMNS).order_by(AuditEvent.seq)
    for seq, prev_hash, *fields in session.execute(query.execution_options(yield_per=2000)):
        yield record_payload(seq, prev_hash, fields)


def _seed_log(services: Any, count: int) -> list[bytes]:
    """`count` records chained as append_event chains them; returns what each hash covers."""
    payloads: list[bytes] = []
    previous = "0" * 64
    for start in range(0, count, CHUNK):
        rows = []
        for seq in range(start + 1, min(start + CHUNK, count) + 1):
            event = AuditEvent(
                seq=seq,
                occurred_at=NOW + timedelta(seconds=seq),
                action="contract.signed",
                actor_user_id=None,
                actor_name="张伟",
                object_type="contract",
                object_id=str(seq),
                contract_id=seq,
                client_address="10.1.2.3",
                user_agent="bench",
                details=canonical_details({"n": seq, "document_sha256": "ab" * 32}),
                prev_hash=previous,
            )
            payload = event_payload(seq, previous, event)
            event.hash = hashlib.sha256(payload).hexdigest()
            payloads.append(payload)
            rows.append({column.key: getattr(event, column.key) for column in AuditEvent.__table__.columns})
            previous = event.hash
        with services.sessions.begin() as session:
            session.execute(insert(AuditEvent), rows)
    with services.sessions.begin() as session:
        session.execute(
            update(AuditChainHead).where(AuditChainHead.id == 1).values(last_seq=count, last_hash=previous)
        )
    return payloads


if __name__ == "__main__":
    sys.exit(main())
