"""The appliance applying a seal itself, where a standing authorisation allows it
(appliance.workflow.seal_policy).

When a step leaves such a seal's party to sign (a contract sent, its last approval given, an
earlier party signed), the request that made the step applies it once its answer is sent
(`seal_and_complete_or_log`); the contract-deadlines job applies what a request could not
(`apply_due_automatic_seals`). The seal is applied as a keeper's signature is
(appliance.workflow.signatures: planned, signed outside any transaction, recorded under the
contract's row lock) with no actor and no code; the evidence and the seal's usage log say
what authorised it. A seal that cannot be applied (its certificate expired, say) stays
pending for its keepers, who are told like for any seal.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.db import transaction
from appliance.errors import ApplianceError
from appliance.models import Contract, ContractState, Party, PartyKind, PartyStatus, SealAutomation
from appliance.workflow.completion import issue_completion_certificate_or_log
from appliance.workflow.context import WorkflowContext
from appliance.workflow.drafts import MAX_PARTIES
from appliance.workflow.seal_policy import AutomaticFor, automatic_authorisation
from appliance.workflow.signatures import (
    append_signature,
    plan_signature,
    plan_still_holds,
    seal_key_label,
    sign_to_blob,
)
from appliance.workflow.store import lock_contract
from appliance.workflow.sweep import discard_unreferenced_blob

log = logging.getLogger(__name__)

_SIGN_ATTEMPTS = 3
"""Tries of one seal when other parties' signatures keep landing first (parallel routing)."""


def apply_automatic_seals(ctx: WorkflowContext, contract_id: int) -> int:
    """Apply every seal of the contract that is due and authorised to be applied
    automatically, including those whose turn an earlier one starts; how many were applied."""
    applied = 0
    for _ in range(MAX_PARTIES):
        party_id = _next_due(ctx, contract_id)
        if party_id is None or not _apply(ctx, contract_id, party_id):
            return applied
        applied += 1
    return applied


def seal_and_complete_or_log(ctx: WorkflowContext, contract_id: int) -> None:
    """What follows a step's answer: its automatic seals, then the certificate of completion
    if the contract completed. Nobody is left to see an error: it is logged, and the job tries
    again."""
    try:
        apply_automatic_seals(ctx, contract_id)
    except ApplianceError as failure:
        log.warning("contract %s: a seal could not be applied automatically: %s", contract_id, failure.detail)
    except Exception:
        log.exception("contract %s: a seal could not be applied automatically", contract_id)
    issue_completion_certificate_or_log(ctx, contract_id)


def apply_due_automatic_seals(ctx: WorkflowContext) -> int:
    """The job's part: seals due for automatic application that no request applied."""
    with ctx.sessions() as session:
        contract_ids = list(
            session.scalars(
                select(Contract.id)
                .join(Party, Party.contract_id == Contract.id)
                .join(SealAutomation, SealAutomation.seal_id == Party.seal_id)
                .where(Contract.state == ContractState.SIGNING, Party.status == PartyStatus.PENDING)
                .distinct()
                .order_by(Contract.id)
            )
        )
    applied = 0
    for contract_id in contract_ids:
        try:
            applied += apply_automatic_seals(ctx, contract_id)
        except Exception:
            log.exception("contract %s: a seal could not be applied automatically", contract_id)
    return applied


def _next_due(ctx: WorkflowContext, contract_id: int) -> int | None:
    with ctx.sessions() as session:
        contract = session.get(Contract, contract_id)
        if contract is None or contract.state is not ContractState.SIGNING:
            return None
        for party in contract.parties:
            if party.status is PartyStatus.PENDING and automatic_authorisation(session, contract, party):
                return party.id
        return None


def _apply(ctx: WorkflowContext, contract_id: int, party_id: int) -> bool:
    """Apply one seal; False when it is no longer due (a keeper applied it meanwhile, say)."""
    written: list[str] = []
    try:
        for _attempt in range(_SIGN_ATTEMPTS):
            with transaction(ctx.sessions) as session:
                due = _due(ctx, session, lock_contract(session, contract_id), party_id)
                if due is None:
                    return False
                party, authorisation, key_label = due
                plan = plan_signature(ctx, session, party.contract, party, key_label)
            signed = sign_to_blob(ctx, plan, written)
            with transaction(ctx.sessions) as session:
                contract = lock_contract(session, contract_id)
                due = _due(ctx, session, contract, party_id)
                if due is None:
                    return False
                party, authorisation, key_label = due
                if not plan_still_holds(contract, plan, key_label):
                    continue  # another party signed first: seal the new version
                append_signature(
                    ctx,
                    session,
                    contract,
                    party,
                    plan,
                    signed,
                    actor=None,
                    client=None,
                    now=ctx.clock.now(),
                    automatic=authorisation,
                )
            written.remove(signed.sha256)
            return True
        return False  # the job tries again
    finally:
        for sha256 in written:
            discard_unreferenced_blob(ctx, sha256)


def _due(
    ctx: WorkflowContext, session: Session, contract: Contract, party_id: int
) -> tuple[Party, AutomaticFor, str] | None:
    """The party, what authorises sealing it, and the seal's key; None when it is not due."""
    if contract.state is not ContractState.SIGNING:
        return None
    party = next((p for p in contract.parties if p.id == party_id), None)
    if party is None or party.kind is not PartyKind.SEAL or party.status is not PartyStatus.PENDING:
        return None
    authorisation = automatic_authorisation(session, contract, party)
    if authorisation is None:
        return None
    return party, authorisation, seal_key_label(session, party, ctx.clock.now())
