"""Cancelling one's own account: refused with the reasons while work is open; confirmed with a
code mailed through a real SMTP server; then the person's data is gone from every view while
the signed contract, its evidence and the operation log stay intact. SQLite and PostgreSQL."""

from __future__ import annotations

import re
import threading

import pytest
from sqlalchemy import func, select, update

from appliance.audit import verify_chain
from appliance.audit.browse import LogFilter
from appliance.errors import Conflict, Forbidden
from appliance.models import (
    ApiToken,
    Certificate,
    CertificateStatus,
    ContractState,
    FormerIdentity,
    Notification,
    PendingCancellation,
    RevocationReason,
    Role,
    User,
    UserSession,
)
from appliance.workflow import drafts, queries
from appliance.workflow.approvals import decide_approval, set_seal_approvers
from appliance.workflow.cancellation import (
    BlockerKind,
    CancellationRefused,
    check_cancellation,
    confirm_cancellation,
    pseudonym,
    start_cancellation,
)
from appliance.workflow.codes import CodeProblem, CodeRejected
from appliance.workflow.oplog import browse_log, export_log
from appliance.workflow.seal_policy import set_seal_automation
from appliance.workflow.seals import organisation_seal
from tests.workflow.conftest import CLIENT, WorkflowEnv, party_id

PHONE, ID_NUMBER = "13812345678", "110101199003071234"


def mailed_code(env: WorkflowEnv, who: str) -> str:
    before = len(env.smtp.received)
    started = start_cancellation(env.ctx, env.people[who], CLIENT)
    assert started.destination != f"{who}@example.com"  # masked
    assert len(env.smtp.received) == before + 1
    mail = env.smtp.received[-1]
    assert (mail["To"], mail["Subject"]) == (
        f"{who}@example.com",
        "Verification code: cancelling your account",
    )
    found = re.search(r"^\s+(\d{6,8})\s*$", mail.get_content(), re.M)
    assert found, mail.get_content()
    return found.group(1)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


def test_cancellation_is_refused_while_contracts_wait_for_the_person_or_are_theirs_and_open(
    workflow_factory,
) -> None:
    env = workflow_factory()
    alice, initiator = env.people["alice"], env.people["initiator"]
    view = env.start([("alice", 1)])

    for who, kind in ((alice, BlockerKind.TO_SIGN), (initiator, BlockerKind.INITIATED_OPEN)):
        assert [(b.kind, b.contract_id) for b in check_cancellation(env.ctx, who).blockers] == [
            (kind, view.id)
        ]
        with pytest.raises(CancellationRefused, match="cannot be cancelled yet") as refused:
            start_cancellation(env.ctx, who, CLIENT)
        assert refused.value.blockers[0].title == view.title
    assert not env.smtp.received or "cancelling" not in env.smtp.received[-1]["Subject"]

    env.sign("alice", view.id, party_id(view, "张伟"))
    assert check_cancellation(env.ctx, alice).blockers == ()
    assert check_cancellation(env.ctx, initiator).blockers == ()


def test_work_that_appears_before_the_confirmation_stops_it(workflow_factory) -> None:
    env = workflow_factory()
    code = mailed_code(env, "bob")
    env.start([("bob", 1)])
    with pytest.raises(CancellationRefused):
        confirm_cancellation(env.ctx, env.people["bob"], CLIENT, code)
    with env.services.sessions() as session:
        assert session.get_one(User, env.people["bob"].user_id).anonymised_at is None


def test_a_send_racing_a_cancellation_waits_for_it_and_refuses(workflow_factory, any_db_url) -> None:
    if any_db_url.startswith("sqlite"):
        pytest.skip("SQLite lets one writer in at a time: there is no race to lose")
    env = workflow_factory(any_db_url)
    draft = env.start([("bob", 1)], send=False)
    bob = env.people["bob"].user_id
    refused: list[Conflict] = []

    def send() -> None:
        try:
            drafts.send_contract(env.ctx, env.people["initiator"], CLIENT, draft.id)
        except Conflict as conflict:
            refused.append(conflict)

    with env.services.engine.connect() as cancelling:
        transaction = cancelling.begin()
        cancelling.execute(select(User.id).where(User.id == bob).with_for_update())  # as confirm locks it
        sender = threading.Thread(target=send)
        sender.start()
        sender.join(timeout=1.0)
        assert sender.is_alive()  # the send waits for the person's row
        cancelling.execute(update(User).where(User.id == bob).values(active=False))
        transaction.commit()
    sender.join(timeout=30)
    assert [c.public for c in refused] == ["Bob Builder can no longer sign; remove them from the contract."]
    assert (
        queries.get_contract(env.ctx, env.people["initiator"], CLIENT, draft.id).state is ContractState.DRAFT
    )


def test_wrong_codes_are_counted_and_end_the_attempt(workflow_factory) -> None:
    env = workflow_factory()
    bob = env.people["bob"]
    code = mailed_code(env, "bob")
    for left in (4, 3, 2, 1):
        with pytest.raises(CodeRejected) as failure:
            confirm_cancellation(env.ctx, bob, CLIENT, wrong(code))
        assert (failure.value.problem, failure.value.attempts_left) == (CodeProblem.WRONG, left)
    with pytest.raises(CodeRejected):
        confirm_cancellation(env.ctx, bob, CLIENT, wrong(code))
    with pytest.raises(CodeRejected) as failure:  # the right code no longer helps
        confirm_cancellation(env.ctx, bob, CLIENT, code)
    assert failure.value.problem is CodeProblem.EXHAUSTED

    fresh = mailed_code(env, "bob")  # starting again gives a new code; the old one is dead
    with pytest.raises(CodeRejected):
        confirm_cancellation(env.ctx, bob, CLIENT, code)
    assert confirm_cancellation(env.ctx, bob, CLIENT, fresh) == pseudonym(bob.user_id)


def test_a_cancelled_account_is_anonymised_and_its_records_stay_intact(workflow_factory, any_db_url) -> None:
    env = workflow_factory(any_db_url)
    alice, initiator = env.people["alice"], env.people["initiator"]
    auditor = env.add_person("auditor", "Audrey Auditor", Role.AUDITOR)
    with env.services.sessions.begin() as session:
        row = session.get_one(User, alice.user_id)
        row.phone, row.id_number = PHONE, ID_NUMBER
    view = env.start([("alice", 1)])
    signed = env.sign("alice", view.id, party_id(view, "张伟"))
    assert signed.state is ContractState.COMPLETED
    token = env.services.auth.create_token(alice.user_id, "phone", CLIENT).token
    with env.services.sessions() as session:
        subjects = session.scalars(
            select(Certificate.subject).where(Certificate.user_id == alice.user_id)
        ).all()
    name = pseudonym(alice.user_id)
    before = repr(
        (
            queries.contract_evidence(env.ctx, initiator, view.id),
            browse_log(env.ctx, auditor, LogFilter(), before=None, limit=200).entries,
        )
    )
    assert "张伟" in before and "alice" in before  # what the scan looks for

    code = mailed_code(env, "alice")
    with pytest.raises(CodeRejected):
        confirm_cancellation(env.ctx, alice, CLIENT, wrong(code))
    assert confirm_cancellation(env.ctx, alice, CLIENT, code) == name

    with env.services.sessions() as session:
        user = session.get_one(User, alice.user_id)
        assert (user.username, user.display_name) == (name, name)
        assert [user.email, user.phone, user.id_number, user.department, user.directory_dn] == [None] * 5
        assert (user.active, user.roles, user.anonymised_at is not None) == (False, [], True)
        for table in (UserSession, ApiToken, PendingCancellation):
            assert (
                session.scalar(select(func.count()).select_from(table).where(table.user_id == user.id)) == 0
            )
        certificates = session.scalars(select(Certificate).where(Certificate.user_id == user.id)).all()
        assert {(c.status, c.revocation_reason) for c in certificates} == {
            (CertificateStatus.REVOKED, RevocationReason.CESSATION_OF_OPERATION)
        }
        assert session.scalar(select(func.count()).select_from(FormerIdentity)) >= 3
        others_notices = session.scalars(select(Notification.params)).all()
        assert verify_chain(session) == []
    assert env.services.auth.resolve_token(token) is None
    with pytest.raises(Forbidden):
        queries.get_contract(env.ctx, alice, CLIENT, view.id)
    with pytest.raises(Forbidden):  # it cannot be cancelled twice, nor the code reused
        confirm_cancellation(env.ctx, alice, CLIENT, code)

    # what others see: the pseudonym, and the signed document kept with intact evidence
    contract = queries.get_contract(env.ctx, initiator, CLIENT, view.id)
    evidence = queries.contract_evidence(env.ctx, initiator, view.id)
    assert queries.check_evidence(env.ctx, view.id).breaks == ()
    assert contract.state is ContractState.COMPLETED and len(contract.versions) == len(signed.versions)
    log = browse_log(env.ctx, auditor, LogFilter(), before=None, limit=200).entries
    exported = list(export_log(env.ctx, auditor, CLIENT, LogFilter()))
    shown = repr((contract, evidence, log, exported, others_notices))
    for value in ("张伟", "alice", PHONE, ID_NUMBER, *subjects):
        assert value not in shown
    assert name in repr(contract.parties) and name in repr(evidence) and name in repr(log)

    # the log is searched by the names it shows: the pseudonym finds the person's records from
    # before the cancellation too, and the names they were written with find nothing
    assert browse_log(env.ctx, auditor, LogFilter(actor="alice"), before=None, limit=50).entries == ()
    found = browse_log(env.ctx, auditor, LogFilter(actor=name), before=None, limit=50).entries
    assert {e.actor_name for e in found} == {name}
    assert {"certificate.issued", "account.cancelled"} <= {e.action for e in found}


def test_a_party_removed_from_a_draft_is_shown_by_pseudonym_after_cancelling(workflow_factory) -> None:
    env = workflow_factory()
    initiator, bob = env.people["initiator"], env.people["bob"]
    view = env.start([("alice", 1), ("bob", 1)], send=False)
    drafts.remove_party(env.ctx, initiator, CLIENT, view.id, party_id(view, "Bob Builder"))
    assert "Bob Builder" in repr(queries.contract_evidence(env.ctx, initiator, view.id))

    confirm_cancellation(env.ctx, bob, CLIENT, mailed_code(env, "bob"))

    evidence = repr(queries.contract_evidence(env.ctx, initiator, view.id))
    assert "Bob Builder" not in evidence
    assert evidence.count(pseudonym(bob.user_id)) == 2  # added, then removed
    assert "张伟" in evidence  # the remaining party keeps her name


def test_an_approver_cancels_only_after_deciding_and_then_approves_no_seal(workflow_factory) -> None:
    env = workflow_factory()
    bob = env.people["bob"]
    set_seal_approvers(env.ctx, env.people["orgadmin"], CLIENT, env.seal_id, ["bob", "keeper"])
    automation = {"initiators": ["bob"], "template_ids": []}
    set_seal_automation(env.ctx, env.people["orgadmin"], CLIENT, env.seal_id, **automation)
    view = env.start([("seal", 1)])
    assert [(b.kind, b.contract_id) for b in check_cancellation(env.ctx, bob).blockers] == [
        (BlockerKind.TO_APPROVE, view.id)
    ]
    approval = view.approvals[0].id
    decide_approval(env.ctx, bob, CLIENT, view.id, approval, approve=False, comment="Not this supplier.")
    confirm_cancellation(env.ctx, bob, CLIENT, mailed_code(env, "bob"))
    seal = organisation_seal(env.ctx, env.people["orgadmin"], env.seal_id)
    assert seal.approvers == ("keeper",)  # the next approver moved up
    assert seal.automatic_initiators == ()  # nothing of theirs is sealed by itself any more
    assert env.start([("seal", 1)]).approvals[0].approver_name == "Seal Keeper"
