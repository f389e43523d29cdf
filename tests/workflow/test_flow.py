"""The whole contract flow on the real HSM, with two people and an organisation seal,
sequential and parallel, on SQLite and PostgreSQL; the final PDF checked independently."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select

from appliance.audit import verify_chain
from appliance.models import (
    Certificate,
    CertificateKind,
    CertificateStatus,
    ContractState,
    PartyStatus,
    Routing,
)
from appliance.signing.trust import load_trust_material
from appliance.signing.validate import Verdict, validate_pdf
from appliance.workflow import queries, signatures
from appliance.workflow.errors import NotYourTurn
from appliance.workflow.queries import Document
from tests.fixtures.independent import openssl_verify_all
from tests.signing.conftest import SigningEnv, pdfsig_blocks, run_pdfsig
from tests.workflow.conftest import CLIENT, WorkflowEnv, party_id


def _final_pdf(env: WorkflowEnv, contract_id: int, which: Document = Document.CURRENT) -> bytes:
    with queries.open_document(env.ctx, env.people["initiator"], CLIENT, contract_id, which) as document:
        return document.stream.read()


def _check_independently(env: WorkflowEnv, pdf: bytes, signatures_expected: int, tmp_path: Path) -> None:
    with env.services.sessions() as session:
        trust = load_trust_material(session)
        root = session.scalars(
            select(Certificate).where(
                Certificate.kind == CertificateKind.ROOT_CA, Certificate.status == CertificateStatus.ACTIVE
            )
        ).one()
    report = validate_pdf(io.BytesIO(pdf), trust, env.services.clock)
    assert report.verdict is Verdict.VALID, report.to_json()
    kinds = [s.kind for s in report.signatures]
    assert kinds.count("signature") == signatures_expected
    assert all(s.intact and s.trusted for s in report.signatures)
    root_pem = tmp_path / "root.pem"
    root_pem.write_bytes(x509.load_der_x509_certificate(root.der).public_bytes(Encoding.PEM))
    assert openssl_verify_all(pdf, root_pem, tmp_path) == len(report.signatures)
    signed = tmp_path / "final.pdf"
    signed.write_bytes(pdf)
    output = run_pdfsig(_nss_for(env, tmp_path), signed)
    blocks = pdfsig_blocks(output)
    assert len(blocks) == len(report.signatures), output
    # pdfsig cannot check RFC 3161 document timestamps; openssl ts did above
    for kind, block in zip(kinds, blocks, strict=True):
        if kind == "document_timestamp":
            assert "Timestamp" in block
            continue
        assert "Signature is Valid" in block, block
        assert "Certificate is Trusted" in block, block


def _nss_for(env: WorkflowEnv, tmp_path: Path) -> Path:
    with env.services.sessions() as session:
        root = session.scalars(
            select(Certificate.der).where(
                Certificate.kind == CertificateKind.ROOT_CA, Certificate.status == CertificateStatus.ACTIVE
            )
        ).one()
    holder = SigningEnv(
        config=env.services.config,
        config_path=env.base / "config.yaml",
        services=env.services,
        root_der=root,
        person=None,  # type: ignore[arg-type]
        workdir=tmp_path,
    )
    return holder.nss_dir()


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
    assert view.has_completion_certificate
    _check_independently(env, _final_pdf(env, view.id), 3, tmp_path)
    completion = _final_pdf(env, view.id, Document.COMPLETION)
    assert completion.startswith(b"%PDF")
    report = queries.check_evidence(env.ctx, view.id)
    assert report.intact, report
    actions = [e.action for e in queries.contract_evidence(env.ctx, env.people["initiator"], view.id)]
    assert actions[:2] == ["created", "party_added"]
    assert actions.count("signed") == 3 and "completed" in actions and "downloaded" in actions
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
    _check_independently(env, _final_pdf(env, view.id), 2, tmp_path)
