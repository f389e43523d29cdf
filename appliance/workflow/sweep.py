"""Removing blobs that no row refers to.

Every command stores its blob before the transaction that refers to it commits, and removes
it again when that transaction fails (appliance.workflow.signatures, drafts). A process
killed in between leaves the blob behind, unreferenced: nothing shows it, but it takes room
and holds a document that was never signed or sent. This sweep removes such blobs.

The grace period protects a command in flight between its blob write and its commit: a blob
stored (or stored again, being the same content) within it is not even looked at. What is
older is checked against the database a batch at a time, so neither the store's names nor
the referenced hashes are ever all in memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from itertools import islice

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.audit import AuditRecord, append_event
from appliance.db import transaction
from appliance.errors import InvalidInput
from appliance.models import Contract, ContractTemplate, DocumentVersion, Seal
from appliance.workflow.context import WorkflowContext

log = logging.getLogger(__name__)

BATCH = 500
"""Names checked per query; well below SQLite's limit of bound parameters."""


@dataclass(frozen=True)
class SweepReport:
    removed: int
    """Blobs removed (in a dry run: that would be removed)."""
    kept: int
    """Blobs past the grace period that a row still refers to."""
    names: tuple[str, ...]
    """The names of the blobs removed (in a dry run: that would be removed)."""


def sweep_unreferenced_blobs(
    ctx: WorkflowContext, *, older_than: timedelta = timedelta(hours=1), dry_run: bool = False
) -> SweepReport:
    """Remove the blobs stored longer ago than `older_than` that no document version, certificate
    of completion or seal image refers to; a dry run only lists them.

    :raises InvalidInput: a negative grace period.
    """
    if older_than < timedelta(0):
        raise InvalidInput("The grace period for removing unreferenced documents cannot be negative.")
    names = ctx.blobs.names_older_than(ctx.clock.now() - older_than)
    removed: list[str] = []
    kept = 0
    try:
        while batch := list(islice(names, BATCH)):
            with ctx.sessions() as session:
                referenced = referenced_blobs(session, batch)
            for name in batch:
                if name in referenced:
                    kept += 1
                    continue
                if not dry_run:
                    ctx.blobs.delete(name)
                    log.info("removed blob %s: nothing refers to it", name)
                removed.append(name)
    finally:
        # on record even when a later batch fails: what is removed is gone
        if removed and not dry_run:
            _log_sweep(ctx, len(removed), older_than)
    return SweepReport(removed=len(removed), kept=kept, names=tuple(removed))


def referenced_blobs(session: Session, names: list[str]) -> set[str]:
    """Which of `names` a document version, a certificate of completion, a seal image or a
    template uses."""
    used = set(session.scalars(select(DocumentVersion.sha256).where(DocumentVersion.sha256.in_(names))))
    used.update(
        session.scalars(select(Contract.completion_sha256).where(Contract.completion_sha256.in_(names)))
    )
    used.update(session.scalars(select(Seal.image_sha256).where(Seal.image_sha256.in_(names))))
    used.update(session.scalars(select(ContractTemplate.sha256).where(ContractTemplate.sha256.in_(names))))
    return {name for name in used if name is not None}


def _log_sweep(ctx: WorkflowContext, removed: int, older_than: timedelta) -> None:
    with transaction(ctx.sessions) as session:
        append_event(
            session,
            AuditRecord(
                action="blobs.swept",
                occurred_at=ctx.clock.now(),
                actor_name="appliance",
                object_type="blob",
                details={"removed": removed, "older_than_seconds": int(older_than.total_seconds())},
            ),
        )


def discard_unreferenced_blob(ctx: WorkflowContext, sha256: str) -> None:
    """Remove a blob written for a change that did not commit, unless something uses it.

    Only for content that no other request can be storing at the same time: a signed
    version or a certificate of completion (each unique: it holds its own signature and
    time). An upload can be the same file as another request's, so a failed upload's blob
    is left to the sweep (appliance.workflow.sweep), whose grace period covers requests in
    flight.
    """
    with ctx.sessions() as session:
        if referenced_blobs(session, [sha256]):
            return
    ctx.blobs.delete(sha256)
