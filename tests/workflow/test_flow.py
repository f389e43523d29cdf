"""The whole contract flow on the real HSM, with two people and an organisation seal,
sequential and parallel, on SQLite and PostgreSQL; the final PDF checked independently."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from appliance.audit import verify_chain
from appliance.models import ContractState, PartyKind, PartyStatus, Routing
from appliance.workflow import drafts, queries, signatures
from appliance.workflow.completion import issue_completion_certificate
from appliance.workflow.drafts import NewField, NewParty
from appliance.workflow.errors import NotYourTurn
from appliance.workflow.queries import Document
from tests.fixtures.independent import check_signed_contract
from tests.workflow.conftest import CLIENT, WorkflowEnv, party_id


def _final_pdf(env: WorkflowEnv, contract_id: int, which: Document = Document.CURRENT) -> bytes:
    with queries.open_document(env.ctx, env.people["initiator"], CLIENT, contract_id, which) as document:
        return document.stream.read()


def test_sequential_flow_two_people_and_a_seal(workflow_factory, any_db_url: str, tmp_path: Path) -> None:
    env = workflow_factory(any_db_url)
    view = env.start([("alice", 1), ("bob", 2), ("seal", 3)])
    assert view.state is ContractState.SIGNING
    alice, bob, seal = (party_id(view, n) for n in ("张伟", "Bob Builder", "合同专用章"))
    with pytest.raises(NotYourTurn):
        signatures.request_code(env.ctx, env.people["bob"], CLIENT, view.id, bob)
    view = env.sign("alice", view.id, alice)
    assert [p.status for p in view.parties] == [PartyStatus.SIGNED, PartyStatus.PENDING, PartyStatus.WAITING]
    view = env.sign("bob", view.id, bob)
    view = env.sign("keeper", view.id, seal)
    assert view.state is ContractState.COMPLETED
    assert [v.number for v in view.versions] == [1, 2, 3, 4]
    # the certificate of completion comes after the answer (the web layer makes it next)
    assert not view.has_completion_certificate
    assert issue_completion_certificate(env.ctx, view.id) is not None
    assert issue_completion_certificate(env.ctx, view.id) is None  # made once
    check_signed_contract(env.services, _final_pdf(env, view.id), 3, tmp_path)
    completion = _final_pdf(env, view.id, Document.COMPLETION)
    assert completion.startswith(b"%PDF")
    report = queries.check_evidence(env.ctx, view.id)
    assert report.intact, report
    evidence = queries.contract_evidence(env.ctx, env.people["initiator"], view.id)
    levels = [e.details["pades_level"] for e in evidence if e.action == "signed"]
    assert levels == ["B-LT", "B-LT", "B-LTA"]  # revocation info in each; the last adds a document timestamp
    actions = [e.action for e in evidence]
    assert actions[:2] == ["created", "party_added"]
    assert actions.count("signed") == 3 and "completed" in actions and "downloaded" in actions
    assert actions.count("code_sent") == actions.count("code_verified") == 3
    with env.services.sessions() as session:
        assert verify_chain(session) == []


def test_parallel_signers_at_the_same_instant_both_land(
    workflow_factory, any_db_url: str, tmp_path: Path
) -> None:
    env = workflow_factory(any_db_url)
    view = env.start([("alice", 1), ("bob", 1)], routing=Routing.PARALLEL)
    parties = {"alice": party_id(view, "张伟"), "bob": party_id(view, "Bob Builder")}
    codes = {who: env.code_for(env.people[who], view.id, pid) for who, pid in parties.items()}
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def sign(who: str) -> None:
        barrier.wait()
        try:
            signatures.sign_party(env.ctx, env.people[who], CLIENT, view.id, parties[who], codes[who])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=sign, args=(who,)) for who in parties]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    final = queries.get_contract(env.ctx, env.people["initiator"], CLIENT, view.id)
    assert final.state is ContractState.COMPLETED
    assert [v.number for v in final.versions] == [1, 2, 3]
    check_signed_contract(env.services, _final_pdf(env, view.id), 2, tmp_path)


def test_a_party_with_two_fields_signs_once_per_field_in_one_step(workflow_factory, tmp_path: Path) -> None:
    env = workflow_factory()
    initiator = env.people["initiator"]
    draft = env.start([], send=False)
    fields = (
        NewField(page=1, x=72, y=72, width=180, height=60),
        NewField(page=2, x=300, y=500, width=180, height=60),
    )
    draft = drafts.add_party(
        env.ctx, initiator, CLIENT, draft.id, NewParty(PartyKind.PERSON, fields, username="alice")
    )
    view = drafts.send_contract(env.ctx, initiator, CLIENT, draft.id)
    view = env.sign("alice", view.id, party_id(view, "张伟"))
    assert view.state is ContractState.COMPLETED and len(view.versions) == 2  # one new version for the party
    check_signed_contract(env.services, _final_pdf(env, view.id), 2, tmp_path)
