"""The permission table, cell by cell: a person holding one role (besides employee) tries every
action of appliance.permissions through the real workflow, and exactly the actions the table
gives that role succeed; the organisation scope stops at the organisation; and guessing the id
of a contract, seal or template one may not see answers 404 exactly like an id that does not exist."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select

from appliance.audit.browse import LogFilter
from appliance.auth.records import Principal
from appliance.config import Role
from appliance.errors import Forbidden, NotFound
from appliance.models import Organisation, User
from appliance.permissions import PERMISSIONS, Action, Scope, roles_for
from appliance.workflow import (
    closing,
    data_requests,
    mobile,
    oplog,
    queries,
    signatures,
    templates,
    webhooks,
)
from appliance.workflow.queries import ContractFilter
from appliance.workflow.seal_usage import seal_usage_log
from appliance.workflow.seals import organisation_seal
from tests.workflow.conftest import CLIENT, WorkflowEnv, party_id

Probe = Callable[[Principal], object]


def probes(env: WorkflowEnv) -> dict[Action, Probe]:
    """One real call per action; each raises Forbidden or NotFound when it is refused."""
    readable = env.start([("alice", 1)])
    sealed = env.start([("seal", 1)])
    completed = env.start([("alice", 1)])
    env.sign("alice", completed.id, party_id(completed, "张伟"))
    template = saved_template(env)
    ctx, auth = env.ctx, env.services.auth
    return {
        Action.READ_CONTRACTS: lambda p: queries.get_contract(ctx, p, CLIENT, readable.id),
        Action.END_CONTRACTS: lambda p: closing.end_contract(ctx, p, CLIENT, completed.id, "Terminated."),
        Action.APPLY_SEALS: lambda p: signatures.request_code(
            ctx, p, CLIENT, sealed.id, sealed.parties[0].id
        ),
        Action.MANAGE_SEALS: lambda p: organisation_seal(ctx, p, env.seal_id),
        Action.READ_SEAL_USAGE: lambda p: seal_usage_log(ctx, p, env.seal_id),
        # retiring is idempotent: the roles after the first allowed one still get an answer
        Action.MANAGE_TEMPLATES: lambda p: templates.retire_template(ctx, p, CLIENT, template),
        Action.READ_ARCHIVE: lambda p: queries.list_contracts(
            ctx, p, ContractFilter(archived=True), cursor=None, limit=10
        ),
        Action.READ_OPERATION_LOG: lambda p: oplog.browse_log(ctx, p, LogFilter(), before=None, limit=1),
        Action.ANSWER_DATA_REQUESTS: lambda p: data_requests.open_requests(ctx, p),
        Action.LIFT_FREEZES: lambda p: auth.list_frozen(p.user_id),
        Action.LIFT_SIGN_IN_LOCKS: lambda p: auth.list_locks(p.user_id),
        Action.SET_UP_MOBILE_ACCESS: lambda p: mobile.vpn_handouts(ctx, p),
        Action.MANAGE_WEBHOOKS: lambda p: webhooks.list_endpoints(ctx, p),
    }


def saved_template(env: WorkflowEnv) -> int:
    """A template the initiator saved from a draft of theirs."""
    draft = env.start([("alice", 1)], send=False)
    return templates.save_template(env.ctx, env.people["initiator"], CLIENT, draft.id, "Standard").id


def allowed(probe: Probe, who: Principal) -> bool:
    try:
        probe(who)
    except (Forbidden, NotFound):
        return False
    return True


def organisation_id(env: WorkflowEnv) -> int:
    with env.services.sessions() as session:
        return session.scalars(select(User.organisation_id).where(User.username == "orgadmin")).one()


def test_each_role_can_do_its_own_actions_and_nothing_else(workflow_factory) -> None:
    env = workflow_factory()
    org = organisation_id(env)
    people = {
        role: env.add_person(f"only-{role.value}", f"Only {role.value}", role, organisation_id=org)
        for role in Role
    }
    actions = probes(env)
    assert set(actions) == set(Action)  # every action of the table has its probe

    seen: dict[Role, set[Action]] = {}
    # ending changes the contract for good, so the roles that may end it try last
    for role in sorted(Role, key=lambda r: Action.END_CONTRACTS in PERMISSIONS[r]):
        seen[role] = {action for action, probe in actions.items() if allowed(probe, people[role])}
    assert seen == {role: set(PERMISSIONS[role]) for role in Role}
    assert roles_for(Action.LIFT_FREEZES) == {Role.ORG_ADMIN, Role.SYSTEM_ADMIN}


def test_the_organisation_scope_stops_at_the_organisation(workflow_factory) -> None:
    env = workflow_factory()
    with env.services.sessions.begin() as session:
        other = Organisation(name="Other Trading Ltd", code="other", created_at=env.ctx.clock.now())
        session.add(other)
        session.flush()
        other_id = other.id
    outsiders = {
        role: env.add_person(f"other-{role.value}", f"Other {role.value}", role, organisation_id=other_id)
        for role in (Role.ORG_ADMIN, Role.AUDITOR, Role.SEAL_KEEPER)
    }
    actions = probes(env)
    for role, who in outsiders.items():
        for action, scope in PERMISSIONS[role].items():
            if action in (Action.LIFT_FREEZES, Action.LIFT_SIGN_IN_LOCKS):
                continue  # lists of the outsider's own organisation (tests/workflow/test_freeze.py)
            # an organisation's reach ends at it; the appliance's does not
            assert allowed(actions[action], who) is (scope is Scope.APPLIANCE), (role, action)


@pytest.mark.parametrize("guess", ["contract", "seal", "template"])
def test_guessing_an_id_answers_like_a_missing_one(workflow_factory, guess: str) -> None:
    env = workflow_factory()
    mallory, admin = env.people["mallory"], env.people["orgadmin"]
    with env.services.sessions.begin() as session:
        other = Organisation(name="Other Trading Ltd", code="other", created_at=env.ctx.clock.now())
        session.add(other)
        session.flush()
        other_id = other.id
    rival = env.add_person("rival", "Rival Admin", Role.ORG_ADMIN, organisation_id=other_id)
    if guess == "contract":
        existing = env.start([("alice", 1)]).id
        attempts = [
            lambda i: queries.get_contract(env.ctx, mallory, CLIENT, i),
            lambda i: queries.get_contract(env.ctx, rival, CLIENT, i),
        ]
    elif guess == "template":
        existing = saved_template(env)
        attempts = [
            lambda i: templates.get_template(env.ctx, mallory, i),
            lambda i: templates.get_template(env.ctx, rival, i),
            lambda i: templates.retire_template(env.ctx, rival, CLIENT, i),
        ]
    else:
        existing = env.seal_id
        attempts = [
            lambda i: organisation_seal(env.ctx, rival, i),
            lambda i: seal_usage_log(env.ctx, rival, i),
        ]
    for attempt in attempts:
        with pytest.raises(NotFound) as for_existing:
            attempt(existing)
        with pytest.raises(NotFound) as for_missing:
            attempt(existing + 10_000)
        assert for_existing.value.public == for_missing.value.public
    assert organisation_seal(env.ctx, admin, env.seal_id).id == env.seal_id  # its own admin sees it
