"""Lockout as a weapon: the person locked out hears of it, an organisation administrator
sees the locks in force and lifts one, and a shared VPN range gets its own ceiling."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import select

from appliance.jobs import default_jobs, run_due_jobs
from appliance.models import LoginThrottle, Notification, User
from tests.auth.conftest import LdapApp, LdapAppFactory, csrf_token, post_login
from tests.fixtures.ldap import OPENLDAP_ROLE_GROUPS
from tests.fixtures.smtp import SmtpServer

pytestmark = pytest.mark.ldap

# dave (an auditor in the test tree) is made an organisation administrator here
ROLES = {**OPENLDAP_ROLE_GROUPS, "org_admin": ["cn=auditors,ou=groups,dc=example,dc=org"]}


AT_DAVES = {"REMOTE_ADDR": "10.8.0.9"}


def lift(client: Any, key: str, token: str) -> Any:
    return client.post(
        "/admin/sign-in-locks/lift", data={"key": key, "csrf_token": token}, environ_overrides=AT_DAVES
    )


def notices(env: LdapApp, username: str) -> list[tuple[str, dict[str, Any]]]:
    with env.services.sessions() as session:
        user = session.execute(select(User).where(User.username == username)).scalar_one()
        rows = session.execute(
            select(Notification).where(Notification.user_id == user.id).order_by(Notification.id)
        ).scalars()
        return [(row.kind, json.loads(row.params)) for row in rows]


def test_a_locked_person_is_told_and_an_org_admin_lifts_the_lock(
    ldap_app: LdapAppFactory, smtp_server: SmtpServer
) -> None:
    env = ldap_app(
        directory={"role_groups": ROLES},
        auth={"max_failed_logins": 2, "lockout_minutes": 5},
        mail={"enabled": True, "host": "127.0.0.1", "port": smtp_server.port, "starttls": False},
    )
    assert post_login(env.client(), "alice", "alice-Secret-1", REMOTE_ADDR="10.8.0.5").status_code == 303
    attacker = [post_login(env.client(), "alice", "guess", REMOTE_ADDR="10.8.0.66") for _ in range(3)]
    assert [r.status_code for r in attacker] == [401, 401, 429]
    [(kind, params)] = notices(env, "alice")
    assert kind == "account_locked" and params["scope"] == "address" and params["address"] == "10.8.0.66"
    mail_job = [job for job in default_jobs(env.services) if job.name == "mail-delivery"]
    run_due_jobs(env.services, mail_job)
    [mail] = smtp_server.received
    assert mail["To"] == "alice@example.org" and "10.8.0.66" in mail.get_content()

    bob = env.client()
    post_login(bob, "bob", "bob-Secret-1", REMOTE_ADDR="10.8.0.7")
    assert bob.get("/admin/sign-in-locks").status_code == 403
    assert 'id="nav-locks"' not in bob.get("/account").get_data(as_text=True)

    dave = env.client()
    assert post_login(dave, "dave", "dave-Secret-1", REMOTE_ADDR="10.8.0.9").status_code == 303
    page = dave.get("/admin/sign-in-locks", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert 'id="nav-locks"' in page and "登录锁定" in page
    assert "Alice Liu" in page and "10.8.0.66" in page
    keys = [k for k in re.findall(r'name="key" value="([^"]+)"', page) if "10.8.0.66" in k]
    assert keys, page
    token = csrf_token(dave, "/admin/sign-in-locks")
    # one guess fills alice's name and entry counters alike: lifting one lifts its twins
    assert len(keys) > 1
    assert lift(dave, keys[-1], token).status_code == 303
    assert 'name="key"' not in dave.get("/admin/sign-in-locks").get_data(as_text=True)
    assert post_login(env.client(), "alice", "alice-Secret-1", REMOTE_ADDR="10.8.0.66").status_code == 303
    again = lift(dave, keys[0], token)
    assert again.status_code == 404
    [event, *_] = env.audit("auth.lock_lifted")
    assert event.actor_name == "dave" and event.client_address == "10.8.0.9"
    assert notices(env, "alice")[-1] == ("account_unlocked", {"admin": "Dave Zhou", "name": "Alice Liu"})
    alice = env.client()
    post_login(alice, "alice", "alice-Secret-1", REMOTE_ADDR="10.8.0.5")
    inbox = alice.get("/inbox", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "您的电子签约账号暂时无法登录" in inbox and "Dave Zhou 已解除" in inbox
    assert inbox.count(">新<") == 2
    assert ">新<" not in alice.get("/inbox", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)


def test_an_org_admin_manages_only_their_own_organisations_people(ldap_app: LdapAppFactory) -> None:
    env = ldap_app(directory={"role_groups": ROLES}, auth={"max_failed_logins": 2})
    for person, password in (("bob", "bob-Secret-1"), ("alice", "alice-Secret-1")):
        assert post_login(env.client(), person, password, REMOTE_ADDR="10.8.0.5").status_code == 303
    for person in ("bob", "alice"):  # bob is in Sales; alice and dave in Finance
        guesses = [post_login(env.client(), person, "guess", REMOTE_ADDR="10.8.0.66") for _ in range(3)]
        assert [guess.status_code for guess in guesses] == [401, 401, 429]
    # an address locked for everyone: 4 x 2 failures over made-up names
    for i in range(9):
        post_login(env.client(), f"nobody{i}", "guess", REMOTE_ADDR="10.8.0.77")
    dave = env.client()
    post_login(dave, "dave", "dave-Secret-1", REMOTE_ADDR="10.8.0.9")
    page = dave.get("/admin/sign-in-locks").get_data(as_text=True)
    keys = re.findall(r'name="key" value="([^"]+)"', page)
    assert keys and "Alice Liu" in page
    assert "Bob Chen" not in page and "10.8.0.77" not in page
    with env.services.sessions() as session:
        others = (
            session.execute(select(LoginThrottle.key).where(LoginThrottle.locked_until.is_not(None)))
            .scalars()
            .all()
        )
    token = csrf_token(dave, "/admin/sign-in-locks")
    for key in set(others) - set(keys):  # bob's and the address's: as if they did not exist
        assert lift(dave, key, token).status_code == 404
    assert post_login(env.client(), "bob", "bob-Secret-1", REMOTE_ADDR="10.8.0.66").status_code == 429


def test_a_shared_vpn_range_gets_its_own_address_ceiling(ldap_app: LdapAppFactory) -> None:
    env = ldap_app(
        auth={
            "max_failed_logins": 2,
            "address_limits": [{"network": "10.9.0.0/16", "max_failed_logins": 100}],
        }
    )

    def spray(address: str) -> list[int]:
        # one guess per made-up name: only the address's own counter can fill up
        answers = [post_login(env.client(), f"nobody{i}", "guess", REMOTE_ADDR=address) for i in range(10)]
        return [answer.status_code for answer in answers]

    assert spray("10.7.0.1") == [401] * 8 + [429] * 2  # the default: 4 x max_failed_logins
    assert spray("10.9.0.1") == [401] * 10  # the VPN egress many people share
