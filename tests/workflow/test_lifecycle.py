"""Reject, withdraw, expire, end and void; step order (security plan O08); visibility."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from appliance.errors import Conflict, Forbidden, NotFound, RateLimited
from appliance.models import (
    Contract,
    ContractState,
    EvidenceEvent,
    Notification,
    PartyKind,
    PartyStatus,
    Routing,
    User,
)
from appliance.workflow import closing, drafts, queries, seals, signatures, voiding
from appliance.workflow.codes import CodeRejected
from appliance.workflow.drafts import NewParty
from appliance.workflow.errors import InvalidState, NotYourTurn
from appliance.workflow.queries import ContractFilter, Document, ListRole
from tests.fakes.directory import FakeDirectory, FakePerson
from tests.workflow.conftest import CLIENT, FIELD, party_id


def _evidence_actions(env, contract_id: int) -> list[str]:
    return [e.action for e in queries.contract_evidence(env.ctx, env.people["initiator"], contract_id)]


def test_reject_closes_the_contract_and_tells_everyone(workflow_factory) -> None:
    env = workflow_factory()
    view = env.start([("alice", 1), ("bob", 2)])
    alice = party_id(view, "张伟")
    closed = closing.reject_contract(
        env.ctx, env.people["alice"], CLIENT, view.id, alice, "价格不对 wrong price"
    )
    assert closed.state is ContractState.REJECTED
    assert next(p for p in closed.parties if p.id == alice).status is PartyStatus.REJECTED
    assert _evidence_actions(env, view.id)[-1] == "rejected"
    with env.services.sessions() as session:
        kinds = session.scalars(
            select(Notification.kind).where(Notification.kind == "contract_rejected")
        ).all()
    assert len(kinds) == 2  # the initiator and bob; not alice herself
    with pytest.raises(InvalidState):
        env.code_for(env.people["bob"], view.id, party_id(view, "Bob Builder"))


def test_withdraw_is_the_initiators_alone(workflow_factory) -> None:
    env = workflow_factory()
    view = env.start([("alice", 1)])
    with pytest.raises(Forbidden):
        closing.withdraw_contract(env.ctx, env.people["alice"], CLIENT, view.id, "not mine")
    closed = closing.withdraw_contract(env.ctx, env.people["initiator"], CLIENT, view.id, "sent by mistake")
    assert closed.state is ContractState.WITHDRAWN and closed.closing_reason == "sent by mistake"
    with pytest.raises(InvalidState):
        closing.withdraw_contract(env.ctx, env.people["initiator"], CLIENT, view.id, "again")


def test_deadline_passes_the_job_expires_and_reminds(workflow_factory) -> None:
    env = workflow_factory()
    soon = env.start([("alice", 1)])
    late = env.start([("bob", 1)])
    with env.services.sessions.begin() as session:
        now = env.services.clock.now()
        session.get(Contract, soon.id).deadline = now + timedelta(days=1)
        session.get(Contract, late.id).deadline = now - timedelta(minutes=1)
    report = closing.expire_and_remind(env.ctx)
    assert (report.expired, report.reminded) == (1, 1)
    assert (
        queries.get_contract(env.ctx, env.people["initiator"], CLIENT, late.id).state is ContractState.EXPIRED
    )
    assert closing.expire_and_remind(env.ctx).reminded == 0  # once per contract
    with env.services.sessions() as session:
        reminders = session.scalar(
            select(func.count()).select_from(Notification).where(Notification.kind == "contract_reminder")
        )
    assert reminders == 1


def test_the_initiator_reminds_the_parties_in_turn_at_most_hourly(workflow_factory) -> None:
    env = workflow_factory()
    view = env.start([("alice", 1), ("bob", 2)])
    with pytest.raises(Forbidden):
        closing.remind_parties(env.ctx, env.people["alice"], CLIENT, view.id)
    with pytest.raises(NotFound):  # someone who cannot see it: the same as no such contract
        closing.remind_parties(env.ctx, env.people["mallory"], CLIENT, view.id)
    closing.remind_parties(env.ctx, env.people["initiator"], CLIENT, view.id)
    with pytest.raises(RateLimited) as again:
        closing.remind_parties(env.ctx, env.people["initiator"], CLIENT, view.id)
    with env.services.sessions() as session:
        reminded = session.scalars(
            select(Notification.user_id).where(Notification.kind == "contract_reminder")
        ).all()
        alice = session.scalars(select(User.id).where(User.username == "alice")).one()
    assert reminded == [alice]  # only the party whose turn it is; bob signs later
    assert again.value.retry_at > env.services.clock.now()
    assert _evidence_actions(env, view.id)[-1] == "reminded"
    # a reminder sent before the deadline's window does not stop the job's own reminder in it
    with env.services.sessions.begin() as session:
        contract = session.get(Contract, view.id)
        contract.last_reminder_at = env.services.clock.now() - timedelta(days=10)
        contract.deadline = env.services.clock.now() + timedelta(days=1)
    assert closing.expire_and_remind(env.ctx).reminded == 1


def test_contracts_are_found_by_a_party_name(workflow_factory) -> None:
    env = workflow_factory()
    with_alice = env.start([("alice", 1)])
    with_bob = env.start([("bob", 1)])
    found = queries.list_contracts(
        env.ctx, env.people["initiator"], ContractFilter(party="bob b"), cursor=None, limit=10
    )
    assert [c.id for c in found.items] == [with_bob.id]
    found = queries.list_contracts(
        env.ctx, env.people["initiator"], ContractFilter(party="张"), cursor=None, limit=10
    )
    assert [c.id for c in found.items] == [with_alice.id]
    nothing = queries.list_contracts(
        env.ctx, env.people["initiator"], ContractFilter(party="%"), cursor=None, limit=10
    )
    assert nothing.items == ()  # a wildcard is a character like any other


def test_step_order_sign_without_code_or_out_of_turn_or_after_withdrawal(workflow_factory) -> None:
    env = workflow_factory()
    view = env.start([("alice", 1), ("bob", 2)])
    alice, bob = party_id(view, "张伟"), party_id(view, "Bob Builder")
    with pytest.raises(CodeRejected):
        signatures.sign_party(env.ctx, env.people["alice"], CLIENT, view.id, alice, "")
    with pytest.raises(NotYourTurn):
        signatures.sign_party(env.ctx, env.people["bob"], CLIENT, view.id, bob, "123456")
    with pytest.raises(Forbidden):
        signatures.sign_party(env.ctx, env.people["bob"], CLIENT, view.id, alice, "123456")
    code = env.code_for(env.people["alice"], view.id, alice)
    closing.withdraw_contract(env.ctx, env.people["initiator"], CLIENT, view.id, "changed our mind")
    with pytest.raises(InvalidState):
        signatures.sign_party(env.ctx, env.people["alice"], CLIENT, view.id, alice, code)
    current = queries.get_contract(env.ctx, env.people["initiator"], CLIENT, view.id)
    assert [v.number for v in current.versions] == [1]


def test_end_and_void_a_completed_contract(workflow_factory) -> None:
    env = workflow_factory()
    first = env.start([("alice", 1), ("bob", 1)], routing=Routing.PARALLEL)
    for who, name in (("alice", "张伟"), ("bob", "Bob Builder")):
        env.sign(who, first.id, party_id(first, name))
    agreement = voiding.start_voiding(
        env.ctx, env.people["initiator"], CLIENT, first.id, "duplicate of another"
    )
    assert agreement.voids_contract_id == first.id and agreement.state is ContractState.SIGNING
    with pytest.raises(InvalidState):
        voiding.start_voiding(env.ctx, env.people["initiator"], CLIENT, first.id, "twice")
    for who, name in (("alice", "张伟"), ("bob", "Bob Builder")):
        env.sign(who, agreement.id, party_id(agreement, name))
    voided = queries.get_contract(env.ctx, env.people["initiator"], CLIENT, first.id)
    assert voided.state is ContractState.VOIDED
    assert "voided" in _evidence_actions(env, first.id)
    with pytest.raises(InvalidState):
        closing.end_contract(env.ctx, env.people["initiator"], CLIENT, first.id, "too late")

    sealed = env.start([("seal", 1)])
    env.sign("keeper", sealed.id, sealed.parties[0].id)
    seals.set_seal_state(env.ctx, env.people["orgadmin"], CLIENT, env.seal_id, seals.SealState.DISABLED)
    agreements = _count_contracts(env)
    with pytest.raises(Conflict, match="no longer in use"):  # the seal could never sign the agreement
        voiding.start_voiding(env.ctx, env.people["initiator"], CLIENT, sealed.id, "wrong supplier")
    assert _count_contracts(env) == agreements

    second = env.start([("alice", 1)])
    env.sign("alice", second.id, party_id(second, "张伟"))
    with pytest.raises(Forbidden):
        closing.end_contract(env.ctx, env.people["alice"], CLIENT, second.id, "not hers")
    ended = closing.end_contract(
        env.ctx, env.people["orgadmin"], CLIENT, second.id, "terminated by agreement"
    )
    assert ended.state is ContractState.ENDED


def test_strangers_get_not_found_exactly_like_a_missing_id(workflow_factory) -> None:
    env = workflow_factory()
    view = env.start([("alice", 1)])
    mallory = env.people["mallory"]
    missing = view.id + 1000
    for contract_id in (view.id, missing):
        calls = [
            lambda c=contract_id: queries.get_contract(env.ctx, mallory, CLIENT, c),
            lambda c=contract_id: queries.contract_evidence(env.ctx, mallory, c),
            lambda c=contract_id: signatures.request_code(env.ctx, mallory, CLIENT, c, 1),
            lambda c=contract_id: signatures.sign_party(env.ctx, mallory, CLIENT, c, 1, "123456"),
            lambda c=contract_id: closing.withdraw_contract(env.ctx, mallory, CLIENT, c, "x"),
            lambda c=contract_id: closing.reject_contract(env.ctx, mallory, CLIENT, c, 1, "x"),
            lambda c=contract_id: queries.open_document(
                env.ctx, mallory, CLIENT, c, Document.ORIGINAL
            ).__enter__(),
        ]
        messages = set()
        for call in calls:
            with pytest.raises(NotFound) as caught:
                call()
            messages.add(caught.value.public)
        assert len(messages) == 1
    page = queries.list_contracts(env.ctx, mallory, ContractFilter(), cursor=None, limit=50)
    assert page.items == ()
    todo = queries.list_contracts(
        env.ctx, env.people["alice"], ContractFilter(role=ListRole.TO_SIGN), cursor=None, limit=1
    )
    assert [i.id for i in todo.items] == [view.id] and todo.items[0].your_turn
    with env.services.sessions() as session:
        downloads = session.scalar(
            select(func.count()).select_from(EvidenceEvent).where(EvidenceEvent.action == "downloaded")
        )
    assert downloads == 0  # the refused downloads left no trace


def test_a_colleague_who_never_signed_in_is_found_and_added(workflow_factory) -> None:
    env = workflow_factory()
    newcomer = FakePerson(
        dn="uid=liu.yang,ou=people,dc=example,dc=com",
        login_names=("liu.yang",),
        password="x",
        display_name="刘洋",
        email="liu.yang@example.com",
    )
    ctx = dataclasses.replace(env.ctx, directory=FakeDirectory([newcomer]))
    found = drafts.find_people(ctx, env.people["initiator"], "刘洋")
    assert [(p.username, p.display_name) for p in found] == [("liu.yang", "刘洋")]
    draft = env.start([], send=False)
    view = drafts.add_party(
        ctx,
        env.people["initiator"],
        CLIENT,
        draft.id,
        NewParty(PartyKind.PERSON, (FIELD,), username="liu.yang"),
    )
    assert [p.name for p in view.parties] == ["刘洋"]
    with env.services.sessions() as session:
        assert (
            session.scalars(select(User.email).where(User.username == "liu.yang")).one()
            == "liu.yang@example.com"
        )


def test_a_party_opening_the_contract_in_turn_is_recorded_once_per_version(workflow_factory) -> None:
    env = workflow_factory()
    view = env.start([("alice", 1), ("bob", 2)])
    for _ in range(2):
        queries.get_contract(env.ctx, env.people["alice"], CLIENT, view.id)
    queries.get_contract(env.ctx, env.people["bob"], CLIENT, view.id)  # not his turn yet: no record
    queries.get_contract(env.ctx, env.people["initiator"], CLIENT, view.id)
    viewed = [
        e
        for e in queries.contract_evidence(env.ctx, env.people["initiator"], view.id)
        if e.action == "viewed"
    ]
    assert [(e.actor_name, e.details["document_sha256"]) for e in viewed] == [
        ("张伟", view.versions[-1].sha256)
    ]


def _count_contracts(env) -> int:
    with env.services.sessions() as session:
        return session.scalar(select(func.count()).select_from(Contract)) or 0
