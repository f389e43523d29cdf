"""Completing a contract: the state change, a signed certificate of completion, the notices.

Runs inside the last signer's transaction, under the contract's row lock, so a contract is
never completed without its certificate or the other way round. When the contract is a
voiding agreement, the contract it voids becomes voided in the same transaction.
"""

from __future__ import annotations

import json
import tempfile
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.auth.records import ClientInfo
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


def complete_contract(
    ctx: WorkflowContext, session: Session, contract: Contract, actor: User, client: ClientInfo, now: datetime
) -> str:
    """Complete `contract` (every party has signed); returns the sha256 of the completion blob."""
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
    contract.completion_sha256 = _signed_completion_certificate(ctx, session, contract, now)
    notify_everyone(ctx, session, contract, "contract_completed", {})
    if contract.voids_contract_id is not None:
        _void(ctx, session, contract, actor, client, now)
    return contract.completion_sha256


def _signed_completion_certificate(
    ctx: WorkflowContext, session: Session, contract: Contract, now: datetime
) -> str:
    facts = _facts(session, contract, now)
    signer = resolve_signer(session, ctx.signing, appliance_key_label(session))
    with tempfile.TemporaryFile() as rendered, tempfile.TemporaryFile() as signed:
        render_completion_certificate(facts, rendered)
        rendered.seek(0)
        sign_stream(
            ctx.signing,
            signer,
            rendered,
            signed,
            SignOptions(reason=f"Certificate of completion of contract {contract.id}", lock_document=True),
        )
        signed.seek(0)
        return ctx.blobs.put(signed)


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
    actor: User,
    client: ClientInfo,
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
