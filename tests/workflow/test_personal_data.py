"""What the appliance holds about a person: everything of theirs, nothing of anyone else's."""

from __future__ import annotations

import io
import json

from sqlalchemy import select

from appliance.audit import AuditRecord, append_event
from appliance.models import AuditEvent, Contract
from appliance.workflow import queries
from appliance.workflow.personal_data import export_my_personal_data, my_personal_data
from appliance.workflow.store import record
from appliance.workflow.verification import verify_document
from tests.workflow.conftest import CLIENT, party_id


def test_my_data_holds_my_profile_certificates_contracts_and_sign_ins_only(workflow_factory) -> None:
    env = workflow_factory()
    alice = env.people["alice"]
    hers = env.start([("alice", 1)])
    not_hers = env.start([("bob", 1)])
    archived = env.start([("alice", 1)])
    with env.services.sessions.begin() as session:
        session.get(Contract, archived.id).archived_at = env.services.clock.now()
        for action, who in (
            ("auth.login", alice),
            ("auth.login_failed", alice),
            ("auth.login", env.people["bob"]),
        ):
            append_event(
                session,
                AuditRecord(
                    action=action,
                    occurred_at=env.services.clock.now(),
                    actor_user_id=who.user_id,
                    actor_name=who.username,
                    client_address="10.9.8.7",
                ),
            )

    data = my_personal_data(env.ctx, alice)
    assert data.profile.username == "alice" and data.profile.email == "alice@example.com"
    assert data.profile.organisation == "北京示例科技有限公司" and data.profile.source == "directory"
    assert data.roles == ("employee",)
    assert [c.kind.value for c in data.certificates] == ["person"]
    assert len(data.consents) == 1 and data.consents[0].certificate_serial == data.certificates[0].serial
    assert [(c.id, c.initiated) for c in data.contracts] == [(hers.id, False)]
    assert not_hers.id not in {c.id for c in data.contracts} and data.archived_contracts == 1
    assert [s.action for s in data.sign_ins] == ["auth.login_failed", "auth.login"]

    exported = export_my_personal_data(env.ctx, alice, CLIENT).to_json()
    parsed = json.loads(exported)
    assert parsed["profile"]["display_name"] == "张伟" and parsed["contracts"][0]["state"] == "signing"
    for someone_else in ("bob@example.com", "initiator@example.com", "Bob Builder"):
        assert someone_else not in exported
    with env.services.sessions() as session:
        logged = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "personal_data.exported")
        ).one()
    assert logged.actor_user_id == alice.user_id and logged.client_address == CLIENT.address


def test_evidence_and_verification_reports_mask_other_peoples_contact_data(workflow_factory) -> None:
    env = workflow_factory()
    view = env.start([("alice", 1)])
    env.sign("alice", view.id, party_id(view, "张伟"))
    with env.services.sessions.begin() as session:
        contract = session.get(Contract, view.id)
        record(
            session,
            contract,
            "reminded",
            actor=None,
            client=None,
            now=env.services.clock.now(),
            details={"note": "call 张伟 on 13812341234 or alice@example.com"},
        )
    evidence = queries.contract_evidence(env.ctx, env.people["initiator"], view.id)
    shown = json.dumps([e.details for e in evidence], ensure_ascii=False)
    assert "138****1234" in shown and "a***@example.com" in shown
    assert "13812341234" not in shown and "alice@example.com" not in shown

    signed = env.services.blobs.get(queries.operator_show(env.ctx, view.id).versions[-1].sha256)
    report = verify_document(env.ctx, env.people["bob"], io.BytesIO(signed))
    subjects = json.dumps(report.to_json(), ensure_ascii=False)
    assert "a***@example.com" in subjects and "alice@example.com" not in subjects
