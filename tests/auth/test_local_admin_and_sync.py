"""The break-glass local administrator (CLI + login) and `appliance directory sync`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from appliance.cli import main
from appliance.models import User, UserSession
from tests.auth.conftest import LdapAppFactory, build_ldap_app, post_login
from tests.fixtures.ldap import Slapd

pytestmark = pytest.mark.ldap

STRONG = "Break-Glass-2026-xyz"


def _create(env, password: str, *extra: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(
        main,
        ["--config", str(env.config_path), "admin", "create", "root-admin", "--password-stdin", *extra],
        input=password + "\n",
    )


def test_admin_create_hashes_with_argon2_and_can_log_in(ldap_app: LdapAppFactory) -> None:
    env = ldap_app(auth={"local_admin_enabled": True})
    weak = _create(env, "password")
    assert weak.exit_code == 1 and "too weak" in weak.output
    result = _create(env, STRONG)
    assert result.exit_code == 0, result.output
    with env.services.sessions() as session:
        admin = session.execute(select(User).where(User.username == "root-admin")).scalar_one()
        assert admin.password_hash is not None and admin.password_hash.startswith("$argon2id$")
        assert STRONG not in admin.password_hash
        assert {r.value for r in admin.role_set()} == {"system_admin"}
    client = env.client()
    assert post_login(client, "root-admin", "wrong-password-1").status_code == 401
    assert post_login(client, "root-admin", STRONG).status_code == 303
    assert "system_admin" in client.get("/account").get_data(as_text=True)


def test_local_admin_disabled_by_config(ldap_app: LdapAppFactory) -> None:
    env = ldap_app(auth={"local_admin_enabled": True})
    assert _create(env, STRONG).exit_code == 0
    client = env.client()
    assert post_login(client, "root-admin", STRONG).status_code == 303
    cookie = client.get_cookie("appliance_session")
    assert cookie is not None
    disabled = ldap_app(auth={"local_admin_enabled": False})  # same database, config turned off
    replay = disabled.client()
    replay.set_cookie("appliance_session", cookie.value)
    assert replay.get("/account").status_code == 302  # the open session no longer counts
    response = post_login(disabled.client(), "root-admin", STRONG)
    assert response.status_code == 401  # same answer as any failed login
    reasons = [json.loads(e.details)["reason"] for e in disabled.audit("auth.login_failed")]
    assert reasons == ["local_admin_disabled"]
    refused = _create(disabled, STRONG)
    assert refused.exit_code == 1 and "local_admin_enabled" in refused.output


def test_sync_refreshes_everyone_and_marks_leavers(ldap_app: LdapAppFactory, slapd: Slapd) -> None:
    env = ldap_app()
    slapd.ldap_cli(
        "ldapadd",
        "dn: uid=temp-sync,ou=Sales,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\n"
        "uid: temp-sync\ncn: Temp Person\nsn: Person\nuserPassword: temp-Secret-1\n",
    )
    try:
        temp = env.client()
        assert post_login(temp, "temp-sync", "temp-Secret-1").status_code == 303
        assert post_login(env.client(), "alice", "alice-Secret-1").status_code == 303
        assert post_login(env.client(), "bob", "bob-Secret-1").status_code == 303
        assert post_login(env.client(), "dave", "dave-Secret-1").status_code == 303
    finally:
        slapd.ldap_cli("ldapdelete", "uid=temp-sync,ou=Sales,ou=people,dc=example,dc=org\n")
    result = CliRunner().invoke(main, ["--config", str(env.config_path), "directory", "sync"])
    assert result.exit_code == 0, result.output
    assert "refreshed 3, deactivated 0, left 1" in result.output
    with env.services.sessions() as session:
        gone = session.execute(select(User).where(User.username == "temp-sync")).scalar_one()
        assert not gone.active and gone.left_directory_at is not None  # the record is kept
        sessions = session.execute(select(UserSession).where(UserSession.user_id == gone.id)).scalars()
        assert all(s.revoked_at is not None for s in sessions)
    assert temp.get("/account").status_code == 302  # their open session ended
    assert [e.action for e in env.audit() if e.action in ("user.left_directory", "directory.sync")] == [
        "user.left_directory",
        "directory.sync",
    ]


def test_sync_refuses_when_most_people_vanish(ldap_app: LdapAppFactory) -> None:
    env = ldap_app()
    for name in ("alice", "bob", "dave"):
        post_login(env.client(), name, f"{name}-Secret-1")
    wrong_base = build_ldap_app(
        env.services.config.model_copy(
            update={
                "directory": env.services.config.directory.model_copy(  # type: ignore[union-attr]
                    update={"user_base_dn": "ou=nowhere,dc=example,dc=org"}
                )
            }
        ),
        env.config_path,
    )
    from appliance.auth import AuthService
    from appliance.errors import Conflict

    service = AuthService(
        wrong_base.services.sessions, wrong_base.services.directory, env.services.config.auth, env.clock
    )
    with pytest.raises(Conflict, match="--force"):
        service.sync_directory()
    with env.services.sessions() as session:
        assert all(u.active for u in session.execute(select(User)).scalars())
