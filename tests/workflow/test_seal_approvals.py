"""Approving the use of a seal: the org admin names the approvers in order; a contract that
uses the seal waits for them (pending_approval), an approval hands over to the next approver
and the last one sends it out for signing, a rejection rejects it; each use of the seal is in
its usage log. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from appliance.errors import Conflict, Forbidden, InvalidInput, NotFound
from appliance.models import (
    ApprovalStatus,
    AuditEvent,
    Contract,
    ContractState,
    EvidenceEvent,
    Notification,
    PartyStatus,
    SealUsage,
)
from appliance.workflow import closing, queries, signatures, todo, voiding
from appliance.workflow.approvals import decide_approval, list_my_approvals, set_seal_approvers
from appliance.workflow.views import ContractView
from tests.workflow.conftest import CLIENT, WorkflowEnv

OK = "Checked against the framework agreement."


def approvals(view: ContractView) -> list[tuple[str, ApprovalStatus]]:
    return [(a.approver_name, a.status) for a in view.approvals]


def seal_party(view: ContractView) -> int:
    return next(p.id for p in view.parties if p.seal_id is not None)


def decide(
    env: WorkflowEnv, who: str, view: ContractView, *, approve: bool, comment: str = OK
) -> ContractView:
    approval = next(a for a in view.approvals if a.status is ApprovalStatus.PENDING)
    return decide_approval(
        env.ctx, env.people[who], CLIENT, view.id, approval.id, approve=approve, comment=comment
    )


def kinds_told(env: WorkflowEnv, who: str) -> list[str]:
    with env.services.sessions() as session:
        return list(
            session.scalars(
                select(Notification.kind)
                .where(Notification.user_id == env.people[who].user_id)
                .order_by(Notification.id)
            )
        )


def test_approvers_decide_in_order_then_the_keeper_seals(workflow_factory, any_db_url) -> None:
    env = workflow_factory(any_db_url)
    admin = env.people["orgadmin"]
    assert set_seal_approvers(env.ctx, admin, CLIENT, env.seal_id, ["bob", "orgadmin"]) == ("bob", "orgadmin")

    view = env.start([("seal", 1)])
    assert view.state is ContractState.PENDING_APPROVAL
    assert [p.status for p in view.parties] == [PartyStatus.WAITING]
    assert approvals(view) == [("Bob Builder", ApprovalStatus.PENDING), ("Org Admin", ApprovalStatus.WAITING)]
    assert todo.list_todo(env.ctx, env.people["keeper"]).items == ()  # not the keeper's turn yet
    with pytest.raises(Conflict):
        signatures.request_code(env.ctx, env.people["keeper"], CLIENT, view.id, seal_party(view))
    assert [(i.contract_id, i.seal_name) for i in list_my_approvals(env.ctx, env.people["bob"])] == [
        (view.id, "合同专用章")
    ]
    assert list_my_approvals(env.ctx, admin) == ()
    assert "seal_approval_requested" in kinds_told(env, "bob")
    assert "seal_approval_requested" not in kinds_told(env, "orgadmin")

    first = view.approvals[0].id
    with pytest.raises(NotFound):  # someone the contract is not visible to
        decide_approval(env.ctx, env.people["mallory"], CLIENT, view.id, first, approve=True, comment="")
    with pytest.raises(Forbidden):  # the keeper sees the contract, but the approval is bob's
        decide_approval(env.ctx, env.people["keeper"], CLIENT, view.id, first, approve=True, comment="")
    with pytest.raises(Conflict):  # the second approver's turn comes after the first's
        decide_approval(env.ctx, admin, CLIENT, view.id, view.approvals[1].id, approve=True, comment="")
    # bob is no party, yet sees the contract he approves
    assert queries.get_contract(env.ctx, env.people["bob"], CLIENT, view.id).approvals[0].yours

    view = decide(env, "bob", view, approve=True)
    assert view.state is ContractState.PENDING_APPROVAL
    assert approvals(view) == [
        ("Bob Builder", ApprovalStatus.APPROVED),
        ("Org Admin", ApprovalStatus.PENDING),
    ]
    assert "seal_approval_requested" in kinds_told(env, "orgadmin")
    with pytest.raises(Conflict):  # decided already
        decide_approval(env.ctx, env.people["bob"], CLIENT, view.id, first, approve=True, comment="")

    view = decide(env, "orgadmin", view, approve=True, comment="")
    assert view.state is ContractState.SIGNING
    assert [p.status for p in view.parties] == [PartyStatus.PENDING]
    assert "contract_to_sign" in kinds_told(env, "keeper")
    signed = env.sign("keeper", view.id, seal_party(view))
    assert signed.state is ContractState.COMPLETED

    with env.services.sessions() as session:
        usage = session.scalars(select(SealUsage).where(SealUsage.seal_id == env.seal_id)).one()
        assert (usage.contract_id, usage.applied_by_id) == (view.id, env.people["keeper"].user_id)
        assert usage.approval_ids == ",".join(str(a.id) for a in view.approvals)
        assert usage.document_sha256 == signed.versions[-1].sha256
        actions = session.scalars(
            select(EvidenceEvent.action)
            .where(EvidenceEvent.contract_id == view.id)
            .order_by(EvidenceEvent.seq)
        ).all()
        logged = session.scalars(select(AuditEvent.action).where(AuditEvent.contract_id == view.id)).all()
    assert actions[actions.index("submitted_for_approval") :] == [
        "submitted_for_approval",
        "seal_approved",
        "seal_approved",
        "approved",
        "code_sent",
        "code_verified",
        "signed",
        "completed",
    ]
    assert logged.count("contract.seal_approved") == 2


def test_a_rejected_approval_rejects_the_contract(workflow_factory, any_db_url) -> None:
    env = workflow_factory(any_db_url)
    set_seal_approvers(env.ctx, env.people["orgadmin"], CLIENT, env.seal_id, ["bob"])
    view = env.start([("alice", 1), ("seal", 2)])
    with pytest.raises(InvalidInput, match="Say why"):
        decide(env, "bob", view, approve=False, comment="  ")

    view = decide(env, "bob", view, approve=False, comment="No budget for this supplier.")
    assert (view.state, view.closing_reason) == (ContractState.REJECTED, "No budget for this supplier.")
    assert approvals(view) == [("Bob Builder", ApprovalStatus.REJECTED)]
    assert kinds_told(env, "initiator")[-1] == "contract_rejected"
    with pytest.raises(Conflict):
        signatures.request_code(env.ctx, env.people["alice"], CLIENT, view.id, view.parties[0].id)


def test_withdrawing_or_expiring_a_contract_cancels_its_open_approvals(workflow_factory) -> None:
    env = workflow_factory()
    set_seal_approvers(env.ctx, env.people["orgadmin"], CLIENT, env.seal_id, ["bob", "orgadmin"])
    withdrawn = closing.withdraw_contract(
        env.ctx, env.people["initiator"], CLIENT, env.start([("seal", 1)]).id, "wrong file"
    )
    assert withdrawn.state is ContractState.WITHDRAWN
    assert {a.status for a in withdrawn.approvals} == {ApprovalStatus.CANCELLED}

    late = env.start([("seal", 1)])
    with env.services.sessions.begin() as session:
        session.get_one(Contract, late.id).deadline = env.ctx.clock.now() - timedelta(minutes=1)
    assert closing.expire_and_remind(env.ctx).expired == 1
    expired = queries.get_contract(env.ctx, env.people["initiator"], CLIENT, late.id)
    assert expired.state is ContractState.EXPIRED
    assert {a.status for a in expired.approvals} == {ApprovalStatus.CANCELLED}
    assert list_my_approvals(env.ctx, env.people["bob"]) == ()


def test_only_the_organisations_admin_names_approvers_from_the_organisation(workflow_factory) -> None:
    env = workflow_factory()
    admin = env.people["orgadmin"]
    with pytest.raises(Forbidden):
        set_seal_approvers(env.ctx, env.people["keeper"], CLIENT, env.seal_id, ["bob"])
    with pytest.raises(NotFound):
        set_seal_approvers(env.ctx, admin, CLIENT, env.seal_id + 1000, ["bob"])
    with pytest.raises(InvalidInput, match="not in the seal's organisation"):
        set_seal_approvers(env.ctx, admin, CLIENT, env.seal_id, ["mallory"])
    with pytest.raises(InvalidInput, match="different approvers"):
        set_seal_approvers(env.ctx, admin, CLIENT, env.seal_id, ["bob", "bob"])
    with pytest.raises(InvalidInput, match="has not signed in"):
        set_seal_approvers(env.ctx, admin, CLIENT, env.seal_id, ["nobody"])

    set_seal_approvers(env.ctx, admin, CLIENT, env.seal_id, ["bob"])
    assert set_seal_approvers(env.ctx, admin, CLIENT, env.seal_id, []) == ()
    assert env.start([("seal", 1)]).state is ContractState.SIGNING  # no approvers: no approval


def test_a_voiding_agreement_waits_for_the_seals_approvers_too(workflow_factory) -> None:
    env = workflow_factory()
    view = env.start([("seal", 1)])
    assert env.sign("keeper", view.id, seal_party(view)).state is ContractState.COMPLETED
    set_seal_approvers(env.ctx, env.people["orgadmin"], CLIENT, env.seal_id, ["bob"])
    agreement = voiding.start_voiding(env.ctx, env.people["initiator"], CLIENT, view.id, "Signed in error.")
    assert agreement.state is ContractState.PENDING_APPROVAL
    assert approvals(agreement) == [("Bob Builder", ApprovalStatus.PENDING)]
    with pytest.raises(Conflict):  # one voiding agreement at a time, approved or not
        voiding.start_voiding(env.ctx, env.people["initiator"], CLIENT, view.id, "again")
    signing = decide(env, "bob", agreement, approve=True)
    assert signing.state is ContractState.SIGNING
    assert env.sign("keeper", signing.id, seal_party(signing)).state is ContractState.COMPLETED
    voided = queries.get_contract(env.ctx, env.people["initiator"], CLIENT, view.id)
    assert voided.state is ContractState.VOIDED


def test_a_directory_group_approves_a_step_and_any_member_of_the_organisation_decides(
    workflow_factory, any_db_url
) -> None:
    env = workflow_factory(any_db_url)
    group = "cn=finance approvers,ou=groups,dc=example,dc=com"
    for who in ("alice", "bob", "mallory"):  # mallory is of no organisation
        env.in_group(who, group)
    named = set_seal_approvers(
        env.ctx,
        env.people["orgadmin"],
        CLIENT,
        env.seal_id,
        ["CN=Finance Approvers,ou=groups,dc=example,dc=com", "orgadmin"],
    )
    assert named == (group, "orgadmin")

    view = env.start([("seal", 1)])
    assert approvals(view) == [
        ("finance approvers", ApprovalStatus.PENDING),
        ("Org Admin", ApprovalStatus.WAITING),
    ]
    assert "seal_approval_requested" in kinds_told(env, "alice") and "seal_approval_requested" in kinds_told(
        env, "bob"
    )
    assert "seal_approval_requested" not in kinds_told(env, "mallory")
    assert [i.contract_id for i in list_my_approvals(env.ctx, env.people["alice"])] == [view.id]
    assert list_my_approvals(env.ctx, env.people["mallory"]) == ()
    with pytest.raises(NotFound):
        decide(env, "mallory", view, approve=True)

    view = decide(env, "bob", view, approve=True)
    assert approvals(view) == [
        ("Bob Builder", ApprovalStatus.APPROVED),
        ("Org Admin", ApprovalStatus.PENDING),
    ]
    assert list_my_approvals(env.ctx, env.people["alice"]) == ()
    with pytest.raises(Conflict):  # the group's step is decided
        decide_approval(
            env.ctx, env.people["alice"], CLIENT, view.id, view.approvals[0].id, approve=True, comment=OK
        )
    assert decide(env, "orgadmin", view, approve=True).state is ContractState.SIGNING
