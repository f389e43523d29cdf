"""Ending a contract other than by completing it: withdraw, reject, expire, end; and reminding
the parties whose turn it is, by the initiator or by the deadline job. (Voiding is a contract
of its own: appliance.workflow.voiding.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from appliance.auth.records import ClientInfo, Principal
from appliance.db import transaction
from appliance.errors import Forbidden, InvalidInput, RateLimited
from appliance.models import (
    ApprovalStatus,
    Contract,
    ContractState,
    PartyStatus,
    SealApproval,
    User,
)
from appliance.notify import notify_user
from appliance.permissions import Action, scope_of
from appliance.workflow.access import active_user, load_visible, may_act_for, require_initiator
from appliance.workflow.context import WorkflowContext
from appliance.workflow.errors import InvalidState
from appliance.workflow.notices import contract_link, notify_everyone, signers_of
from appliance.workflow.states import EVIDENCE_ACTION, Transition, next_state
from appliance.workflow.store import find_party, lock_contract, record
from appliance.workflow.views import ContractView, contract_view

MAX_REASON = 1000
_OPEN_STATES = (ContractState.PENDING_APPROVAL, ContractState.SIGNING)
OPEN_APPROVALS = (ApprovalStatus.WAITING, ApprovalStatus.PENDING)
REMIND_INTERVAL = timedelta(hours=1)
"""An initiator's reminders are at least this far apart, so parties are not flooded."""


def withdraw_contract(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, contract_id: int, reason: str
) -> ContractView:
    def initiator_only(session: Session, user: User, contract: Contract) -> dict[str, object]:
        require_initiator(user, contract)
        contract.closing_reason = reason
        return {}

    reason = checked_reason(reason)
    return _close_as(ctx, principal, client, contract_id, Transition.WITHDRAW, reason, initiator_only)


def reject_contract(
    ctx: WorkflowContext,
    principal: Principal,
    client: ClientInfo,
    contract_id: int,
    party_id: int,
    reason: str,
) -> ContractView:
    def the_party_in_turn(session: Session, user: User, contract: Contract) -> dict[str, object]:
        party = find_party(contract, party_id)
        if not may_act_for(session, user, party):
            raise Forbidden("You do not sign for this party, so you cannot reject for it.")
        if contract.state in _OPEN_STATES and party.status is not PartyStatus.PENDING:
            raise InvalidState("Only a party whose turn it is can reject the contract.")
        party.status, party.reason = PartyStatus.REJECTED, reason
        if party.user_id is None:
            party.user_id = user.id  # the seal keeper who rejected for the seal
        return {"party_id": party.id}

    reason = checked_reason(reason)
    return _close_as(ctx, principal, client, contract_id, Transition.REJECT, reason, the_party_in_turn)


def end_contract(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, contract_id: int, reason: str
) -> ContractView:
    """Terminate a completed contract: its initiator or an org admin of its organisation."""

    def initiator_or_org_admin(session: Session, user: User, contract: Contract) -> dict[str, object]:
        org_admin = (
            scope_of(user.role_set(), Action.END_CONTRACTS) is not None
            and user.organisation_id == contract.organisation_id
        )
        if contract.initiator_id != user.id and not org_admin:
            raise Forbidden(
                "Only the initiator or an admin of the initiator's organisation can end a contract."
            )
        contract.closing_reason = reason
        return {}

    reason = checked_reason(reason)
    return _close_as(ctx, principal, client, contract_id, Transition.END, reason, initiator_or_org_admin)


_NOTICE = {
    Transition.WITHDRAW: "contract_withdrawn",
    Transition.REJECT: "contract_rejected",
    Transition.END: "contract_ended",
}


def _close_as(
    ctx: WorkflowContext,
    principal: Principal,
    client: ClientInfo,
    contract_id: int,
    transition: Transition,
    reason: str,
    authorise: Callable[[Session, User, Contract], dict[str, object]],
) -> ContractView:
    """A person closes the contract: `authorise` refuses (or records who) before the state changes."""
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        user = active_user(session, principal.user_id)
        contract = load_visible(session, user, contract_id, lock=True)
        details = authorise(session, user, contract)
        close_contract(session, contract, transition, user, client, now, reason, **details)
        notify_everyone(
            ctx,
            session,
            contract,
            _NOTICE[transition],
            {"actor": user.display_name, "reason": reason},
            skip_user_id=user.id,
        )
        return contract_view(session, contract, user)


@dataclass(frozen=True)
class DueReport:
    expired: int
    reminded: int


def expire_and_remind(ctx: WorkflowContext) -> DueReport:
    """The scheduled job: expire contracts past their deadline, remind those close to it."""
    now = ctx.clock.now()
    expired = reminded = 0
    for contract_id in _due_ids(ctx, _OPEN_STATES, Contract.deadline <= now):
        with transaction(ctx.sessions) as session:
            contract = lock_contract(session, contract_id)
            if contract.state in _OPEN_STATES and contract.deadline and contract.deadline <= now:
                close_contract(session, contract, Transition.EXPIRE, None, None, now, None)
                notify_everyone(ctx, session, contract, "contract_expired", {})
                expired += 1
    window = timedelta(days=ctx.config.contracts.reminder_days)
    for contract_id in _due_ids(ctx, (ContractState.SIGNING,), Contract.deadline <= now + window):
        with transaction(ctx.sessions) as session:
            contract = lock_contract(session, contract_id)
            if contract.state is not ContractState.SIGNING or contract.deadline is None:
                continue
            # once inside the window: a reminder the initiator sent before it does not count
            if (
                contract.last_reminder_at is not None
                and contract.last_reminder_at >= contract.deadline - window
            ):
                continue
            _remind_pending(ctx, session, contract, now)
            record(session, contract, "reminded", actor=None, client=None, now=now)
            reminded += 1
    return DueReport(expired, reminded)


def remind_parties(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, contract_id: int
) -> ContractView:
    """The initiator reminds the parties whose turn it is; at most once per REMIND_INTERVAL.

    :raises InvalidState: the contract is not out for signing.
    :raises RateLimited: a reminder went out less than REMIND_INTERVAL ago.
    """
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        user = active_user(session, principal.user_id)
        contract = load_visible(session, user, contract_id, lock=True)
        require_initiator(user, contract)
        if contract.state is not ContractState.SIGNING:
            raise InvalidState("Only a contract out for signing can be reminded.")
        if contract.last_reminder_at is not None and now < contract.last_reminder_at + REMIND_INTERVAL:
            raise RateLimited(
                "The parties were reminded a short while ago; remind them again later.",
                retry_at=contract.last_reminder_at + REMIND_INTERVAL,
            )
        _remind_pending(ctx, session, contract, now)
        record(session, contract, "reminded", actor=user, client=client, now=now)
        return contract_view(session, contract, user)


def _remind_pending(ctx: WorkflowContext, session: Session, contract: Contract, now: datetime) -> None:
    contract.last_reminder_at = now
    for party in contract.parties:
        if party.status is PartyStatus.PENDING:
            for user in signers_of(session, party):
                _remind(ctx, session, contract, user, now)


def _remind(ctx: WorkflowContext, session: Session, contract: Contract, user: User, now: datetime) -> None:
    assert contract.deadline is not None
    notify_user(
        session,
        user,
        "contract_reminder",
        {
            "title": contract.title,
            "deadline": contract.deadline.isoformat(),
            "link": contract_link(ctx, contract),
        },
        now=now,
        mail=ctx.mail,
    )


def _due_ids(
    ctx: WorkflowContext, states: tuple[ContractState, ...], *conditions: ColumnElement[bool]
) -> list[int]:
    with ctx.sessions() as session:
        return list(
            session.scalars(
                select(Contract.id).where(Contract.state.in_(states), *conditions).order_by(Contract.id)
            )
        )


def close_contract(
    session: Session,
    contract: Contract,
    transition: Transition,
    actor: User | None,
    client: ClientInfo | None,
    now: datetime,
    reason: str | None,
    **details: object,
) -> None:
    """Move the contract by `transition` and record it; approvals left open are cancelled."""
    was = contract.state
    contract.state = next_state(contract, transition)
    contract.state_changed_at = contract.updated_at = now
    if was is ContractState.PENDING_APPROVAL:
        cancel_open_approvals(session, contract, now)
    session.flush()
    facts: dict[str, object] = {"reason": reason} if reason else {}
    facts.update(details)
    record(session, contract, EVIDENCE_ACTION[transition], actor=actor, client=client, now=now, details=facts)


def checked_reason(reason: str) -> str:
    """The reason given for closing a contract, trimmed.

    :raises InvalidInput: empty, too long, or not text.
    """
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON or not all(line.isprintable() for line in reason.splitlines()):
        raise InvalidInput(f"Give a reason of 1 to {MAX_REASON} characters.")
    return reason


def cancel_open_approvals(session: Session, contract: Contract, now: datetime) -> None:
    """The contract left `pending_approval` other than by approval: nothing more to decide."""
    session.execute(
        update(SealApproval)
        .where(SealApproval.contract_id == contract.id, SealApproval.status.in_(OPEN_APPROVALS))
        .values(status=ApprovalStatus.CANCELLED, decided_at=now)
    )
