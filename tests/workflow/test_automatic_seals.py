"""Seals the appliance applies itself: a seal's admin authorises named initiators or named
templates; their contracts skip the seal's approvers and get the seal with no keeper, with the
authorisation in the evidence and the usage log. SQLite and PostgreSQL; the final PDF checked
independently."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from appliance.errors import Forbidden, InvalidInput, NotFound
from appliance.models import ContractState, PartyStatus, Routing, SealUsage
from appliance.workflow import queries, seals
from appliance.workflow.approvals import set_seal_approvers
from appliance.workflow.automatic_seals import (
    apply_automatic_seals,
    apply_due_automatic_seals,
    seal_and_complete_or_log,
)
from appliance.workflow.seal_policy import SealAutomationView, set_seal_automation
from appliance.workflow.templates import StartFromTemplate, save_template, start_from_template
from appliance.workflow.views import ContractView
from tests.fixtures.independent import check_signed_contract
from tests.workflow.conftest import CLIENT, WorkflowEnv, party_id

SEAL = "合同专用章"


def template_with_the_seal(env: WorkflowEnv, routing: Routing = Routing.SEQUENTIAL) -> tuple[int, int]:
    """A template of the seal (order 1) then a buyer (order 2, or 1 in parallel); its id and the
    buyer role's id."""
    draft = env.start(
        [("seal", 1), ("alice", 1 if routing is Routing.PARALLEL else 2)], routing=routing, send=False
    )
    template = save_template(env.ctx, env.people["initiator"], CLIENT, draft.id, "Standard purchase")
    buyer = next(r.id for r in template.roles if r.seal_id is None)
    return template.id, buyer


def authorise(
    env: WorkflowEnv,
    *,
    who: str = "orgadmin",
    initiators: tuple[str, ...] = (),
    templates: tuple[int, ...] = (),
) -> SealAutomationView:
    return set_seal_automation(
        env.ctx,
        env.people[who],
        CLIENT,
        env.seal_id,
        initiators=list(initiators),
        template_ids=list(templates),
    )


def contract(env: WorkflowEnv, contract_id: int, who: str = "initiator") -> ContractView:
    return queries.get_contract(env.ctx, env.people[who], CLIENT, contract_id)


def usages(env: WorkflowEnv) -> list[tuple[int, int | None, str | None, str]]:
    with env.services.sessions() as session:
        return [
            (u.contract_id, u.applied_by_id, u.automatic, u.approval_ids)
            for u in session.scalars(select(SealUsage).order_by(SealUsage.id))
        ]


def test_a_template_authorised_for_the_seal_is_sealed_with_no_keeper_and_no_approval(
    workflow_factory, any_db_url, tmp_path: Path
) -> None:
    env = workflow_factory(any_db_url)
    admin = env.people["orgadmin"]
    set_seal_approvers(env.ctx, admin, CLIENT, env.seal_id, ["bob"])
    template_id, buyer = template_with_the_seal(env)
    authorised = authorise(env, templates=(template_id,))
    assert authorised.templates == ((template_id, "Standard purchase"),)
    assert seals.organisation_seal(env.ctx, admin, env.seal_id).automatic_templates == authorised.templates

    view = start_from_template(
        env.ctx,
        env.people["bob"],
        CLIENT,
        template_id,
        StartFromTemplate("PO 1", True, {buyer: "alice"}, send=True),
    )
    assert view.state is ContractState.SIGNING  # the seal's approvers are not asked
    assert view.approvals == ()
    assert apply_automatic_seals(env.ctx, view.id) == 1
    assert apply_automatic_seals(env.ctx, view.id) == 0  # once
    view = contract(env, view.id, "bob")
    assert [p.status for p in view.parties] == [PartyStatus.SIGNED, PartyStatus.PENDING]
    assert usages(env) == [(view.id, None, "template", "")]

    view = env.sign("alice", view.id, party_id(view, "张伟"))
    assert view.state is ContractState.COMPLETED
    evidence = queries.contract_evidence(env.ctx, env.people["bob"], view.id)
    sealed = next(e for e in evidence if e.action == "signed")
    assert sealed.actor_name == "appliance" and sealed.details["applied_automatically_for"] == "template"
    assert sealed.details["party"] == SEAL
    assert [e.action for e in evidence].count("code_verified") == 1  # alice's only
    with queries.open_document(env.ctx, env.people["bob"], CLIENT, view.id, queries.Document.CURRENT) as doc:
        check_signed_contract(env.services, doc.stream.read(), 2, tmp_path)
    assert queries.check_evidence(env.ctx, view.id).intact


def test_an_authorised_initiator_gets_the_seal_on_any_document_others_wait_for_the_keeper(
    workflow_factory, any_db_url
) -> None:
    env = workflow_factory(any_db_url)
    authorise(env, initiators=("initiator",))
    view = env.start([("alice", 1), ("seal", 1)], routing=Routing.PARALLEL)
    view = env.sign("alice", view.id, party_id(view, "张伟"))  # alice first; the seal seals her version
    seal_and_complete_or_log(env.ctx, view.id)  # what a request does after its answer
    view = contract(env, view.id)
    assert view.state is ContractState.COMPLETED and view.has_completion_certificate
    assert usages(env) == [(view.id, None, "initiator", "")]

    env.people["initiator"] = env.people["bob"]  # bob starts one: not authorised
    other = env.start([("seal", 1)])
    assert apply_automatic_seals(env.ctx, other.id) == 0
    assert apply_due_automatic_seals(env.ctx) == 0
    assert contract(env, other.id, "bob").parties[0].status is PartyStatus.PENDING
    view = env.sign("keeper", other.id, other.parties[0].id)
    assert view.state is ContractState.COMPLETED
    assert usages(env)[-1][1:3] == (env.people["keeper"].user_id, None)


def test_the_job_applies_what_no_request_did(workflow_factory) -> None:
    env = workflow_factory()
    set_seal_automation(
        env.ctx, env.people["orgadmin"], CLIENT, env.seal_id, initiators=("initiator",), template_ids=[]
    )
    first, second = env.start([("seal", 1), ("alice", 2)]), env.start([("seal", 1)])
    assert apply_due_automatic_seals(env.ctx) == 2
    assert contract(env, second.id).state is ContractState.COMPLETED
    assert [p.status for p in contract(env, first.id).parties] == [
        PartyStatus.SIGNED,
        PartyStatus.PENDING,
    ]
    assert apply_due_automatic_seals(env.ctx) == 0


def test_a_seal_that_cannot_be_applied_leaves_the_contract_as_it_was(workflow_factory) -> None:
    env = workflow_factory()
    admin = env.people["orgadmin"]
    authorise(env, initiators=("initiator",))
    view = env.start([("seal", 1)])
    certificate = seals.organisation_seal(env.ctx, admin, env.seal_id).certificate
    assert certificate is not None
    seals.revoke_seal_certificate(
        env.ctx, admin, CLIENT, env.seal_id, seals.OrganisationReason.KEY_COMPROMISE
    )
    blobs_before = sorted(p.name for p in (env.base / "blobs").rglob("*") if p.is_file())
    seal_and_complete_or_log(env.ctx, view.id)  # logged, not raised: nobody waits for it
    assert apply_due_automatic_seals(env.ctx) == 0
    after = contract(env, view.id)
    assert after.state is ContractState.SIGNING and after.parties[0].status is PartyStatus.PENDING
    assert len(after.versions) == 1 and usages(env) == []
    assert sorted(p.name for p in (env.base / "blobs").rglob("*") if p.is_file()) == blobs_before


def test_only_the_seal_admin_authorises_and_only_what_can_use_the_seal(workflow_factory) -> None:
    env = workflow_factory()
    admin = env.people["orgadmin"]
    template_id, _ = template_with_the_seal(env)
    plain = env.start([("alice", 1)], send=False)
    without_seal = save_template(env.ctx, env.people["initiator"], CLIENT, plain.id, "No seal").id
    with pytest.raises(Forbidden):
        set_seal_automation(
            env.ctx, env.people["keeper"], CLIENT, env.seal_id, initiators=[], template_ids=[]
        )
    with pytest.raises(NotFound):
        set_seal_automation(
            env.ctx, env.people["mallory"], CLIENT, env.seal_id, initiators=[], template_ids=[]
        )
    for initiators, template_ids, problem in (
        (("mallory",), (), "not in the seal's organisation"),
        (("nobody",), (), "has not signed in"),
        (("bob", "bob"), (), "once"),
        ((), (without_seal,), "does not use the seal"),
        ((), (template_id + 1000,), "no template in use"),
    ):
        with pytest.raises(InvalidInput, match=problem):
            authorise(env, initiators=initiators, templates=template_ids)
    assert seals.organisation_seal(env.ctx, admin, env.seal_id).automatic_initiators == ()
    authorise(env, initiators=("bob",), templates=(template_id,))
    cleared = authorise(env)
    assert (cleared.initiators, cleared.templates) == ((), ())
