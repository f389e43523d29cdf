"""A signing either completes or leaves the contract as it was: faults injected between the
atomic steps (HSM, blob store, database commit), and a document tampered with in storage."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from sqlalchemy import event, func, select

from appliance.errors import Unavailable
from appliance.models import ContractState, EvidenceEvent, PartyStatus
from appliance.storage import FilesystemBlobStore
from appliance.workflow import queries, signatures
from appliance.workflow.completion import (
    issue_completion_certificate_or_log,
    issue_missing_completion_certificates,
)
from appliance.workflow.errors import DocumentIntegrityFailed
from tests.workflow.conftest import CLIENT, WorkflowEnv, party_id


class FailingPut(FilesystemBlobStore):
    """The real store, whose writes fail after `allowed` more succeed (a full disk)."""

    def __init__(self, root: Path, allowed: int) -> None:
        super().__init__(root)
        self.allowed = allowed

    def put(self, stream: BinaryIO) -> str:
        if self.allowed <= 0:
            raise Unavailable("The blob store cannot take files right now.", detail="disk full (test)")
        self.allowed -= 1
        return super().put(stream)


def _state(env: WorkflowEnv, contract_id: int) -> tuple[Any, ...]:
    view = queries.get_contract(env.ctx, env.people["initiator"], CLIENT, contract_id)
    with env.services.sessions() as session:
        signed_events = session.scalar(
            select(func.count())
            .select_from(EvidenceEvent)
            .where(EvidenceEvent.contract_id == contract_id, EvidenceEvent.action == "signed")
        )
    return view.state, [p.status for p in view.parties], len(view.versions), signed_events


def _blob_names(env: WorkflowEnv) -> set[str]:
    return {p.name for p in Path(env.services.config.storage.path).rglob("*") if p.is_file()}


def test_blob_store_failure_leaves_no_trace_and_the_code_still_works(workflow_factory) -> None:
    env = workflow_factory()
    view = env.start([("alice", 1), ("bob", 2)])
    alice = party_id(view, "张伟")
    before, blobs = _state(env, view.id), _blob_names(env)
    code = env.code_for(env.people["alice"], view.id, alice)
    broken = dataclasses.replace(env.ctx, blobs=FailingPut(Path(env.services.config.storage.path), 0))
    with pytest.raises(Unavailable):
        signatures.sign_party(broken, env.people["alice"], CLIENT, view.id, alice, code)
    assert _state(env, view.id) == before
    assert _blob_names(env) == blobs
    # the rolled-back transaction gave the code back: the retry signs
    signed = signatures.sign_party(env.ctx, env.people["alice"], CLIENT, view.id, alice, code)
    assert signed.parties[0].status is PartyStatus.SIGNED


def test_failed_commit_removes_the_blob_it_wrote(workflow_factory) -> None:
    env = workflow_factory()
    view = env.start([("alice", 1)])
    alice = party_id(view, "张伟")
    code = env.code_for(env.people["alice"], view.id, alice)
    before, blobs = _state(env, view.id), _blob_names(env)

    commits: list[Any] = []

    def refuse(session: Any) -> None:
        commits.append(session)
        if len(commits) > 1:  # the plan's commit goes through; the record's fails
            raise RuntimeError("injected: the database went away at commit")

    event.listen(env.services.sessions, "before_commit", refuse)
    try:
        with pytest.raises(RuntimeError):
            signatures.sign_party(env.ctx, env.people["alice"], CLIENT, view.id, alice, code)
    finally:
        event.remove(env.services.sessions, "before_commit", refuse)
    assert len(commits) == 2
    assert _state(env, view.id) == before
    assert _blob_names(env) == blobs  # the signed file is gone


def test_hsm_failure_mid_sign_leaves_the_contract_as_it_was(workflow_factory, monkeypatch) -> None:
    env = workflow_factory()
    view = env.start([("alice", 1)])
    alice = party_id(view, "张伟")
    code = env.code_for(env.people["alice"], view.id, alice)
    before = _state(env, view.id)
    custody = env.services.custody

    def failing_signer(*args: Any, **kwargs: Any) -> Any:
        raise Unavailable("The HSM cannot be used right now.", detail="injected device error")

    monkeypatch.setattr(custody, "pdf_signer", failing_signer)
    with pytest.raises(Unavailable):
        signatures.sign_party(env.ctx, env.people["alice"], CLIENT, view.id, alice, code)
    monkeypatch.undo()
    assert _state(env, view.id) == before


def test_a_document_changed_in_storage_is_never_signed_on_top(workflow_factory) -> None:
    env = workflow_factory()
    view = env.start([("alice", 1), ("bob", 2)])
    view = env.sign("alice", view.id, party_id(view, "张伟"))
    current = view.versions[-1].sha256
    stored = next(p for p in Path(env.services.config.storage.path).rglob(current))
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.chmod(0o600)
    stored.write_bytes(bytes(data))
    bob = party_id(view, "Bob Builder")
    code = env.code_for(env.people["bob"], view.id, bob)
    with pytest.raises(DocumentIntegrityFailed):
        signatures.sign_party(env.ctx, env.people["bob"], CLIENT, view.id, bob, code)
    after = queries.get_contract(env.ctx, env.people["initiator"], CLIENT, view.id)
    assert after.state is ContractState.SIGNING and len(after.versions) == 2
    actions = [e.action for e in queries.contract_evidence(env.ctx, env.people["initiator"], view.id)]
    assert actions[-1] == "integrity_failed"
    report = queries.check_evidence(env.ctx, view.id)
    assert not report.intact and report.bad_versions == (
        "version 2: its file no longer has its recorded sha256",
    )


def test_a_certificate_of_completion_that_fails_is_made_by_the_job(
    workflow_factory, caplog: pytest.LogCaptureFixture
) -> None:
    env = workflow_factory()
    view = env.start([("alice", 1)])
    alice = party_id(view, "张伟")
    code = env.code_for(env.people["alice"], view.id, alice)
    done = signatures.sign_party(env.ctx, env.people["alice"], CLIENT, view.id, alice, code)
    assert done.state is ContractState.COMPLETED and not done.has_completion_certificate
    # the certificate made after the answer cannot be stored: logged, and nothing half-made
    full = dataclasses.replace(env.ctx, blobs=FailingPut(Path(env.services.config.storage.path), 0))
    issue_completion_certificate_or_log(full, view.id)
    assert "certificate of completion failed" in caplog.text
    unchanged = queries.get_contract(env.ctx, env.people["initiator"], CLIENT, view.id)
    assert not unchanged.has_completion_certificate
    assert issue_missing_completion_certificates(env.ctx) == 1
    assert issue_missing_completion_certificates(env.ctx) == 0
    final = queries.get_contract(env.ctx, env.people["initiator"], CLIENT, view.id)
    assert final.has_completion_certificate
    actions = [e.action for e in queries.contract_evidence(env.ctx, env.people["initiator"], view.id)]
    assert actions[-2:] == ["completed", "completion_certificate"]
