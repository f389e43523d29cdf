"""Completing a contract: the state change and notices, then a signed certificate of completion.

`complete_contract` runs inside the last signer's transaction, under the contract's row lock;
when the contract is a voiding agreement, the contract it voids becomes voided in the same
transaction. The certificate of completion is made after that commit
(`issue_completion_certificate`): rendering and signing it is the slowest part of completing
(about as long as the signature itself), and neither the contract's lock (on SQLite: the
database's write lock) nor the last signer's answer should wait for it. The web layer has a
background thread make it once that answer is made (`issue_completion_certificate_or_log`);
should that fail, or the worker stop first, the `contract-deadlines` job makes it later.
"""

from __future__ import annotations

import json
import logging
import tempfile
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.auth.records import ClientInfo
from appliance.db import transaction
from appliance.models import (
    Certificate,
    Contract,
    EvidenceEvent,
    Organisation,
    User,
)
from appliance.pki.issue import appliance_key_label
from appliance.signing.completion import CompletionFacts, CompletionParty, render_completion_certificate
from appliance.signing.documents import resolve_signer, sign_stream
from appliance.signing.pades import SignOptions
from appliance.workflow.context import WorkflowContext
from appliance.workflow.notices import notify_everyone
from appliance.workflow.states import Transition, next_state
from appliance.workflow.store import current_version, lock_contract, record
from appliance.workflow.sweep import discard_unreferenced_blob

log = logging.getLogger(__name__)


def complete_contract(
    ctx: WorkflowContext,
    session: Session,
    contract: Contract,
    actor: User | None,
    client: ClientInfo | None,
    now: datetime,
) -> None:
    """Complete `contract` (every party has signed; `actor` None: the appliance sealed last)."""
    contract.state = next_state(contract, Transition.COMPLETE)
    contract.completed_at = contract.state_changed_at = contract.updated_at = now
    session.flush()
    record(
        session,
        contract,
        "completed",
        actor=actor,
        client=client,
        now=now,
        details={"document_sha256": current_version(contract).sha256},
    )
    notify_everyone(ctx, session, contract, "contract_completed", {})
    if contract.voids_contract_id is not None:
        _void(ctx, session, contract, actor, client, now)


def issue_completion_certificate(ctx: WorkflowContext, contract_id: int) -> str | None:
    """Make the signed certificate of completion of a completed contract that has none yet;
    returns its sha256, or None when there is nothing to do."""
    with transaction(ctx.sessions) as session:
        contract = session.get(Contract, contract_id)
        if contract is None or contract.completed_at is None or contract.completion_sha256 is not None:
            return None
        facts = _facts(session, contract, contract.completed_at)
        signer = resolve_signer(session, ctx.signing, appliance_key_label(session))
    with tempfile.TemporaryFile() as rendered, tempfile.TemporaryFile() as signed:
        render_completion_certificate(facts, rendered)
        rendered.seek(0)
        sign_stream(
            ctx.signing,
            signer,
            rendered,
            signed,
            SignOptions(reason=f"Certificate of completion of contract {contract_id}", lock_document=True),
        )
        signed.seek(0)
        sha256 = ctx.blobs.put(signed)
    try:
        with transaction(ctx.sessions) as session:
            contract = lock_contract(session, contract_id)
            if contract.completion_sha256 is not None:
                raise _MadeMeanwhile
            contract.completion_sha256 = sha256
            record(
                session,
                contract,
                "completion_certificate",
                actor=None,
                client=None,
                now=ctx.clock.now(),
                details={"sha256": sha256, "signer_serial": signer.certificate.serial_number},
            )
    except BaseException:
        discard_unreferenced_blob(ctx, sha256)  # unique: it holds its own signature and time
        raise
    return sha256


def issue_completion_certificate_or_log(ctx: WorkflowContext, contract_id: int) -> None:
    """`issue_completion_certificate` for work done after an answer was sent: nobody is left to
    see an error, so a failure is logged and the deadline job makes the certificate later."""
    try:
        issue_completion_certificate(ctx, contract_id)
    except _MadeMeanwhile:
        return
    except Exception:
        log.exception("contract %s completed, but its certificate of completion failed", contract_id)


def issue_missing_completion_certificates(ctx: WorkflowContext) -> int:
    """The job's part: certificates that a request could not make right after completing."""
    with ctx.sessions() as session:
        ids = list(
            session.scalars(
                select(Contract.id).where(
                    Contract.completed_at.is_not(None), Contract.completion_sha256.is_(None)
                )
            )
        )
    made = 0
    for contract_id in ids:
        try:
            made += issue_completion_certificate(ctx, contract_id) is not None
        except _MadeMeanwhile:
            continue
    return made


class _MadeMeanwhile(Exception):
    """Another request made the certificate while this one was rendering it."""


def _facts(session: Session, contract: Contract, now: datetime) -> CompletionFacts:
    signed_events = {
        json.loads(e.details)["party_id"]: e
        for e in session.scalars(
            select(EvidenceEvent).where(
                EvidenceEvent.contract_id == contract.id, EvidenceEvent.action == "signed"
            )
        )
    }
    sent = session.scalars(
        select(EvidenceEvent.occurred_at).where(
            EvidenceEvent.contract_id == contract.id, EvidenceEvent.action == "sent"
        )
    ).first()
    parties = []
    for party in contract.parties:
        event = signed_events[party.id]
        details = json.loads(event.details)
        certificate = session.get(Certificate, party.certificate_id)
        assert certificate is not None and party.signed_at is not None  # every party has signed
        parties.append(
            CompletionParty(
                name=party.display_name,
                kind=party.kind.value,
                signed_at=party.signed_at,
                certificate_subject=certificate.subject,
                certificate_serial=certificate.serial,
                certificate_sha256=certificate.sha256_fingerprint,
                client_address=event.client_address,
                user_agent=event.user_agent,
                document_sha256_before=details["document_sha256_before"],
                document_sha256_after=details["document_sha256_after"],
            )
        )
    initiator = session.get(User, contract.initiator_id)
    organisation = session.get(Organisation, contract.organisation_id) if contract.organisation_id else None
    return CompletionFacts(
        contract_id=contract.id,
        title=contract.title,
        initiator=initiator.display_name if initiator else "",
        organisation=organisation.name if organisation else None,
        created_at=contract.created_at,
        sent_at=sent,
        completed_at=now,
        original_sha256=contract.versions[0].sha256,
        final_sha256=current_version(contract).sha256,
        parties=tuple(parties),
        evidence_head_hash=contract.evidence_last_hash,
        evidence_events=contract.evidence_last_seq,
    )


def _void(
    ctx: WorkflowContext,
    session: Session,
    agreement: Contract,
    actor: User | None,
    client: ClientInfo | None,
    now: datetime,
) -> None:
    assert agreement.voids_contract_id is not None
    original = lock_contract(session, agreement.voids_contract_id)
    original.state = next_state(original, Transition.VOID)
    original.state_changed_at = original.updated_at = now
    session.flush()
    record(
        session,
        original,
        "voided",
        actor=actor,
        client=client,
        now=now,
        details={
            "voiding_agreement_id": agreement.id,
            "voiding_agreement_sha256": current_version(agreement).sha256,
        },
    )
    notify_everyone(ctx, session, original, "contract_voided", {})
