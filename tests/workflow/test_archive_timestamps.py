"""Archive timestamps (PAdES B-LTA renewal) with a frozen clock: a contract signed 150 days
ago under a timestamp authority certificate that lived 120 days is renewed by the job before
that certificate ends, and today, past its end, the file still validates for the appliance's
validator (pyHanko's, judging what expired at the time a later timestamp proves) and for
pdfsig; the file as it was before the renewal does not."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from appliance.db import transaction
from appliance.models import AuditEvent, Certificate, CertificateKind, Contract, EvidenceEvent
from appliance.pki.ca import make_context
from appliance.pki.crl import CA_KINDS, publish_crl
from appliance.signing.archive import timestamp_horizon
from appliance.signing.trust import load_trust_material
from appliance.signing.validate import ValidationReport, Verdict, validate_pdf
from appliance.workflow import queries
from appliance.workflow.archive_timestamps import renew_archive_timestamps
from tests.fakes.clock import FakeClock
from tests.signing.conftest import SigningEnv, pdfsig_blocks, run_pdfsig
from tests.workflow.conftest import WorkflowEnv, party_id

TSA_DAYS = 120


def _root(env: WorkflowEnv) -> bytes:
    with env.services.sessions() as session:
        return session.scalars(
            select(Certificate.der).where(Certificate.kind == CertificateKind.ROOT_CA)
        ).one()


def _validate(env: WorkflowEnv, pdf: bytes) -> ValidationReport:
    """The appliance's validator (pyHanko's, with the appliance's trust) at the clock's time."""
    with env.services.sessions() as session:
        trust = load_trust_material(session)
    return validate_pdf(io.BytesIO(pdf), trust, env.services.clock)


def _publish_crls(env: WorkflowEnv) -> None:
    """CRLs of the clock's time, as the hourly job keeps them."""
    with transaction(env.services.sessions) as session:
        ctx = make_context(env.services.custody, env.services.config, env.services.clock)
        for kind in CA_KINDS:
            publish_crl(session, ctx, kind)


def test_the_archive_timestamp_outlives_the_tsa_certificate_it_was_made_with(
    workflow_factory, tmp_path: Path
) -> None:
    today = datetime.now(UTC).replace(microsecond=0)
    clock = FakeClock(today - timedelta(days=150))
    env: WorkflowEnv = workflow_factory(clock=clock, pki={"tsa_validity_days": TSA_DAYS})
    view = env.start([("alice", 1)])
    env.sign("alice", view.id, party_id(view, "张伟"))
    signed = queries.operator_show(env.ctx, view.id)
    assert signed.state.value == "completed"
    original = env.services.blobs.get(signed.versions[-1].sha256)

    # 20 days before the TSA certificate ends (the job looks 90 days ahead): renewed, with a
    # new TSA certificate, as the contract's next version
    clock.set(today - timedelta(days=150 - TSA_DAYS + 20))
    report = renew_archive_timestamps(env.ctx)
    assert (report.checked, report.renewed, report.failed) == (1, 1, 0)
    renewed_view = queries.operator_show(env.ctx, view.id)
    assert len(renewed_view.versions) == len(signed.versions) + 1
    assert renewed_view.versions[-1].produced_by is None
    renewed = env.services.blobs.get(renewed_view.versions[-1].sha256)
    assert renewed.startswith(original)  # an incremental update: every signature stays
    with env.services.sessions() as session:
        tsa_ends = sorted(
            session.scalars(select(Certificate.not_after).where(Certificate.kind == CertificateKind.TSA))
        )
        contract = session.get(Contract, view.id)
        evidence = session.scalars(
            select(EvidenceEvent).where(
                EvidenceEvent.contract_id == view.id, EvidenceEvent.action == "archive_timestamp_renewed"
            )
        ).one()
        logged = session.scalars(select(AuditEvent.action).where(AuditEvent.contract_id == view.id)).all()
    assert len(tsa_ends) == 2 and contract.timestamps_renew_at == tsa_ends[1] - timedelta(days=90)
    facts = json.loads(evidence.details)
    assert facts["previous_sha256"] == signed.versions[-1].sha256 and facts["document_timestamps"] == 2
    assert "contract.archive_timestamp_renewed" in logged
    # not due again until the new certificate nears its end
    assert renew_archive_timestamps(env.ctx).checked == 0

    # today: the first TSA certificate ended 30 days ago
    clock.set(today)
    assert tsa_ends[0] < today
    _publish_crls(env)
    report = _validate(env, renewed)
    assert report.verdict is Verdict.VALID, report.to_json()
    signature, first_stamp, renewal_stamp = report.signatures
    assert renewal_stamp.judged_at == today  # its own authority's certificate is valid today
    # the first authority's certificate has ended: what it vouched for is judged as it stood
    # when the renewal proved it existed
    assert first_stamp.judged_at == renewal_stamp.timestamp.time < tsa_ends[0]
    assert signature.judged_at == first_stamp.timestamp.time
    lost = _validate(env, original)  # the file as it was before the renewal
    assert lost.verdict is Verdict.INVALID
    assert "timestamp_untrusted" in lost.signatures[0].problems

    workdir = tmp_path / "pdfsig"
    workdir.mkdir()
    (workdir / "renewed.pdf").write_bytes(renewed)
    nss = SigningEnv(
        config=env.services.config,
        config_path=workdir / "unused.yaml",
        services=env.services,
        root_der=_root(env),
        person=None,  # type: ignore[arg-type]
        workdir=workdir,
    ).nss_dir()
    output = run_pdfsig(nss, workdir / "renewed.pdf")
    blocks = pdfsig_blocks(output)
    assert len(blocks) == 3, output  # the signature and two document timestamps
    assert "Signature is Valid" in blocks[0] and "Certificate is Trusted" in blocks[0], output
    assert all("Timestamp" in block for block in blocks[1:]), output


def test_a_file_that_cannot_be_read_is_logged_and_left_as_it_is(workflow_factory, caplog) -> None:
    env: WorkflowEnv = workflow_factory()
    view = env.start([("alice", 1)])
    env.sign("alice", view.id, party_id(view, "张伟"))
    before = queries.operator_show(env.ctx, view.id)
    env.services.blobs.delete(before.versions[-1].sha256)  # a lost file (restore from a backup)
    report = renew_archive_timestamps(env.ctx)
    assert (report.checked, report.renewed, report.failed) == (1, 0, 1)
    assert "the archive timestamp was not renewed" in caplog.text
    assert queries.operator_show(env.ctx, view.id).versions == before.versions


def test_a_timestamp_made_with_a_digest_no_longer_trusted_is_due_at_once(workflow_factory) -> None:
    env: WorkflowEnv = workflow_factory()
    view = env.start([("alice", 1)])
    env.sign("alice", view.id, party_id(view, "张伟"))
    pdf = env.services.blobs.get(queries.operator_show(env.ctx, view.id).versions[-1].sha256)
    with env.services.sessions() as session:
        trust = load_trust_material(session)
    today = timestamp_horizon(io.BytesIO(pdf), trust, ["md5", "sha1"])
    assert today.weak_digest is None and today.document_timestamps == 1
    assert today.until > env.services.clock.now() + timedelta(days=365)
    # the day sha256 joins the list (in a later release), every file is due
    assert timestamp_horizon(io.BytesIO(pdf), trust, ["SHA256"]).weak_digest == "sha256"
