"""The contract state machine: one table of the transitions there are, and who makes them.

`pending_approval` sits between draft and signing for contracts whose seals need approval
first (appliance.workflow.approvals). Every transition goes through `next_state`, which
refuses anything not in the table with InvalidState (a Conflict) that names the state.
"""

from __future__ import annotations

from enum import StrEnum

from appliance.models import Contract, ContractState
from appliance.workflow.errors import InvalidState


class Transition(StrEnum):
    SEND = "send"
    SUBMIT = "submit"
    """Sent, but a seal's approvers decide first."""
    APPROVE = "approve"
    """The last approval: out for signing."""
    COMPLETE = "complete"
    WITHDRAW = "withdraw"
    REJECT = "reject"
    EXPIRE = "expire"
    VOID = "void"
    END = "end"


S = ContractState
TRANSITIONS: dict[tuple[ContractState, Transition], ContractState] = {
    (S.DRAFT, Transition.SEND): S.SIGNING,
    (S.DRAFT, Transition.SUBMIT): S.PENDING_APPROVAL,
    (S.PENDING_APPROVAL, Transition.APPROVE): S.SIGNING,
    (S.PENDING_APPROVAL, Transition.REJECT): S.REJECTED,
    (S.PENDING_APPROVAL, Transition.WITHDRAW): S.WITHDRAWN,
    (S.PENDING_APPROVAL, Transition.EXPIRE): S.EXPIRED,
    (S.SIGNING, Transition.COMPLETE): S.COMPLETED,
    (S.SIGNING, Transition.WITHDRAW): S.WITHDRAWN,
    (S.SIGNING, Transition.REJECT): S.REJECTED,
    (S.SIGNING, Transition.EXPIRE): S.EXPIRED,
    (S.COMPLETED, Transition.VOID): S.VOIDED,
    (S.COMPLETED, Transition.END): S.ENDED,
}

EVIDENCE_ACTION = {
    Transition.SEND: "sent",
    Transition.SUBMIT: "submitted_for_approval",
    Transition.APPROVE: "approved",
    Transition.COMPLETE: "completed",
    Transition.WITHDRAW: "withdrawn",
    Transition.REJECT: "rejected",
    Transition.EXPIRE: "expired",
    Transition.VOID: "voided",
    Transition.END: "ended",
}

_STATE_WORDS = {
    S.DRAFT: "is still a draft",
    S.PENDING_APPROVAL: "is waiting for a seal approval",
    S.SIGNING: "is out for signing",
    S.COMPLETED: "is completed",
    S.WITHDRAWN: "was withdrawn",
    S.REJECTED: "was rejected",
    S.EXPIRED: "has expired",
    S.VOIDED: "was voided",
    S.ENDED: "was ended",
}


def describe(state: ContractState) -> str:
    return _STATE_WORDS[state]


def next_state(contract: Contract, transition: Transition) -> ContractState:
    """The state `transition` leads to from the contract's state, or InvalidState."""
    target = TRANSITIONS.get((contract.state, transition))
    if target is None:
        raise InvalidState(
            f"The contract {describe(contract.state)}, so it cannot be {EVIDENCE_ACTION[transition]} now."
        )
    return target


def allowed(state: ContractState, transition: Transition) -> bool:
    return (state, transition) in TRANSITIONS
