"""Who a directory row belongs to: immutable ids, reused names, cancelled accounts, re-checks.

Each test adds its own people to the session's slapd (unique names) and removes them again,
so the shared test tree stays as the other tests expect it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from appliance.cli import main
from appliance.models import ApiToken, User, UserSession
from tests.auth.conftest import LdapApp, LdapAppFactory, post_login
from tests.fixtures.ldap import Slapd, free_port

pytestmark = pytest.mark.ldap

PEOPLE = "ou=people,dc=example,dc=org"


class People:
    """Entries a test adds to the shared slapd; removed again afterwards."""

    def __init__(self, slapd: Slapd) -> None:
        self.slapd = slapd
        self.added: list[str] = []

    def add(self, uid: str, ou: str, name: str, password: str, extra: str = "") -> str:
        dn = f"uid={uid},ou={ou},{PEOPLE}"
        self.slapd.ldap_cli(
            "ldapadd",
            f"dn: {dn}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {name}\nsn: {name.split()[-1]}\n"
            f"mail: {uid}@example.org\nuserPassword: {password}\n{extra}",
        )
        self.added.append(dn)
        return dn

    def delete(self, dn: str) -> None:
        self.slapd.ldap_cli("ldapdelete", f"{dn}\n")
        self.added.remove(dn)

    def modify(self, dn: str, change: str) -> None:
        self.slapd.ldap_cli("ldapmodify", f"dn: {dn}\nchangetype: modify\n{change}\n")


@pytest.fixture
def people(slapd: Slapd) -> Iterator[People]:
    registry = People(slapd)
    yield registry
    for dn in list(registry.added):
        registry.delete(dn)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _token(env: LdapApp, username: str, password: str) -> str:
    response = env.client().post(
        "/api/v1/auth/tokens", json={"username": username, "password": password, "name": "t"}
    )
    assert response.status_code == 201, response.get_json()
    token: str = response.get_json()["token"]
    return token


def _users(env: LdapApp) -> list[tuple[str, str | None, bool]]:
    with env.services.sessions() as session:
        rows = session.execute(select(User).order_by(User.id)).scalars()
        return [(u.username, u.display_name, u.active) for u in rows]


# -- review finding 2: a reused login name never takes over the departed person's row ----------


@pytest.mark.parametrize("new_ou", ["Finance", "Sales"])  # the same DN again, or only the same name
def test_a_new_person_with_a_departed_persons_name_gets_a_new_row(
    ldap_app: LdapAppFactory, people: People, new_ou: str
) -> None:
    env = ldap_app()
    old_dn = people.add("reuse1", "Finance", "Old Person", "old-Secret-1")
    old_client = env.client()
    assert post_login(old_client, "reuse1", "old-Secret-1").status_code == 303
    old_token = _token(env, "reuse1", "old-Secret-1")
    people.delete(old_dn)
    new_dn = people.add("reuse1", new_ou, "New Hire", "new-Secret-1")

    new_client = env.client()
    assert post_login(new_client, "reuse1", "new-Secret-1").status_code == 303
    assert "New Hire" in new_client.get("/account").get_data(as_text=True)
    with env.services.sessions() as session:
        old, new = session.execute(select(User).order_by(User.id)).scalars().all()
        kept_dn = None if new_dn == old_dn else old_dn  # a DN belongs to one row at a time
        assert (old.display_name, old.active, old.directory_dn) == ("Old Person", False, kept_dn)
        assert old.username == f"reuse1#{old.id}" and old.left_directory_at is not None
        assert (new.username, new.display_name, new.active) == ("reuse1", "New Hire", True)
        assert new.directory_uuid is not None and new.directory_uuid != old.directory_uuid
        # the departed person's access ended; nothing of theirs moved to the new row
        assert all(t.revoked_at is not None for t in session.execute(select(ApiToken)).scalars())
        assert all(
            s.revoked_at is not None
            for s in session.execute(select(UserSession).where(UserSession.user_id == old.id)).scalars()
        )
    assert env.client().get("/api/v1/me", headers=_bearer(old_token)).status_code == 401
    assert old_client.get("/account").status_code == 302
    [released] = env.audit("user.name_released")
    assert json.loads(released.details)["username"] == "reuse1"


def test_sync_never_repoints_a_row_to_a_new_entry_with_the_same_name(
    ldap_app: LdapAppFactory, people: People
) -> None:
    env = ldap_app()
    old_dn = people.add("reuse2", "Finance", "Old Person", "old-Secret-1")
    for name in ("alice", "bob", "dave"):  # so one leaver is not "most people"
        assert post_login(env.client(), name, f"{name}-Secret-1").status_code == 303
    assert post_login(env.client(), "reuse2", "old-Secret-1").status_code == 303
    people.delete(old_dn)
    people.add("reuse2", "Sales", "New Hire", "new-Secret-1")

    result = CliRunner().invoke(main, ["--config", str(env.config_path), "directory", "sync"])
    assert result.exit_code == 0, result.output
    assert "refreshed 3, deactivated 0, left 1" in result.output
    assert ("reuse2", "Old Person", False) in _users(env)  # marked as gone, not re-pointed
    assert post_login(env.client(), "reuse2", "new-Secret-1").status_code == 303
    assert [u for u in _users(env) if u[1] in ("Old Person", "New Hire")] == [
        (_users(env)[3][0], "Old Person", False),
        ("reuse2", "New Hire", True),
    ]
    assert _users(env)[3][0].startswith("reuse2#")


def test_a_renamed_person_keeps_their_row(ldap_app: LdapAppFactory, people: People, slapd: Slapd) -> None:
    env = ldap_app()
    dn = people.add("rename1", "Finance", "Ren Amed", "ren-Secret-1")
    assert post_login(env.client(), "rename1", "ren-Secret-1").status_code == 303
    slapd.ldap_cli("ldapmodify", f"dn: {dn}\nchangetype: modrdn\nnewrdn: uid=rename2\ndeleteoldrdn: 1\n")
    people.added[people.added.index(dn)] = f"uid=rename2,ou=Finance,{PEOPLE}"
    assert post_login(env.client(), "rename2", "ren-Secret-1").status_code == 303
    assert _users(env) == [("rename2", "Ren Amed", True)]


# -- review finding 4: a refused login writes nothing back ------------------------------------


def test_a_cancelled_account_is_refused_and_stays_anonymised(ldap_app: LdapAppFactory) -> None:
    env = ldap_app()
    assert post_login(env.client(), "alice", "alice-Secret-1").status_code == 303
    with env.services.sessions.begin() as session:  # what account cancellation leaves behind
        user = session.execute(select(User)).scalar_one()
        user.display_name, user.email, user.phone, user.department = "anonymised", None, None, None
        user.anonymised_at = datetime.now(UTC)
    response = post_login(env.client(), "alice", "alice-Secret-1")
    assert response.status_code == 401
    with env.services.sessions() as session:
        user = session.execute(select(User)).scalar_one()
        assert (user.display_name, user.email, user.phone, user.department) == (
            "anonymised",
            None,
            None,
            None,
        )
    assert json.loads(env.audit("auth.login_failed")[-1].details)["reason"] == "inactive"


# -- review finding 3: the break-glass admin's API tokens follow auth.local_admin_enabled -----


def test_local_admin_tokens_stop_when_local_admin_is_disabled(ldap_app: LdapAppFactory) -> None:
    env = ldap_app(auth={"local_admin_enabled": True})
    env.services.auth.create_local_admin("root-admin", "Break-Glass-2026-xyz")
    token = _token(env, "root-admin", "Break-Glass-2026-xyz")
    assert env.client().get("/api/v1/me", headers=_bearer(token)).status_code == 200
    disabled = ldap_app(auth={"local_admin_enabled": False})  # same database, flag turned off
    assert disabled.client().get("/api/v1/me", headers=_bearer(token)).status_code == 401


# -- review finding 9: disabled in the directory = out within the re-check interval -----------


@pytest.mark.parametrize("how", ["locked", "deleted"])
def test_access_ends_soon_after_the_directory_disables_the_person(
    ldap_app: LdapAppFactory, people: People, how: str
) -> None:
    env = ldap_app(auth={"directory_recheck_minutes": 15, "idle_timeout_minutes": 60})
    dn = people.add(f"leaver-{how}", "Sales", "Lea Ver", "lea-Secret-1")
    client = env.client()
    assert post_login(client, f"leaver-{how}", "lea-Secret-1").status_code == 303
    token = _token(env, f"leaver-{how}", "lea-Secret-1")
    if how == "locked":
        people.modify(dn, "replace: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z")
    else:
        people.delete(dn)
    env.clock.advance(timedelta(minutes=14))
    assert client.get("/account").status_code == 200  # not re-checked yet
    env.clock.advance(timedelta(minutes=2))
    assert client.get("/account").status_code == 302  # re-checked, signed out
    assert env.client().get("/api/v1/me", headers=_bearer(token)).status_code == 401
    [event] = env.audit("user.deactivated")
    assert json.loads(event.details)["status"] == ("locked" if how == "locked" else "gone")
    with env.services.sessions() as session:
        user = session.execute(select(User)).scalar_one()
        assert not user.active and user.last_directory_check_at is not None


def test_tokens_are_rechecked_too_and_roles_refresh(ldap_app: LdapAppFactory, people: People) -> None:
    env = ldap_app(auth={"directory_recheck_minutes": 5})
    dn = people.add("tokenuser", "Sales", "Tok En", "tok-Secret-1")
    token = _token(env, "tokenuser", "tok-Secret-1")
    people.modify(dn, "replace: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z")
    assert env.client().get("/api/v1/me", headers=_bearer(token)).status_code == 200
    env.clock.advance(timedelta(minutes=6))
    assert env.client().get("/api/v1/me", headers=_bearer(token)).status_code == 401


def test_directory_down_keeps_sessions_and_logs_it(
    ldap_app: LdapAppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    env = ldap_app(auth={"directory_recheck_minutes": 15, "idle_timeout_minutes": 60})
    client = env.client()
    assert post_login(client, "alice", "alice-Secret-1").status_code == 303
    token = _token(env, "alice", "alice-Secret-1")
    down = ldap_app(
        directory={"servers": [{"url": f"ldap://127.0.0.1:{free_port()}"}]},
        auth={"directory_recheck_minutes": 15, "idle_timeout_minutes": 60},
    )
    down.clock.advance(timedelta(minutes=20))
    replay = down.client()
    cookie = client.get_cookie("appliance_session")
    assert cookie is not None
    replay.set_cookie("appliance_session", cookie.value)
    with caplog.at_level("WARNING", logger="appliance.auth.recheck"):
        assert replay.get("/account").status_code == 200  # A12: existing sessions keep working
        assert down.client().get("/api/v1/me", headers=_bearer(token)).status_code == 200
    assert "directory is unavailable" in caplog.text
    assert down.audit("user.deactivated") == []


def test_the_login_page_does_not_use_flask_logins_private_session_key() -> None:
    from pathlib import Path

    import appliance.web.auth.views as views

    assert "_user_id" not in Path(views.__file__).read_text()


def test_a_change_of_directory_groups_is_logged_as_a_change_of_roles(
    ldap_app: LdapAppFactory, people: People
) -> None:
    env = ldap_app()
    dn = people.add("groupie", "Sales", "Group Ie", "grp-Secret-1")
    initiators = "cn=initiators,ou=groups,dc=example,dc=org"
    assert post_login(env.client(), "groupie", "grp-Secret-1").status_code == 303
    assert env.audit("user.roles_changed") == []  # in no group: no role granted
    people.modify(initiators, f"add: uniqueMember\nuniqueMember: {dn}")
    try:
        assert post_login(env.client(), "groupie", "grp-Secret-1").status_code == 303
        assert post_login(env.client(), "groupie", "grp-Secret-1").status_code == 303  # unchanged: no event
    finally:
        people.modify(initiators, f"delete: uniqueMember\nuniqueMember: {dn}")
    assert post_login(env.client(), "groupie", "grp-Secret-1").status_code == 303
    changes = [json.loads(e.details) for e in env.audit("user.roles_changed")]
    assert changes == [
        {"username": "groupie", "added": ["initiator"], "removed": []},
        {"username": "groupie", "added": [], "removed": ["initiator"]},
    ]
