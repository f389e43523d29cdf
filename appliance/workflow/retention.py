"""Retention: contracts whose time is up are deleted, after their people were told, and
completed ones are archived (DESIGN.md section 3; the periods are `retention` in the config).

- Drafts never sent are deleted `draft_delete_months` after they were created; withdrawn,
  rejected and expired contracts `closed_delete_months` after they entered that state.
- Nothing is deleted untold: the initiator (and, once it was sent, every party's signers)
  is told `notice_days` before, so they can download it, and the deletion waits until that
  notice is `notice_days` old even when the period ran out earlier (an appliance that was
  switched off, or a shortened period, never deletes today what it announces today).
- Completed, ended and voided contracts are archived `archive_after_months` after their
  completion: only archive admins see them from then on (appliance.workflow.access).

The sweep works a batch of contracts per transaction, found by id order, so memory does not
grow with the number of contracts. A batch commits whole or not at all: a crash leaves each
contract either entirely deleted (rows, evidence, tombstone in the operation log) or entirely
there. Blobs are removed after the commit, when no row refers to them any more; a crash in
between leaves them unreferenced, and the blob sweep (appliance.workflow.sweep) removes them.
Running the sweep again finds nothing twice: it is idempotent.
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, delete, func, or_, select
from sqlalchemy.orm import Session

from appliance.audit import AuditRecord, append_events
from appliance.db import transaction
from appliance.models import (
    Contract,
    ContractState,
    DocumentVersion,
    EvidenceEvent,
    Party,
    SealApproval,
    SignatureField,
    User,
    VerificationCode,
)
from appliance.notify import notify_user
from appliance.workflow.context import WorkflowContext
from appliance.workflow.notices import contract_link, notify_everyone
from appliance.workflow.store import operation_record, record_evidence
from appliance.workflow.sweep import referenced_blobs

log = logging.getLogger(__name__)

BATCH = 200
"""Contracts per transaction: small enough to hold SQLite's write lock only briefly."""

CLOSED = (ContractState.WITHDRAWN, ContractState.REJECTED, ContractState.EXPIRED)
FINISHED = (ContractState.COMPLETED, ContractState.ENDED, ContractState.VOIDED)


class Step(StrEnum):
    NOTIFY = "notify"
    DELETE = "delete"
    ARCHIVE = "archive"


@dataclass(frozen=True)
class RetentionStep:
    """One thing the sweep does (in a dry run: would do) to one contract."""

    step: Step
    contract_id: int
    state: ContractState
    due: datetime
    """When its period ran out (for a notice: when the deletion is due)."""


@dataclass(frozen=True)
class RetentionReport:
    notified: int
    deleted: int
    archived: int
    blobs_removed: int


def sweep_retention(
    ctx: WorkflowContext,
    *,
    dry_run: bool = False,
    on_step: Callable[[RetentionStep], None] | None = None,
    batch: int = BATCH,
) -> RetentionReport:
    """Tell, delete and archive what the retention periods say is due; `on_step` hears of each
    step as it is done (a dry run only lists them and changes nothing)."""
    now = ctx.clock.now()
    rules = _Rules(ctx, now)
    seen = on_step or (lambda _step: None)
    notified = _notify(ctx, rules, dry_run, seen, batch)
    deleted, blobs_removed = _delete(ctx, rules, dry_run, seen, batch)
    archived = _archive(ctx, rules, dry_run, seen, batch)
    return RetentionReport(notified, deleted, archived, blobs_removed)


def months_before(moment: datetime, months: int) -> datetime:
    """`moment` moved back by whole calendar months (the 31st becomes the month's last day)."""
    month_index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(month_index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def months_after(moment: datetime, months: int) -> datetime:
    return months_before(moment, -months)


class _Rules:
    """The retention periods as SQL conditions at one moment."""

    def __init__(self, ctx: WorkflowContext, now: datetime) -> None:
        retention = ctx.config.retention
        self.now = now
        self.notice = timedelta(days=retention.notice_days)
        self.draft_months = retention.draft_delete_months
        self.closed_months = retention.closed_delete_months
        self.archive_months = retention.archive_after_months

    def deletable_by(self, moment: datetime) -> ColumnElement[bool]:
        """The contract's deletion period has run out at `moment`."""
        return or_(
            and_(
                Contract.state == ContractState.DRAFT,
                Contract.created_at <= months_before(moment, self.draft_months),
            ),
            and_(
                Contract.state.in_(CLOSED),
                Contract.state_changed_at <= months_before(moment, self.closed_months),
            ),
        )

    def deletion_due(self, contract: Contract) -> datetime:
        if contract.state is ContractState.DRAFT:
            return months_after(contract.created_at, self.draft_months)
        return months_after(contract.state_changed_at, self.closed_months)

    def archivable(self) -> ColumnElement[bool]:
        finished_at = func.coalesce(Contract.completed_at, Contract.state_changed_at)
        return and_(
            Contract.state.in_(FINISHED),
            Contract.archived_at.is_(None),
            finished_at <= months_before(self.now, self.archive_months),
        )


def _notify(
    ctx: WorkflowContext, rules: _Rules, dry_run: bool, seen: Callable[[RetentionStep], None], batch: int
) -> int:
    due_soon = and_(rules.deletable_by(rules.now + rules.notice), Contract.deletion_noticed_at.is_(None))
    told = 0
    for ids in _batches(ctx, due_soon, batch):
        with _session(ctx, dry_run) as session:
            logged = []
            contracts = _matching(session, ids, due_soon, lock=not dry_run)
            # held for the batch: the session's identity map keeps only weak references, and
            # the same few initiators would otherwise be read again for each contract
            initiators = _people(session, {c.initiator_id for c in contracts})
            for contract in contracts:
                deletes_on = max(rules.deletion_due(contract), rules.now + rules.notice)
                seen(RetentionStep(Step.NOTIFY, contract.id, contract.state, deletes_on))
                told += 1
                if dry_run:
                    continue
                # what this batch adds is written once, at its end, not before each read
                with session.no_autoflush:
                    _tell_deletion(ctx, session, contract, deletes_on, initiators.get(contract.initiator_id))
                contract.deletion_noticed_at = rules.now
                logged.append(
                    _record(session, contract, "deletion_announced", rules.now, deletes_on=deletes_on)
                )
            if logged:
                append_events(session, logged)
    return told


def _record(
    session: Session, contract: Contract, action: str, now: datetime, **facts: datetime
) -> AuditRecord:
    """The contract's evidence now; its operation log record returned, for one write per batch."""
    details = {key: value.isoformat() for key, value in facts.items()}
    record_evidence(session, contract, action, actor=None, client=None, now=now, details=details)
    return operation_record(contract, action, actor=None, client=None, now=now, details=details)


def _people(session: Session, ids: set[int]) -> dict[int, User]:
    return {user.id: user for user in session.scalars(select(User).where(User.id.in_(ids)))}


def _tell_deletion(
    ctx: WorkflowContext, session: Session, contract: Contract, deletes_on: datetime, initiator: User | None
) -> None:
    facts = {"deletes_on": deletes_on.isoformat(), "state": contract.state.value}
    if contract.state is ContractState.DRAFT:
        # the parties of a draft never heard of it: only its author is told
        if initiator is not None:
            params = {"title": contract.title, "link": contract_link(ctx, contract), **facts}
            notify_user(
                session, initiator, "contract_deletion_due", params, now=ctx.clock.now(), mail=ctx.mail
            )
        return
    notify_everyone(ctx, session, contract, "contract_deletion_due", facts)


def _delete(
    ctx: WorkflowContext, rules: _Rules, dry_run: bool, seen: Callable[[RetentionStep], None], batch: int
) -> tuple[int, int]:
    due = and_(
        rules.deletable_by(rules.now),
        Contract.deletion_noticed_at.is_not(None),
        Contract.deletion_noticed_at <= rules.now - rules.notice,
    )
    deleted = blobs_removed = 0
    for ids in _batches(ctx, due, batch):
        with _session(ctx, dry_run) as session:
            contracts = _matching(session, ids, due, lock=not dry_run)
            for contract in contracts:
                seen(RetentionStep(Step.DELETE, contract.id, contract.state, rules.deletion_due(contract)))
            deleted += len(contracts)
            if dry_run:
                continue
            blobs = _delete_rows(session, contracts, rules.now)
        blobs_removed += _remove_unreferenced(ctx, blobs)
    return deleted, blobs_removed


def _delete_rows(session: Session, contracts: Sequence[Contract], now: datetime) -> set[str]:
    """Delete the contracts with everything that hangs off them, leaving a tombstone each in
    the operation log; returns the names of the blobs they used."""
    ids = [c.id for c in contracts]
    versions = session.execute(
        select(DocumentVersion.contract_id, DocumentVersion.sha256)
        .where(DocumentVersion.contract_id.in_(ids))
        .order_by(DocumentVersion.contract_id, DocumentVersion.number)
    ).all()
    documents: dict[int, list[str]] = {}
    for contract_id, sha256 in versions:
        documents.setdefault(contract_id, []).append(sha256)
    blobs = {sha256 for _, sha256 in versions}
    blobs.update(c.completion_sha256 for c in contracts if c.completion_sha256)
    tombstones = [
        operation_record(
            contract,
            "deleted",
            actor=None,
            client=None,
            now=now,
            details={
                "reason": "retention",
                "state": contract.state.value,
                "created_at": contract.created_at.isoformat(),
                "state_changed_at": contract.state_changed_at.isoformat(),
                "documents": documents.get(contract.id, []),
            },
        )
        for contract in contracts
    ]
    append_events(session, tombstones)
    party_ids = select(Party.id).where(Party.contract_id.in_(ids)).scalar_subquery()
    # children first: the same order on SQLite and PostgreSQL, whatever their cascades
    for statement in (
        delete(VerificationCode).where(VerificationCode.contract_id.in_(ids)),
        delete(SealApproval).where(SealApproval.contract_id.in_(ids)),
        delete(EvidenceEvent).where(EvidenceEvent.contract_id.in_(ids)),
        delete(DocumentVersion).where(DocumentVersion.contract_id.in_(ids)),
        delete(SignatureField).where(SignatureField.party_id.in_(party_ids)),
        delete(Party).where(Party.contract_id.in_(ids)),
        delete(Contract).where(Contract.id.in_(ids)),
    ):
        session.execute(statement.execution_options(synchronize_session=False))
    return blobs


def _remove_unreferenced(ctx: WorkflowContext, names: set[str]) -> int:
    """Remove the blobs among `names` that no other contract or seal uses (after the commit)."""
    if not names:
        return 0
    with ctx.sessions() as session:
        still_used = referenced_blobs(session, sorted(names))
    removed = 0
    for name in sorted(names - still_used):
        ctx.blobs.delete(name)
        removed += 1
    return removed


def _archive(
    ctx: WorkflowContext, rules: _Rules, dry_run: bool, seen: Callable[[RetentionStep], None], batch: int
) -> int:
    due = rules.archivable()
    archived = 0
    for ids in _batches(ctx, due, batch):
        with _session(ctx, dry_run) as session:
            logged = []
            for contract in _matching(session, ids, due, lock=not dry_run):
                finished_at = contract.completed_at or contract.state_changed_at
                seen(
                    RetentionStep(
                        Step.ARCHIVE,
                        contract.id,
                        contract.state,
                        months_after(finished_at, rules.archive_months),
                    )
                )
                archived += 1
                if dry_run:
                    continue
                contract.archived_at = rules.now
                logged.append(_record(session, contract, "archived", rules.now))
            if logged:
                append_events(session, logged)
    return archived


def _batches(ctx: WorkflowContext, condition: ColumnElement[bool], size: int) -> Iterator[list[int]]:
    """The ids matching `condition`, `size` at a time in id order, read afresh for each batch.

    Each batch starts after the last id of the one before, whether the caller changed those
    contracts or skipped them, so none is handed out twice.
    """
    after = 0
    while True:
        with ctx.sessions() as session:
            ids = list(
                session.scalars(
                    select(Contract.id)
                    .where(condition, Contract.id > after)
                    .order_by(Contract.id)
                    .limit(size)
                )
            )
        if not ids:
            return
        yield ids
        after = ids[-1]


def _session(ctx: WorkflowContext, dry_run: bool) -> AbstractContextManager[Session]:
    """A write transaction, or for a dry run a session that changes nothing and locks nothing."""
    return ctx.sessions() if dry_run else transaction(ctx.sessions)


def _matching(
    session: Session, ids: list[int], condition: ColumnElement[bool], *, lock: bool
) -> Sequence[Contract]:
    """The contracts among `ids` that still match `condition`, locked for a change: one may
    have moved on (a draft sent, a contract signed) since its id was listed."""
    query = select(Contract).where(Contract.id.in_(ids), condition).order_by(Contract.id)
    return session.scalars(query.with_for_update() if lock else query).all()
