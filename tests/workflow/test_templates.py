"""Contract templates: saved from a draft, started from by filling in the people, retired;
seen only inside their organisation. SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from sqlalchemy import func, select

from appliance.errors import Conflict, Forbidden, InvalidInput, NotFound
from appliance.models import AuditEvent, Contract, ContractState, Organisation, PartyKind, PartyStatus, Role
from appliance.workflow import drafts, queries, retention, seals
from appliance.workflow.sweep import referenced_blobs
from appliance.workflow.templates import (
    StartFromTemplate,
    get_template,
    list_templates,
    retire_template,
    save_template,
    start_from_template,
)
from tests.fakes.clock import FakeClock
from tests.fixtures.pdfs import make_pdf
from tests.workflow.conftest import CLIENT, FIELD, WorkflowEnv


def saved_template(env: WorkflowEnv) -> tuple[int, dict[str, int]]:
    """A template saved from a draft with alice (order 1) and the seal (order 2); its id and
    role ids by label."""
    draft = env.start([("alice", 1), ("seal", 2)], send=False)
    alice = next(p.id for p in draft.parties if p.kind is PartyKind.PERSON)
    template = save_template(
        env.ctx, env.people["initiator"], CLIENT, draft.id, "采购合同模板", {alice: "Buyer 买方"}
    )
    return template.id, {role.label: role.id for role in template.roles}


def contracts(env: WorkflowEnv) -> int:
    with env.services.sessions() as session:
        return session.scalar(select(func.count()).select_from(Contract)) or 0


def test_a_draft_saved_as_a_template_starts_contracts_with_its_file_fields_and_seal(
    workflow_factory, any_db_url
) -> None:
    env = workflow_factory(any_db_url)
    template_id, roles = saved_template(env)
    template = get_template(env.ctx, env.people["bob"], template_id)  # anyone of the organisation
    assert [(r.label, r.kind, r.routing_order) for r in template.roles] == [
        ("Buyer 买方", PartyKind.PERSON, 1),
        ("合同专用章", PartyKind.SEAL, 2),
    ]
    assert template.roles[0].fields == (FIELD,)
    assert not template.yours_to_retire  # bob did not save it

    view = start_from_template(
        env.ctx,
        env.people["bob"],
        CLIENT,
        template_id,
        StartFromTemplate(title="采购合同 No. 7", not_excluded=True, people={roles["Buyer 买方"]: "alice"}),
    )
    assert view.state is ContractState.DRAFT and view.initiator_name == "Bob Builder"
    assert view.versions[0].sha256 == template.sha256
    assert [(p.name, p.routing_order, p.fields[0].x) for p in view.parties] == [
        ("张伟", 1, FIELD.x),
        ("合同专用章", 2, FIELD.x),
    ]
    evidence = queries.contract_evidence(env.ctx, env.people["bob"], view.id)
    assert [e.action for e in evidence] == ["created", "party_added", "party_added"]
    assert evidence[0].details["template_id"] == template_id
    assert evidence[0].details["confirmed_not_excluded"] == list(drafts.EXCLUDED_KINDS)

    sent = start_from_template(
        env.ctx,
        env.people["bob"],
        CLIENT,
        template_id,
        StartFromTemplate(
            title="采购合同 No. 8", not_excluded=True, people={roles["Buyer 买方"]: "bob"}, send=True
        ),
    )
    assert sent.state is ContractState.SIGNING
    assert [p.status for p in sent.parties] == [PartyStatus.PENDING, PartyStatus.WAITING]
    signed = env.sign("bob", sent.id, sent.parties[0].id)
    assert [p.status for p in signed.parties] == [PartyStatus.SIGNED, PartyStatus.PENDING]


def test_a_start_that_fails_leaves_nothing(workflow_factory) -> None:
    env = workflow_factory()
    template_id, roles = saved_template(env)
    before = contracts(env)
    with pytest.raises(InvalidInput, match="Buyer"):
        start_from_template(
            env.ctx, env.people["bob"], CLIENT, template_id, StartFromTemplate("No people", True, people={})
        )
    with pytest.raises(InvalidInput, match="no person role"):
        start_from_template(
            env.ctx,
            env.people["bob"],
            CLIENT,
            template_id,
            StartFromTemplate("A seal's role", True, people={roles["合同专用章"]: "alice"}),
        )
    with pytest.raises(NotFound):  # nobody of that login name: the draft is not half made
        start_from_template(
            env.ctx,
            env.people["bob"],
            CLIENT,
            template_id,
            StartFromTemplate("Ghost", True, people={roles["Buyer 买方"]: "nobody-here"}),
        )
    with pytest.raises(InvalidInput, match="law"):
        start_from_template(
            env.ctx,
            env.people["bob"],
            CLIENT,
            template_id,
            StartFromTemplate("Unconfirmed", False, people={roles["Buyer 买方"]: "alice"}),
        )
    seals.set_seal_state(env.ctx, env.people["orgadmin"], CLIENT, env.seal_id, seals.SealState.DISABLED)
    with pytest.raises(NotFound, match="no seal in use"):  # the person was added before the seal failed
        start_from_template(
            env.ctx,
            env.people["bob"],
            CLIENT,
            template_id,
            StartFromTemplate("Disabled seal", True, people={roles["Buyer 买方"]: "alice"}, send=True),
        )
    assert contracts(env) == before


def test_templates_stay_inside_their_organisation(workflow_factory) -> None:
    env = workflow_factory()
    template_id, roles = saved_template(env)
    with env.services.sessions.begin() as session:
        other = Organisation(name="Other Ltd", code="other", created_at=datetime.now(UTC))
        session.add(other)
        session.flush()
        other_id = other.id
    rival = env.add_person("rival", "Rival Admin", Role.ORG_ADMIN, organisation_id=other_id)
    start = StartFromTemplate("x", True, {roles["Buyer 买方"]: "alice"})
    for who in (rival, env.people["mallory"]):  # another organisation's admin; someone of none
        assert list_templates(env.ctx, who) == ()
        for attempt in (
            partial(get_template, env.ctx, who, template_id),
            partial(retire_template, env.ctx, who, CLIENT, template_id),
            partial(start_from_template, env.ctx, who, CLIENT, template_id, start),
            partial(get_template, env.ctx, who, template_id + 1000),
        ):
            with pytest.raises(NotFound, match="no template of your organisation"):
                attempt()
    draft = drafts.create_contract(
        env.ctx,
        env.people["mallory"],
        CLIENT,
        drafts.NewContract("Mine", "mine.pdf", True),
        io.BytesIO(make_pdf()),
    )
    with pytest.raises(Forbidden, match="organisation"):  # someone of no organisation saves none
        save_template(env.ctx, env.people["mallory"], CLIENT, draft.id, "Mine")


def test_only_the_saver_or_an_org_admin_retires_and_a_retired_template_starts_nothing(
    workflow_factory, any_db_url
) -> None:
    env = workflow_factory(any_db_url)
    template_id, roles = saved_template(env)
    with pytest.raises(Forbidden):
        retire_template(env.ctx, env.people["bob"], CLIENT, template_id)
    retired = retire_template(env.ctx, env.people["orgadmin"], CLIENT, template_id)
    assert retired.retired_at is not None
    assert list_templates(env.ctx, env.people["bob"]) == ()
    assert [t.id for t in list_templates(env.ctx, env.people["bob"], include_retired=True)] == [template_id]
    with pytest.raises(Conflict, match="retired"):
        start_from_template(
            env.ctx,
            env.people["bob"],
            CLIENT,
            template_id,
            StartFromTemplate("Late", True, {roles["Buyer 买方"]: "alice"}),
        )
    with env.services.sessions() as session:
        logged = session.scalars(
            select(AuditEvent.action).where(AuditEvent.object_type == "template").order_by(AuditEvent.seq)
        ).all()
    assert logged == ["template.saved", "template.retired"]


def test_only_a_draft_with_parties_is_saved(workflow_factory) -> None:
    env = workflow_factory()
    empty = env.start([], send=False)
    with pytest.raises(Conflict, match="parties"):
        save_template(env.ctx, env.people["initiator"], CLIENT, empty.id, "Empty")
    sent = env.start([("alice", 1)])
    with pytest.raises(Conflict, match="draft"):
        save_template(env.ctx, env.people["initiator"], CLIENT, sent.id, "Sent")
    draft = env.start([("alice", 1)], send=False)
    with pytest.raises(NotFound):  # bob cannot see the initiator's draft
        save_template(env.ctx, env.people["bob"], CLIENT, draft.id, "Not mine")
    with pytest.raises(InvalidInput):
        save_template(env.ctx, env.people["initiator"], CLIENT, draft.id, "   ")
    with pytest.raises(InvalidInput, match="role name"):
        save_template(
            env.ctx, env.people["initiator"], CLIENT, draft.id, "Long", {draft.parties[0].id: "x" * 101}
        )


def test_the_template_file_outlives_the_draft_it_came_from(workflow_factory) -> None:
    env = workflow_factory()
    template_id, _ = saved_template(env)
    sha256 = get_template(env.ctx, env.people["initiator"], template_id).sha256
    with env.services.sessions.begin() as session:
        for contract in session.scalars(select(Contract)):
            contract.created_at -= timedelta(days=800)
    now = env.services.clock.now()
    retention.sweep_retention(dataclasses.replace(env.ctx, clock=FakeClock(now)))  # tells first
    later = dataclasses.replace(env.ctx, clock=FakeClock(now + timedelta(days=31)))
    report = retention.sweep_retention(later)
    assert (report.deleted, report.blobs_removed) == (1, 0)
    assert contracts(env) == 0
    with env.services.sessions() as session:
        assert referenced_blobs(session, [sha256]) == {sha256}
    assert env.ctx.blobs.exists(sha256)
