"""A person freezes their own account: sessions and tokens end at once, signing in and every
workflow command are refused; an administrator of their organisation (or a system
administrator) lifts it, and nobody else can."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from appliance.auth.errors import RefusalReason
from appliance.auth.freeze import freeze_account
from appliance.directory.errors import AuthenticationFailed
from appliance.errors import Conflict, Forbidden, NotFound
from appliance.models import AuditEvent, Notification, Role, User
from appliance.workflow import queries
from tests.workflow.conftest import CLIENT

PASSWORD = "Break-glass-Passw0rd-for-tests"


def test_a_frozen_account_can_do_nothing_until_its_admin_lifts_it(workflow_factory) -> None:
    env = workflow_factory()
    auth = env.services.auth
    alice = env.people["alice"]
    view = env.start([("alice", 1)])
    auth.create_token(alice.user_id, "phone", CLIENT)

    assert auth.freeze_my_account(alice.user_id, CLIENT) == 1  # the token, revoked
    with pytest.raises(Forbidden, match="frozen"):
        queries.get_contract(env.ctx, alice, CLIENT, view.id)
    with pytest.raises(Forbidden):  # a frozen account is not active: it cannot freeze again
        auth.freeze_my_account(alice.user_id, CLIENT)

    # only administrators lift, and an organisation admin only their own organisation's people
    for outsider in ("bob", "keeper"):
        with pytest.raises(Forbidden):
            auth.lift_freeze(env.people[outsider].user_id, alice.user_id, CLIENT)
    mallory = env.people["mallory"]
    auth.freeze_my_account(mallory.user_id, CLIENT)
    admin = env.people["orgadmin"]
    assert [a.username for a in auth.list_frozen(admin.user_id)] == ["alice"]
    with pytest.raises(NotFound):
        auth.lift_freeze(admin.user_id, mallory.user_id, CLIENT)
    root = env.add_person("root", "Sys Admin", Role.SYSTEM_ADMIN)
    assert {a.username for a in auth.list_frozen(root.user_id)} == {"alice", "mallory"}

    lifted = auth.lift_freeze(admin.user_id, alice.user_id, CLIENT)
    assert lifted.username == "alice"
    assert queries.get_contract(env.ctx, alice, CLIENT, view.id).id == view.id
    assert [t.revoked_at is not None for t in auth.list_tokens(alice.user_id)] == [True]  # new ones, please
    with pytest.raises(NotFound):
        auth.lift_freeze(admin.user_id, alice.user_id, CLIENT)
    with env.services.sessions() as session:
        actions = session.scalars(
            select(AuditEvent.action).where(
                AuditEvent.action.in_(("auth.account_frozen", "auth.freeze_lifted"))
            )
        ).all()
        told = session.scalars(
            select(Notification.kind).where(
                Notification.user_id == alice.user_id, Notification.kind == "account_unfrozen"
            )
        ).all()
    assert actions == ["auth.account_frozen", "auth.account_frozen", "auth.freeze_lifted"]
    assert told == ["account_unfrozen"]


def test_signing_in_to_a_frozen_account_is_refused(workflow_factory) -> None:
    env = workflow_factory()
    auth = env.services.auth
    admin_id = auth.create_local_admin("breakglass", PASSWORD)
    opened = auth.login("breakglass", PASSWORD, CLIENT)
    token = auth.create_token(admin_id, "script", CLIENT).token
    assert auth.resolve_session(opened.session_token) is not None and auth.resolve_token(token) is not None
    assert auth.freeze_my_account(admin_id, CLIENT) == 2
    assert auth.resolve_session(opened.session_token) is None  # the open session ended
    assert auth.resolve_token(token) is None
    with pytest.raises(AuthenticationFailed) as refused:
        auth.login("breakglass", PASSWORD, CLIENT)
    assert refused.value.reason is RefusalReason.FROZEN
    # frozen twice (two tabs): the second is told so, and the first freeze's time stays
    with pytest.raises(Conflict, match="frozen already"), env.services.sessions.begin() as session:
        freeze_account(session, session.get_one(User, admin_id), CLIENT, env.services.clock.now())
