"""What changes while a signature is being made: the HSM signature runs outside any
transaction (appliance.workflow.signatures), so other requests land between its plan and its
record. Each test makes such a request land at exactly that moment, from inside the signing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from appliance.errors import Conflict
from appliance.models import ContractState, EvidenceEvent, PartyStatus, RevocationReason, Routing
from appliance.pki.ca import make_context
from appliance.pki.revoke import revoke_certificate
from appliance.workflow import queries, signatures
from appliance.workflow.certificates import usable_personal_certificate
from appliance.workflow.errors import CertificateRequired, InvalidState
from appliance.workflow.idempotency import IdempotencyKey
from appliance.workflow.queries import Document
from tests.fixtures.independent import check_signed_contract
from tests.workflow.conftest import CLIENT, WorkflowEnv, party_id


def _meanwhile(monkeypatch: pytest.MonkeyPatch, action: Callable[[], Any]) -> list[int]:
    """Run `action` once, inside the first signing's HSM step; returns a list that counts signings."""
    sign_fields = signatures.sign_fields
    calls: list[int] = []

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            action()
        return sign_fields(*args, **kwargs)

    monkeypatch.setattr(signatures, "sign_fields", interrupted)
    return calls


def _events(env: WorkflowEnv, contract_id: int, action: str) -> int:
    with env.services.sessions() as session:
        return session.scalar(
            select(func.count())
            .select_from(EvidenceEvent)
            .where(EvidenceEvent.contract_id == contract_id, EvidenceEvent.action == action)
        )


def _blob_names(env: WorkflowEnv) -> set[str]:
    return {p.name for p in Path(env.services.config.storage.path).rglob("*") if p.is_file()}


def test_a_signature_that_lands_first_is_signed_on_top_of(
    workflow_factory, any_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = workflow_factory(any_db_url)
    view = env.start([("alice", 1), ("bob", 1)], routing=Routing.PARALLEL)
    alice, bob = party_id(view, "张伟"), party_id(view, "Bob Builder")
    code = env.code_for(env.people["alice"], view.id, alice)
    blobs = _blob_names(env)
    calls = _meanwhile(monkeypatch, lambda: env.sign("bob", view.id, bob))

    final = signatures.sign_party(env.ctx, env.people["alice"], CLIENT, view.id, alice, code)

    assert len(calls) == 3  # alice, bob inside her signing, then alice again on bob's version
    assert final.state is ContractState.COMPLETED
    assert [v.number for v in final.versions] == [1, 2, 3]
    assert [v.party_id for v in final.versions[1:]] == [bob, alice]
    assert _events(env, view.id, "signed") == _events(env, view.id, "code_verified") == 2
    # the file alice signed on the version bob replaced is gone; the two versions stay
    assert len(_blob_names(env) - blobs) == 2
    with queries.open_document(
        env.ctx, env.people["initiator"], CLIENT, view.id, Document.CURRENT
    ) as document:
        pdf = document.stream.read()
    check_signed_contract(env.services, pdf, 2, tmp_path)


def test_the_same_code_racing_itself_signs_once(workflow_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    env = workflow_factory()
    view = env.start([("alice", 1), ("bob", 2)])
    alice = party_id(view, "张伟")
    code = env.code_for(env.people["alice"], view.id, alice)
    blobs = _blob_names(env)

    def sign() -> Any:
        return signatures.sign_party(env.ctx, env.people["alice"], CLIENT, view.id, alice, code)

    _meanwhile(monkeypatch, sign)
    with pytest.raises(InvalidState, match="signed already"):
        sign()
    assert _events(env, view.id, "signed") == 1
    assert len(_blob_names(env) - blobs) == 1


def test_a_retry_with_the_same_idempotency_key_answers_what_the_first_did(
    workflow_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = workflow_factory()
    view = env.start([("alice", 1), ("bob", 2)])
    alice = party_id(view, "张伟")
    code = env.code_for(env.people["alice"], view.id, alice)
    key = IdempotencyKey("retry-1", f"sign:{view.id}:{alice}", "same body")
    answers = []

    def sign() -> Any:
        return signatures.sign_party(env.ctx, env.people["alice"], CLIENT, view.id, alice, code, key)

    _meanwhile(monkeypatch, lambda: answers.append(sign()))
    assert sign() == answers[0]
    assert _events(env, view.id, "signed") == 1


def test_a_certificate_revoked_while_signing_never_signs(
    workflow_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = workflow_factory()
    view = env.start([("alice", 1)])
    alice = party_id(view, "张伟")
    code = env.code_for(env.people["alice"], view.id, alice)
    blobs = _blob_names(env)

    def revoke() -> None:
        services = env.services
        with services.sessions.begin() as session:
            certificate = usable_personal_certificate(
                session, env.people["alice"].user_id, services.clock.now()
            )
            assert certificate is not None
            pki = make_context(services.custody, services.config, services.clock)
            revoke_certificate(session, pki, certificate.id, RevocationReason.KEY_COMPROMISE)

    _meanwhile(monkeypatch, revoke)
    with pytest.raises(CertificateRequired):
        signatures.sign_party(env.ctx, env.people["alice"], CLIENT, view.id, alice, code)
    after = queries.get_contract(env.ctx, env.people["initiator"], CLIENT, view.id)
    assert [p.status for p in after.parties] == [PartyStatus.PENDING]
    assert len(after.versions) == 1 and _events(env, view.id, "signed") == 0
    assert _blob_names(env) == blobs


def test_signers_landing_first_every_time_get_a_conflict_and_the_code_still_works(
    workflow_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = workflow_factory()
    view = env.start([("alice", 1), ("bob", 1)], routing=Routing.PARALLEL)
    alice, bob = party_id(view, "张伟"), party_id(view, "Bob Builder")
    code = env.code_for(env.people["alice"], view.id, alice)
    monkeypatch.setattr(signatures, "_SIGN_ATTEMPTS", 1)
    _meanwhile(monkeypatch, lambda: env.sign("bob", view.id, bob))
    with pytest.raises(Conflict, match="Sign again"):
        signatures.sign_party(env.ctx, env.people["alice"], CLIENT, view.id, alice, code)
    assert _events(env, view.id, "signed") == 1
    final = signatures.sign_party(env.ctx, env.people["alice"], CLIENT, view.id, alice, code)
    assert final.state is ContractState.COMPLETED
