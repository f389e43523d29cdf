"""A holder's own certificate: renew with fresh consent from 30 days before expiry, revoke with a
reason (the CRL at once), and a certificate naming them as they no longer are stops signing."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest
from asn1crypto import crl as asn1_crl
from sqlalchemy import select

from appliance.errors import Conflict, NotFound
from appliance.models import (
    AuditEvent,
    Certificate,
    CertificateConsent,
    CertificateStatus,
    Crl,
    Notification,
    User,
)
from appliance.notify.messages import render_message
from appliance.workflow import certificates, signatures
from appliance.workflow.certificates import HolderReason
from appliance.workflow.errors import CertificateRequired
from tests.fakes.clock import FakeClock
from tests.workflow.conftest import CLIENT, WorkflowEnv, party_id


def _consent() -> certificates.Consent:
    agreement = certificates.certificate_agreement("zh_Hans_CN")
    return certificates.Consent(agreement.version, agreement.sha256, agreement.locale)


def _row(env: WorkflowEnv, certificate_id: int) -> Certificate:
    with env.services.sessions() as session:
        row = session.get(Certificate, certificate_id)
        assert row is not None
        session.expunge(row)
        return row


def _actions(env: WorkflowEnv, who: str) -> list[str]:
    """The person's certificate events in the operation log, in order."""
    with env.services.sessions() as session:
        return list(
            session.scalars(
                select(AuditEvent.action)
                .where(
                    AuditEvent.action.startswith("certificate."),
                    AuditEvent.actor_user_id == env.people[who].user_id,
                )
                .order_by(AuditEvent.seq)
            )
        )


def test_renewal_opens_30_days_before_expiry_and_replaces_the_old_certificate(workflow_factory) -> None:
    env = workflow_factory()
    alice = env.people["alice"]
    current = certificates.my_certificate(env.ctx, alice)
    assert current is not None
    with pytest.raises(Conflict, match=f"from {current.not_after - timedelta(days=30):%Y-%m-%d}"):
        certificates.renew_personal_certificate(env.ctx, alice, CLIENT, _consent())
    standing = certificates.certificate_standing(env.ctx, alice)
    assert standing.usable == current and standing.renewable_from == current.not_after - timedelta(days=30)

    later = dataclasses.replace(env.ctx, clock=FakeClock(current.not_after - timedelta(days=10)))
    renewed = certificates.renew_personal_certificate(later, alice, CLIENT, _consent())
    assert renewed.id != current.id and renewed.not_after > current.not_after
    assert _row(env, current.id).status is CertificateStatus.SUPERSEDED
    assert certificates.my_certificate(later, alice) == renewed
    with env.services.sessions() as session:
        consents = session.scalars(
            select(CertificateConsent).where(CertificateConsent.certificate_id == renewed.id)
        )
        assert [c.locale for c in consents] == ["zh_Hans_CN"]  # fresh consent, recorded with the new one
    assert _actions(env, "alice") == [
        "certificate.issued",
        "certificate.issued",
        "certificate.renewed",
    ]
    # a renewed certificate is outside its own window: no second renewal on top
    with pytest.raises(Conflict, match="can be renewed from"):
        certificates.renew_personal_certificate(later, alice, CLIENT, _consent())


def test_a_revoked_certificate_is_on_the_crl_at_once_and_never_signs(workflow_factory) -> None:
    env = workflow_factory()
    alice, bob = env.people["alice"], env.people["bob"]
    view = env.start([("alice", 1)])
    mine = certificates.my_certificate(env.ctx, alice)
    theirs = certificates.my_certificate(env.ctx, bob)
    assert mine is not None and theirs is not None
    with pytest.raises(NotFound):
        certificates.revoke_my_certificate(env.ctx, alice, CLIENT, theirs.id, HolderReason.KEY_COMPROMISE)

    revoked = certificates.revoke_my_certificate(env.ctx, alice, CLIENT, mine.id, HolderReason.KEY_COMPROMISE)
    assert revoked.status is CertificateStatus.REVOKED
    with env.services.sessions() as session:
        newest = session.scalars(select(Crl).order_by(Crl.this_update.desc(), Crl.id.desc())).first()
        assert newest is not None
        listed = asn1_crl.CertificateList.load(newest.der)["tbs_cert_list"]["revoked_certificates"]
        entries = {format(e["user_certificate"].native, "x"): e for e in listed}
    entry = entries[mine.serial.lower().lstrip("0")]
    assert entry["crl_entry_extensions"][0]["extn_value"].native == "key_compromise"
    with pytest.raises(Conflict, match="revoked already"):
        certificates.revoke_my_certificate(env.ctx, alice, CLIENT, mine.id, HolderReason.NO_LONGER_NEEDED)
    assert certificates.my_certificate(env.ctx, alice) is None

    party = party_id(view, "张伟")
    with pytest.raises(CertificateRequired, match="apply for one first"):
        signatures.request_code(env.ctx, alice, CLIENT, view.id, party)
        signatures.sign_party(env.ctx, alice, CLIENT, view.id, party, "000000")
    assert _actions(env, "alice") == ["certificate.issued", "certificate.revoked"]


def test_a_certificate_naming_someone_the_directory_no_longer_knows_stops_signing(workflow_factory) -> None:
    env = workflow_factory()
    alice = env.people["alice"]
    view = env.start([("alice", 1)])
    old = certificates.my_certificate(env.ctx, alice)
    assert old is not None
    with env.services.sessions.begin() as session:
        session.get_one(User, alice.user_id).display_name = "张伟（法务部）"  # renamed in the directory
    party = party_id(view, "张伟")
    code = env.code_for(alice, view.id, party)
    with pytest.raises(CertificateRequired, match="changed after your certificate was issued"):
        signatures.sign_party(env.ctx, alice, CLIENT, view.id, party, code)
    standing = certificates.certificate_standing(env.ctx, alice)
    assert standing.usable is None and standing.outdated

    fresh = certificates.apply_personal_certificate(env.ctx, alice, CLIENT, _consent())
    assert "张伟（法务部）" in fresh.subject
    assert _row(env, old.id).status is CertificateStatus.SUPERSEDED
    code = env.code_for(alice, view.id, party)
    signed = signatures.sign_party(env.ctx, alice, CLIENT, view.id, party, code)
    assert signed.state.value == "completed"


def test_holders_are_told_once_from_30_days_before_expiry(workflow_factory) -> None:
    env = workflow_factory()
    alice = env.people["alice"]
    current = certificates.my_certificate(env.ctx, alice)
    assert current is not None
    early = dataclasses.replace(env.ctx, clock=FakeClock(current.not_after - timedelta(days=31)))
    assert certificates.notify_renewals_due(early) == 0
    due = dataclasses.replace(env.ctx, clock=FakeClock(current.not_after - timedelta(days=29)))
    told = certificates.notify_renewals_due(due)
    assert told >= 1  # everyone whose certificate was issued with alice's
    assert certificates.notify_renewals_due(due) == 0  # once per certificate
    with env.services.sessions() as session:
        notices = session.scalars(
            select(Notification).where(
                Notification.user_id == alice.user_id, Notification.kind == "certificate_renewal_due"
            )
        ).all()
    assert len(notices) == 1 and current.serial in notices[0].params
    message = render_message("certificate_renewal_due", json.loads(notices[0].params), "zh_Hans_CN")
    assert "续期" in message.subject and f"{current.not_after:%Y-%m-%d}" in message.body
    assert notices[0].mail_to == "alice@example.com"
    # renewed: the new certificate is years from its own window, and nobody is told again
    certificates.renew_personal_certificate(due, alice, CLIENT, _consent())
    assert certificates.notify_renewals_due(due) == 0
