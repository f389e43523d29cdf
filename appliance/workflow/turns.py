"""A contract goes out for signing: whose turn it is first, their notices and the evidence."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from appliance.auth.records import ClientInfo
from appliance.models import Contract, ContractState, PartyStatus, Routing, User
from appliance.workflow.context import WorkflowContext
from appliance.workflow.notices import notify_turn
from appliance.workflow.store import current_version, record


def start_signing(
    ctx: WorkflowContext,
    session: Session,
    contract: Contract,
    target: ContractState,
    *,
    actor: User,
    client: ClientInfo,
    now: datetime,
    action: str,
) -> None:
    """Put the contract in `target` (signing) and ask the first parties in routing order (all,
    in parallel routing); `action` names the step in the evidence ("sent", "approved")."""
    contract.state, contract.state_changed_at, contract.updated_at = target, now, now
    first = min(p.routing_order for p in contract.parties)
    for party in contract.parties:
        starts = contract.routing is Routing.PARALLEL or party.routing_order == first
        party.status = PartyStatus.PENDING if starts else PartyStatus.WAITING
    session.flush()
    notify_turn(ctx, session, contract, [p for p in contract.parties if p.status is PartyStatus.PENDING])
    record(
        session,
        contract,
        action,
        actor=actor,
        client=client,
        now=now,
        details={"document_sha256": current_version(contract).sha256, "parties": len(contract.parties)},
    )
