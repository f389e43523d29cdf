"""An organisation's admin renews and revokes its seals' certificates; others cannot."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import select

from appliance.errors import Conflict, Forbidden, NotFound
from appliance.models import Certificate, CertificateStatus, Notification, RevocationReason, Seal
from appliance.workflow import certificates, seals, signatures
from appliance.workflow.errors import CertificateRequired
from appliance.workflow.seals import OrganisationReason
from tests.fakes.clock import FakeClock
from tests.workflow.conftest import CLIENT, WorkflowEnv, party_id


def _consent() -> certificates.Consent:
    agreement = certificates.certificate_agreement("en")
    return certificates.Consent(agreement.version, agreement.sha256, agreement.locale)


def _seal_certificate(env: WorkflowEnv) -> Certificate:
    with env.services.sessions() as session:
        seal = session.get_one(Seal, env.seal_id)
        row = session.get_one(Certificate, seal.certificate_id)
        session.expunge(row)
        return row


def test_the_org_admin_renews_in_the_window_and_is_told_when_it_opens(workflow_factory) -> None:
    env = workflow_factory()
    admin = env.people["orgadmin"]
    current = _seal_certificate(env)
    with pytest.raises(Conflict, match="can be renewed from"):
        seals.renew_seal_certificate(env.ctx, admin, CLIENT, env.seal_id, _consent())
    for outsider in ("keeper", "alice"):
        with pytest.raises(Forbidden):
            seals.renew_seal_certificate(env.ctx, env.people[outsider], CLIENT, env.seal_id, _consent())
    with pytest.raises(NotFound):  # mallory belongs to no organisation: the seal is not hers to see
        seals.renew_seal_certificate(env.ctx, env.people["mallory"], CLIENT, env.seal_id, _consent())

    due = dataclasses.replace(env.ctx, clock=FakeClock(current.not_after - timedelta(days=20)))
    assert seals.notify_seal_renewals_due(due) == 1
    assert seals.notify_seal_renewals_due(due) == 0
    with env.services.sessions() as session:
        told = session.scalars(
            select(Notification.user_id).where(Notification.kind == "seal_certificate_renewal_due")
        ).all()
    assert told == [admin.user_id]

    renewed = seals.renew_seal_certificate(due, admin, CLIENT, env.seal_id, _consent())
    assert renewed.id != current.id and _seal_certificate(env).id == renewed.id
    with env.services.sessions() as session:
        assert session.get_one(Certificate, current.id).status is CertificateStatus.SUPERSEDED


def test_revoking_for_dissolution_stops_the_seal_until_a_new_certificate(workflow_factory) -> None:
    env = workflow_factory()
    admin = env.people["orgadmin"]
    view = env.start([("seal", 1)])
    with pytest.raises(Forbidden):
        seals.revoke_seal_certificate(
            env.ctx, env.people["keeper"], CLIENT, env.seal_id, OrganisationReason.DISSOLVED
        )
    revoked = seals.revoke_seal_certificate(env.ctx, admin, CLIENT, env.seal_id, OrganisationReason.DISSOLVED)
    assert revoked.status is CertificateStatus.REVOKED
    with env.services.sessions() as session:
        assert (
            session.get_one(Certificate, revoked.id).revocation_reason
            is RevocationReason.CESSATION_OF_OPERATION
        )
    with pytest.raises(Conflict, match="revoked already"):
        seals.revoke_seal_certificate(env.ctx, admin, CLIENT, env.seal_id, OrganisationReason.MERGED)

    party = party_id(view, "合同专用章")
    code = env.code_for(env.people["keeper"], view.id, party)
    with pytest.raises(CertificateRequired, match="organisation's admin must apply"):
        signatures.sign_party(env.ctx, env.people["keeper"], CLIENT, view.id, party, code)
    seals.apply_seal_certificate(env.ctx, admin, CLIENT, env.seal_id, _consent())
    code = env.code_for(env.people["keeper"], view.id, party)
    assert (
        signatures.sign_party(env.ctx, env.people["keeper"], CLIENT, view.id, party, code).state.value
        == "completed"
    )
