"""Renewing the archive timestamps of finished contracts, so they validate for decades.

A finished contract (completed, ended, voided; archived or not) ends with a document
timestamp (PAdES B-LTA). The file can be validated only while the certificates behind its
newest timestamp are valid, so before the earliest of them expires (config
`retention.timestamp_renew_days` ahead), or at once when that timestamp uses a digest no
longer trusted, a new document timestamp goes over the file with fresh validation data
(appliance.signing.archive). The result is the contract's next document version, recorded in
its evidence and the operation log.

Each contract remembers when it is next due (`timestamps_renew_at`), so a run reads only the
files that are due, and a limited number of them: a large archive is worked through over
several runs. Like a signature, a renewal stores its file before the transaction that records
it, and discards it when the contract moved on meanwhile; a failure leaves nothing but a log line.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select

from appliance.db import transaction
from appliance.errors import ApplianceError
from appliance.models import Contract, DocumentVersion
from appliance.pki.bootstrap import renew_tsa_ahead
from appliance.pki.ca import make_context
from appliance.pki.crl import refresh_own_crls
from appliance.signing.archive import Horizon, renew_archive_timestamp, timestamp_horizon
from appliance.signing.documents import load_timestamper
from appliance.signing.trust import load_trust_material
from appliance.workflow.context import WorkflowContext
from appliance.workflow.retention import FINISHED
from appliance.workflow.store import current_version, lock_contract, record
from appliance.workflow.sweep import discard_unreferenced_blob

log = logging.getLogger(__name__)

PER_RUN = 200
"""Files read per run at most; the rest wait for the next run (the job runs daily)."""


@dataclass(frozen=True)
class RenewalReport:
    checked: int
    """Due contracts whose file was read."""
    renewed: int
    failed: int


class TimestampAuthorityEnding(ApplianceError):
    """The timestamp authority's own certificate ends too soon for a renewal to help."""


def renew_archive_timestamps(ctx: WorkflowContext, *, limit: int = PER_RUN) -> RenewalReport:
    """Renew what is due, up to `limit` contracts; each renewal commits on its own."""
    now = ctx.clock.now()
    ahead = timedelta(days=ctx.config.retention.timestamp_renew_days)
    with ctx.sessions() as session:
        due = list(
            session.scalars(
                select(Contract.id)
                .where(
                    Contract.state.in_(FINISHED),
                    or_(Contract.timestamps_renew_at.is_(None), Contract.timestamps_renew_at <= now),
                )
                .order_by(
                    Contract.timestamps_renew_at.is_not(None), Contract.timestamps_renew_at, Contract.id
                )
                .limit(limit)
            )
        )
    if not due:
        return RenewalReport(0, 0, 0)
    _prepare_pki(ctx, now + 2 * ahead)
    renewed = failed = 0
    for contract_id in due:
        try:
            renewed += _renew_if_due(ctx, contract_id, now, ahead)
        except ApplianceError as exc:
            failed += 1
            log.warning("contract %s: the archive timestamp was not renewed: %s", contract_id, exc)
    return RenewalReport(len(due), renewed, failed)


def _prepare_pki(ctx: WorkflowContext, needed_until: datetime) -> None:
    """A TSA certificate that outlasts the renewal, and CRLs current now (the DSS gets them)."""
    assert ctx.signing.custody is not None  # the job runs only with an HSM
    pki = make_context(ctx.signing.custody, ctx.config, ctx.clock)
    with transaction(ctx.sessions) as session:
        if renew_tsa_ahead(session, pki, needed_until) is not None:
            log.info("issued a new TSA certificate for renewing archive timestamps")
        refresh_own_crls(session, pki)


def _renew_if_due(ctx: WorkflowContext, contract_id: int, now: datetime, ahead: timedelta) -> bool:
    with ctx.sessions() as session:
        contract = session.get(Contract, contract_id)
        if contract is None or contract.state not in FINISHED:
            return False
        version = current_version(contract)
        sha256, number = version.sha256, version.number
        trust = load_trust_material(session)
        timestamper = load_timestamper(session, ctx.signing)
    with ctx.blobs.open(sha256) as stream:
        horizon = timestamp_horizon(stream, trust, ctx.config.retention.weak_digests)
    if horizon.weak_digest is None and horizon.until - ahead > now:
        _remember(ctx, contract_id, sha256, horizon.until - ahead)
        return False
    if timestamper is None:
        raise TimestampAuthorityEnding("no timestamp authority is configured (tsa.mode: none)")
    with tempfile.TemporaryFile() as renewed, ctx.blobs.open(sha256) as source:
        document = renew_archive_timestamp(
            source, renewed, trust=trust, timestamper=timestamper, clock=ctx.clock
        )
        renewed.seek(0)
        new_horizon = timestamp_horizon(renewed, trust, ())
        if new_horizon.until - ahead <= now:
            raise TimestampAuthorityEnding(
                f"the timestamp authority's certificate chain ends on {new_horizon.until:%Y-%m-%d}; "
                "renew the appliance's CA (appliance pki init) so a new TSA certificate outlasts it"
            )
        renewed.seek(0)
        stored = ctx.blobs.put(renewed)
    if not _record(ctx, contract_id, sha256, number, stored, document.size, horizon, new_horizon, ahead):
        discard_unreferenced_blob(ctx, stored)
        return False
    return True


def _remember(ctx: WorkflowContext, contract_id: int, sha256: str, renew_at: datetime) -> None:
    with transaction(ctx.sessions) as session:
        contract = lock_contract(session, contract_id)
        if current_version(contract).sha256 == sha256:
            contract.timestamps_renew_at = renew_at


def _record(
    ctx: WorkflowContext,
    contract_id: int,
    previous_sha256: str,
    previous_number: int,
    sha256: str,
    size: int,
    old: Horizon,
    new: Horizon,
    ahead: timedelta,
) -> bool:
    """The renewed file as the next version, unless the contract moved on meanwhile."""
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        contract = lock_contract(session, contract_id)
        version = current_version(contract)
        if version.sha256 != previous_sha256 or version.number != previous_number:
            return False
        session.add(
            DocumentVersion(
                contract_id=contract.id,
                number=version.number + 1,
                sha256=sha256,
                size=size,
                filename=version.filename,
                page_sizes=version.page_sizes,
                produced_by_id=None,
                party_id=None,
                created_at=now,
            )
        )
        contract.timestamps_renew_at = new.until - ahead
        session.flush()
        session.expire(contract, ["versions"])
        record(
            session,
            contract,
            "archive_timestamp_renewed",
            actor=None,
            client=None,
            now=now,
            details={
                "previous_sha256": previous_sha256,
                "sha256": sha256,
                "previous_valid_until": old.until.isoformat(),
                "valid_until": new.until.isoformat(),
                "weak_digest": old.weak_digest,
                "document_timestamps": new.document_timestamps,
            },
        )
    return True
