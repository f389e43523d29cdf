"""Approving the use of a seal before it is applied.

An organisation admin names a seal's approvers, in order (`set_seal_approvers`): people, or
directory groups any of whose members of the organisation decides that step; a seal with
approvers requires approval. When a contract that uses such a seal is sent, it waits in
`pending_approval`: one approval row per approver of each such seal, as the approvers stood
then, the first of each seal pending and the others waiting their turn. Approvers find them
in their to-do list (`list_my_approvals`) and decide with a comment (`decide_approval`):

* an approval hands over to the seal's next approver; the last approval of the last seal
  sends the contract out for signing (parties' turns and notices as on a plain send);
* a contract whose seal the appliance applies itself (appliance.workflow.seal_policy) asks
  none of that seal's approvers;
* a rejection rejects the contract, with the comment as its reason, and cancels the other
  approvals; the initiator is told.

Each decision is an evidence event and an operation-log record; each application of a seal
is a row of the seal's usage log (appliance.workflow.seal_usage).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from appliance.auth.records import ClientInfo, Principal
from appliance.db import transaction
from appliance.errors import Conflict, Forbidden, InvalidInput, NotFound
from appliance.models import (
    ApprovalStatus,
    Contract,
    ContractState,
    PartyKind,
    PartyStatus,
    Seal,
    SealApproval,
    SealApprover,
    User,
)
from appliance.notify import notify_user
from appliance.workflow.access import active_user, admins_seal, approves_clause, load_visible, seal_colleague
from appliance.workflow.closing import OPEN_APPROVALS, close_contract
from appliance.workflow.context import WorkflowContext
from appliance.workflow.notices import contract_link
from appliance.workflow.seal_keepers import group_dn, group_members
from appliance.workflow.seal_policy import automatic_authorisation
from appliance.workflow.states import Transition, next_state
from appliance.workflow.store import current_version, log_user_action, record
from appliance.workflow.turns import start_signing
from appliance.workflow.views import ContractView, contract_view

MAX_APPROVERS = 10
MAX_COMMENT = 1000


@dataclass(frozen=True)
class ApprovalItem:
    """An approval waiting for the person's decision."""

    approval_id: int
    contract_id: int
    title: str
    seal_name: str
    initiator_name: str
    deadline: datetime | None


def set_seal_approvers(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, seal_id: int, approvers: list[str]
) -> tuple[str, ...]:
    """Replace the seal's approvers with `approvers`, in the order they decide (none: no
    approval needed). Each is a login name, or a directory group's DN (it has a "=", which no
    login name has), any of whose members of the organisation decides that step.

    Contracts already sent keep the approvers they were sent with.

    :raises NotFound: no seal of the admin's organisation with that id.
    :raises Forbidden: not the organisation's admin.
    :raises InvalidInput: one twice, too many, someone who cannot approve, a malformed DN.
    """
    now = ctx.clock.now()
    entries = [group_dn(a) if "=" in a else a for a in approvers]
    if len(entries) > MAX_APPROVERS or len(set(entries)) != len(entries):
        raise InvalidInput(f"Name up to {MAX_APPROVERS} different approvers, in the order they decide.")
    with transaction(ctx.sessions) as session:
        admin, seal = admins_seal(session, principal, seal_id)
        refusal = "has not signed in here, or cannot approve: name someone who has."
        steps = [
            SealApprover(group_dn=entry)
            if "=" in entry
            else SealApprover(user_id=seal_colleague(session, seal, entry, refusal=refusal).id)
            for entry in entries
        ]
        session.execute(delete(SealApprover).where(SealApprover.seal_id == seal.id))
        for position, step in enumerate(steps, 1):
            step.seal_id, step.position = seal.id, position
        session.add_all(steps)
        seal.requires_approval = bool(steps)
        session.flush()
        names = approver_names(session, seal.id)
        log_user_action(
            session, "seal.approvers_set", admin, client, now, "seal", seal.id, {"approvers": ",".join(names)}
        )
        return names


def approver_names(session: Session, seal_id: int) -> tuple[str, ...]:
    """The seal's approvers in order: login names, and the DNs of approving groups."""
    rows = session.execute(
        select(User.username, SealApprover.group_dn)
        .select_from(SealApprover)
        .outerjoin(User, User.id == SealApprover.user_id)
        .where(SealApprover.seal_id == seal_id)
        .order_by(SealApprover.position)
    ).all()
    return tuple(username or dn or "" for username, dn in rows)


def send_out(
    ctx: WorkflowContext,
    session: Session,
    contract: Contract,
    *,
    actor: User,
    client: ClientInfo,
    now: datetime,
) -> None:
    """Send a draft: to its seals' approvers first when a seal needs approval (every party
    waits), otherwise out for signing."""
    if not _request_approvals(ctx, session, contract, now):
        target = next_state(contract, Transition.SEND)
        start_signing(ctx, session, contract, target, actor=actor, client=client, now=now, action="sent")
        return
    contract.state = next_state(contract, Transition.SUBMIT)
    contract.state_changed_at = contract.updated_at = now
    for party in contract.parties:
        party.status = PartyStatus.WAITING
    session.flush()
    details = {"document_sha256": current_version(contract).sha256, "parties": len(contract.parties)}
    record(session, contract, "submitted_for_approval", actor=actor, client=client, now=now, details=details)


def _request_approvals(ctx: WorkflowContext, session: Session, contract: Contract, now: datetime) -> bool:
    """At sending: the approvals the contract's seals need, first ones notified. Whether any."""
    created: list[SealApproval] = []
    for party in contract.parties:
        if party.kind is not PartyKind.SEAL or party.seal_id is None:
            continue
        seal = session.get_one(Seal, party.seal_id)
        if not seal.requires_approval or automatic_authorisation(session, contract, party):
            continue
        steps = session.scalars(
            select(SealApprover).where(SealApprover.seal_id == seal.id).order_by(SealApprover.position)
        )
        for position, step in enumerate(steps, 1):
            created.append(
                SealApproval(
                    contract_id=contract.id,
                    party_id=party.id,
                    seal_id=seal.id,
                    position=position,
                    approver_id=step.user_id,
                    group_dn=step.group_dn,
                    status=ApprovalStatus.PENDING if position == 1 else ApprovalStatus.WAITING,
                    created_at=now,
                )
            )
    session.add_all(created)
    session.flush()
    for approval in created:
        if approval.status is ApprovalStatus.PENDING:
            _ask(ctx, session, contract, approval, now)
    return bool(created)


def decide_approval(
    ctx: WorkflowContext,
    principal: Principal,
    client: ClientInfo,
    contract_id: int,
    approval_id: int,
    *,
    approve: bool,
    comment: str,
) -> ContractView:
    """Approve or reject one use of a seal, with a comment (required to reject).

    :raises NotFound: no such contract or approval that the person may see.
    :raises Forbidden: the approval is someone else's.
    :raises Conflict: it is not waiting for a decision (decided, or not yet its turn).
    """
    now = ctx.clock.now()
    said = _comment(comment, required=not approve)
    with transaction(ctx.sessions) as session:
        user = active_user(session, principal.user_id)
        contract = load_visible(session, user, contract_id, lock=True)
        approval = session.get(SealApproval, approval_id)
        if approval is None or approval.contract_id != contract.id:
            raise NotFound("This contract has no approval with that id.")
        if not session.scalar(select(exists().where(SealApproval.id == approval.id, approves_clause(user)))):
            raise Forbidden("This approval is another approver's.")
        if (
            contract.state is not ContractState.PENDING_APPROVAL
            or approval.status is not ApprovalStatus.PENDING
        ):
            raise Conflict("This approval is not waiting for a decision.")
        seal = session.get_one(Seal, approval.seal_id)
        approval.approver_id = user.id  # for a group's approval: the member who decided
        approval.status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
        approval.decided_at, approval.comment = now, said
        facts: dict[str, object] = {
            "approval_id": approval.id,
            "seal_id": seal.id,
            "seal": seal.name,
            "position": approval.position,
        }
        if said:
            facts["comment"] = said
        record(
            session,
            contract,
            "seal_approved" if approve else "seal_approval_rejected",
            actor=user,
            client=client,
            now=now,
            details=facts,
        )
        if approve:
            _after_approval(ctx, session, contract, approval, user, client, now)
        else:
            _reject(ctx, session, contract, user, client, now, said or "")
        return contract_view(session, contract, user)


def list_my_approvals(ctx: WorkflowContext, principal: Principal) -> tuple[ApprovalItem, ...]:
    """The seal uses waiting for the person's decision, soonest deadline first."""
    with ctx.sessions() as session:
        user = active_user(session, principal.user_id)
        initiator = User.__table__.alias("initiator")
        rows = session.execute(
            select(
                SealApproval.id,
                Contract.id,
                Contract.title,
                Seal.name,
                initiator.c.display_name,
                Contract.deadline,
            )
            .join(Contract, Contract.id == SealApproval.contract_id)
            .join(Seal, Seal.id == SealApproval.seal_id)
            .join(initiator, initiator.c.id == Contract.initiator_id)
            .where(
                approves_clause(user),
                SealApproval.status == ApprovalStatus.PENDING,
                Contract.state == ContractState.PENDING_APPROVAL,
            )
            .order_by(Contract.deadline.is_(None), Contract.deadline, Contract.id, SealApproval.id)
        ).all()
        return tuple(ApprovalItem(*row) for row in rows)


def _after_approval(
    ctx: WorkflowContext,
    session: Session,
    contract: Contract,
    approval: SealApproval,
    approver: User,
    client: ClientInfo,
    now: datetime,
) -> None:
    following = session.scalars(
        select(SealApproval).where(
            SealApproval.party_id == approval.party_id, SealApproval.position == approval.position + 1
        )
    ).one_or_none()
    if following is not None:
        following.status = ApprovalStatus.PENDING
        _ask(ctx, session, contract, following, now)
        return
    still_open = session.scalars(
        select(SealApproval.id).where(
            SealApproval.contract_id == contract.id, SealApproval.status.in_(OPEN_APPROVALS)
        )
    ).first()
    if still_open is None:
        target = next_state(contract, Transition.APPROVE)
        start_signing(
            ctx, session, contract, target, actor=approver, client=client, now=now, action="approved"
        )


def _reject(
    ctx: WorkflowContext,
    session: Session,
    contract: Contract,
    user: User,
    client: ClientInfo,
    now: datetime,
    reason: str,
) -> None:
    contract.closing_reason = reason
    close_contract(session, contract, Transition.REJECT, user, client, now, reason)
    initiator = session.get(User, contract.initiator_id)
    if initiator is not None:
        params = {
            "title": contract.title,
            "link": contract_link(ctx, contract),
            "actor": user.display_name,
            "reason": reason,
        }
        notify_user(session, initiator, "contract_rejected", params, now=now, mail=ctx.mail)


def _ask(
    ctx: WorkflowContext, session: Session, contract: Contract, approval: SealApproval, now: datetime
) -> None:
    seal = session.get_one(Seal, approval.seal_id)
    initiator = session.get(User, contract.initiator_id)
    if approval.group_dn is not None:
        asked = group_members(session, approval.group_dn, seal.organisation_id)
    else:
        approver = session.get(User, approval.approver_id)
        asked = [approver] if approver is not None and approver.active else []
    params = {
        "title": contract.title,
        "seal": seal.name,
        "initiator": initiator.display_name if initiator else "",
        "link": contract_link(ctx, contract),
    }
    for person in asked:
        notify_user(session, person, "seal_approval_requested", params, now=now, mail=ctx.mail)


def _comment(comment: str, *, required: bool) -> str | None:
    text = (comment or "").strip()
    if required and not text:
        raise InvalidInput("Say why you reject the use of the seal.")
    if len(text) > MAX_COMMENT or not all(line.isprintable() for line in text.splitlines()):
        raise InvalidInput(f"A comment is at most {MAX_COMMENT} characters of text.")
    return text or None
