"""Who applies a seal: the org admin names keepers per seal, in person or by directory group;
then only they see the seal's turn, are told and apply it, and the organisation's seal keepers
(the role) no longer do. With nobody named, the role's holders apply it. SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from appliance.errors import Forbidden, InvalidInput, NotFound
from appliance.models import AuditEvent, ContractState, Notification
from appliance.workflow import seals, signatures, todo
from appliance.workflow.seal_keepers import set_seal_keepers
from tests.workflow.conftest import CLIENT, WorkflowEnv

KEEPERS_GROUP = "cn=Finance Keepers,ou=groups,dc=example,dc=com"


def told_to_sign(env: WorkflowEnv, who: str) -> int:
    with env.services.sessions() as session:
        return len(
            session.scalars(
                select(Notification.id).where(
                    Notification.user_id == env.people[who].user_id, Notification.kind == "contract_to_sign"
                )
            ).all()
        )


def test_a_named_keeper_applies_the_seal_and_the_role_alone_no_longer_does(
    workflow_factory, any_db_url
) -> None:
    env = workflow_factory(any_db_url)
    admin = env.people["orgadmin"]
    named = set_seal_keepers(env.ctx, admin, CLIENT, env.seal_id, usernames=["bob"], groups=[])
    assert named.usernames == ("bob",)
    assert seals.organisation_seal(env.ctx, admin, env.seal_id).keepers == named
    keeper_told, bob_told = told_to_sign(env, "keeper"), told_to_sign(env, "bob")

    view = env.start([("seal", 1)])
    seal_party = view.parties[0].id
    assert (told_to_sign(env, "keeper"), told_to_sign(env, "bob")) == (keeper_told, bob_told + 1)
    assert todo.list_todo(env.ctx, env.people["keeper"]).items == ()
    assert [i.contract_id for i in todo.list_todo(env.ctx, env.people["bob"]).items] == [view.id]
    with pytest.raises(NotFound):  # the role's holder no longer sees it as a party
        signatures.request_code(env.ctx, env.people["keeper"], CLIENT, view.id, seal_party)
    assert env.sign("bob", view.id, seal_party).state is ContractState.COMPLETED

    cleared = set_seal_keepers(env.ctx, admin, CLIENT, env.seal_id, usernames=[], groups=[])
    assert (cleared.usernames, cleared.groups) == ((), ())
    again = env.start([("seal", 1)])
    assert [i.contract_id for i in todo.list_todo(env.ctx, env.people["keeper"]).items] == [again.id]
    assert todo.list_todo(env.ctx, env.people["bob"]).items == ()


def test_the_members_of_a_keeper_group_apply_the_seal(workflow_factory, any_db_url) -> None:
    env = workflow_factory(any_db_url)
    env.in_group("alice", "cn=finance keepers,ou=groups,dc=example,dc=com")
    env.in_group("mallory", "cn=finance keepers,ou=groups,dc=example,dc=com")  # of no organisation
    named = set_seal_keepers(
        env.ctx, env.people["orgadmin"], CLIENT, env.seal_id, usernames=[], groups=[KEEPERS_GROUP]
    )
    assert named.groups == (
        "cn=finance keepers,ou=groups,dc=example,dc=com",
    )  # normalised, as sign-in stores them
    view = env.start([("seal", 1)])
    assert told_to_sign(env, "alice") == 1 and told_to_sign(env, "mallory") == 0
    assert todo.list_todo(env.ctx, env.people["mallory"]).items == ()
    assert env.sign("alice", view.id, view.parties[0].id).state is ContractState.COMPLETED
    with env.services.sessions() as session:
        logged = session.scalars(
            select(AuditEvent.details).where(AuditEvent.action == "seal.keepers_set")
        ).all()
    assert logged and "finance keepers" in str(logged[-1])


def test_only_the_seals_admin_names_keepers_and_only_colleagues_or_real_groups(workflow_factory) -> None:
    env = workflow_factory()
    admin = env.people["orgadmin"]
    with pytest.raises(Forbidden):
        set_seal_keepers(env.ctx, env.people["keeper"], CLIENT, env.seal_id, usernames=["bob"], groups=[])
    with pytest.raises(NotFound):
        set_seal_keepers(env.ctx, env.people["mallory"], CLIENT, env.seal_id, usernames=[], groups=[])
    for usernames, groups, problem in (
        (["mallory"], [], "not in the seal's organisation"),
        (["nobody"], [], "has not signed in"),
        (["bob", "bob"], [], "once"),
        ([], ["not a dn"], "not a group's DN"),
        ([], [KEEPERS_GROUP, KEEPERS_GROUP.upper()], "once"),
    ):
        with pytest.raises(InvalidInput, match=problem):
            set_seal_keepers(env.ctx, admin, CLIENT, env.seal_id, usernames=usernames, groups=groups)
    assert seals.organisation_seal(env.ctx, admin, env.seal_id).keepers.usernames == ()
