"""API tokens: created after a login, shown once, stored hashed, Bearer only, revocable, expiring."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select
from werkzeug.test import TestResponse

from appliance.models import ApiToken, LoginThrottle
from tests.auth.conftest import LdapApp, LdapAppFactory, csrf_token, post_login
from tests.fixtures.ldap import Slapd

pytestmark = pytest.mark.ldap


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_token_created_in_the_web_shown_once_stored_hashed(ldap_app: LdapAppFactory) -> None:
    env = ldap_app()
    client = env.client()
    post_login(client, "alice", "alice-Secret-1")
    refused = client.post(  # a session alone cannot mint a token: the password is asked again
        "/account/tokens",
        data={"name": "phone", "password": "not-her-password", "csrf_token": csrf_token(client, "/account")},
        follow_redirects=True,
    )
    assert "The password is incorrect; no token was created." in refused.get_data(as_text=True)
    page = client.post(
        "/account/tokens",
        data={"name": "phone", "password": "alice-Secret-1", "csrf_token": csrf_token(client, "/account")},
    )
    match = re.search(r'id="new-token">(esk_[A-Za-z0-9_-]+)<', page.get_data(as_text=True))
    assert match
    token = match.group(1)
    with env.services.sessions() as session:
        [row] = session.execute(select(ApiToken)).scalars().all()
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() and token not in row.token_hash
    assert token not in client.get("/account").get_data(as_text=True)  # never shown again
    reasons = [json.loads(e.details)["reason"] for e in env.audit("auth.login_failed")]
    assert reasons == ["wrong_password"] and len(env.audit("auth.reauthenticated")) == 1
    me = env.client().get("/api/v1/me", headers=_bearer(token))
    assert me.status_code == 200 and me.get_json()["username"] == "alice"
    assert me.get_json()["roles"] == ["employee", "seal_keeper"]


def test_api_rejects_cookie_only_and_bad_tokens(ldap_app: LdapAppFactory) -> None:
    env = ldap_app()
    client = env.client()
    post_login(client, "alice", "alice-Secret-1")
    assert client.get("/account").status_code == 200  # the cookie works for pages...
    response = client.get("/api/v1/me")  # ...but never for the API
    assert response.status_code == 401 and response.mimetype == "application/problem+json"
    assert env.client().get("/api/v1/me", headers=_bearer("esk_not-a-token")).status_code == 401
    assert env.client().get("/api/v1/me", headers={"Authorization": "Basic YWxpY2U6eA=="}).status_code == 401


def test_token_by_api_login_then_use_revoke_and_expire(ldap_app: LdapAppFactory) -> None:
    env = ldap_app(auth={"api_token_days": 1})
    client = env.client()
    bad = client.post("/api/v1/auth/tokens", json={"username": "alice", "password": "nope", "name": "x"})
    assert bad.status_code == 401 and bad.mimetype == "application/problem+json"

    issued = client.post(
        "/api/v1/auth/tokens", json={"username": "alice", "password": "alice-Secret-1", "name": "mobile"}
    )
    assert issued.status_code == 201
    token = issued.get_json()["token"]
    assert client.get("/api/v1/me", headers=_bearer(token)).status_code == 200
    assert client.delete("/api/v1/auth/tokens/current", headers=_bearer(token)).status_code == 204
    assert client.get("/api/v1/me", headers=_bearer(token)).status_code == 401
    assert [e.action for e in env.audit() if e.action.startswith("auth.token")] == [
        "auth.token_created",
        "auth.token_revoked",
    ]

    second = client.post(
        "/api/v1/auth/tokens", json={"username": "alice", "password": "alice-Secret-1", "name": "mobile"}
    ).get_json()["token"]
    assert client.get("/api/v1/me", headers=_bearer(second)).status_code == 200
    env.clock.advance(timedelta(days=1, seconds=1))
    assert client.get("/api/v1/me", headers=_bearer(second)).status_code == 401


def test_revoke_from_the_account_page_only_own_tokens(ldap_app: LdapAppFactory) -> None:
    env = ldap_app()
    alice, bob = env.client(), env.client()
    token = alice.post(
        "/api/v1/auth/tokens", json={"username": "alice", "password": "alice-Secret-1", "name": "erp"}
    ).get_json()
    post_login(bob, "bob", "bob-Secret-1")
    bob.post(f"/account/tokens/{token['token_id']}/revoke", data={"csrf_token": csrf_token(bob, "/account")})
    assert env.client().get("/api/v1/me", headers=_bearer(token["token"])).status_code == 200
    post_login(alice, "alice", "alice-Secret-1")
    alice.post(
        f"/account/tokens/{token['token_id']}/revoke", data={"csrf_token": csrf_token(alice, "/account")}
    )
    assert env.client().get("/api/v1/me", headers=_bearer(token["token"])).status_code == 401


def test_token_pages_need_the_sessions_own_csrf_token(ldap_app: LdapAppFactory) -> None:
    env = ldap_app()
    alice, mallory = env.client(), env.client()
    post_login(alice, "alice", "alice-Secret-1")
    post_login(mallory, "bob", "bob-Secret-1")
    foreign = csrf_token(mallory, "/account")  # valid, but for another session
    issued = alice.post(
        "/api/v1/auth/tokens", json={"username": "alice", "password": "alice-Secret-1", "name": "erp"}
    ).get_json()
    for data in ({}, {"csrf_token": foreign}, {"csrf_token": "garbage"}):
        create = alice.post("/account/tokens", data={"name": "x", "password": "alice-Secret-1", **data})
        assert create.status_code in (400, 403), data
        revoke = alice.post(f"/account/tokens/{issued['token_id']}/revoke", data=data)
        assert revoke.status_code in (400, 403), data
    with env.services.sessions() as session:
        rows = session.execute(select(ApiToken)).scalars().all()
        assert [(r.name, r.revoked_at) for r in rows] == [("erp", None)]  # nothing created or revoked
    assert env.client().get("/api/v1/me", headers=_bearer(issued["token"])).status_code == 200


def test_another_users_token_id_is_not_found(ldap_app: LdapAppFactory) -> None:
    env = ldap_app()
    alice, bob = env.client(), env.client()
    issued = alice.post(
        "/api/v1/auth/tokens", json={"username": "alice", "password": "alice-Secret-1", "name": "erp"}
    ).get_json()
    post_login(bob, "bob", "bob-Secret-1")
    token = csrf_token(bob, "/account")
    for token_id in (issued["token_id"], issued["token_id"] + 1000):  # someone else's, and none at all
        response = bob.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": token})
        assert response.status_code == 404
        assert "esk_" not in response.get_data(as_text=True)
    assert env.client().get("/api/v1/me", headers=_bearer(issued["token"])).status_code == 200
    assert env.audit("auth.token_revoked") == []


def test_api_401_names_the_bearer_scheme(ldap_app: LdapAppFactory) -> None:
    env = ldap_app()
    for headers in ({}, _bearer("esk_not-a-token")):
        response = env.client().get("/api/v1/me", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    # a page is not an API: it redirects to the sign-in form instead
    assert "WWW-Authenticate" not in env.client().get("/account").headers


def test_a_locked_api_login_is_429_with_retry_after_from_the_one_mapping(ldap_app: LdapAppFactory) -> None:
    env = ldap_app(auth={"max_failed_logins": 2, "lockout_minutes": 5})
    attempt = {"username": "bob", "password": "guess"}
    statuses = [env.client().post("/api/v1/auth/tokens", json=attempt).status_code for _ in range(2)]
    locked = env.client().post("/api/v1/auth/tokens", json=attempt)
    assert statuses == [401, 401]
    assert locked.status_code == 429 and locked.mimetype == "application/problem+json"
    assert locked.get_json()["type"].endswith("too_many_attempts")
    assert 240 < int(locked.headers["Retry-After"]) <= 300


# -- probing: malformed input is a clear 4xx, never a 500 -------------------------------------

ALICE_DN = "uid=alice,ou=Finance,ou=people,dc=example,dc=org"


def _post_raw_json(env: LdapApp, body: str) -> TestResponse:
    return env.client().post("/api/v1/auth/tokens", data=body.encode(), content_type="application/json")


def test_deeply_nested_json_is_a_400(ldap_app: LdapAppFactory) -> None:
    env = ldap_app()
    for body in ("[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000):
        response = _post_raw_json(env, body)
        assert response.status_code == 400 and response.mimetype == "application/problem+json"
        assert response.get_json()["detail"] == "The JSON body is nested too deeply."
    assert env.audit("auth.login_failed") == []


@pytest.mark.parametrize("username", ["\\ud800", "alice\\udfff", "al\\u0000ice"])
def test_a_user_name_no_name_can_hold_is_a_400_and_counts_nothing(
    ldap_app: LdapAppFactory, any_db_url: str, username: str
) -> None:
    # a lone surrogate (no character at all) or a NUL (PostgreSQL's text cannot hold one)
    env = ldap_app(auth={"max_failed_logins": 1}, database={"url": any_db_url})  # 4 per address
    for _ in range(6):
        response = _post_raw_json(env, f'{{"username": "{username}", "password": "alice-Secret-1"}}')
        assert response.status_code == 400 and response.mimetype == "application/problem+json"
        assert "no name can hold" in response.get_json()["detail"]
    with env.services.sessions() as session:
        assert session.execute(select(LoginThrottle)).first() is None  # the address was not charged
    assert env.audit("auth.login_failed") == []
    assert post_login(env.client(), "alice", "alice-Secret-1").status_code == 303


def test_a_password_that_is_not_text_is_a_400_and_counts_nothing(
    ldap_app: LdapAppFactory, slapd: Slapd
) -> None:
    env = ldap_app(auth={"max_failed_logins": 1})
    since = slapd.log_size()
    for _ in range(6):
        response = _post_raw_json(env, '{"username": "alice", "password": "alice-\\ud800"}')
        assert response.status_code == 400 and "not valid text" in response.get_json()["detail"]
    assert [dn for dn, _, _ in slapd.binds(since) if dn.lower() == ALICE_DN.lower()] == []
    assert env.audit("auth.login_failed") == []
    assert post_login(env.client(), "alice", "alice-Secret-1").status_code == 303


@pytest.mark.parametrize("name", ["\\ud800", "phone\\u0000", "   "])
def test_a_token_name_that_cannot_be_used_is_refused_before_the_password_is_checked(
    ldap_app: LdapAppFactory, any_db_url: str, slapd: Slapd, name: str
) -> None:
    env = ldap_app(database={"url": any_db_url})
    since = slapd.log_size()
    response = _post_raw_json(env, f'{{"username": "alice", "password": "alice-Secret-1", "name": "{name}"}}')
    assert response.status_code == 400 and response.mimetype == "application/problem+json"
    assert "name" in response.get_json()["detail"]
    # the password was never tried: no bind, no sign-in, no token
    assert [dn for dn, _, _ in slapd.binds(since) if dn.lower() == ALICE_DN.lower()] == []
    assert env.audit("auth.login") == [] and env.audit("auth.token_created") == []
    with env.services.sessions() as session:
        assert session.execute(select(ApiToken)).first() is None


def test_a_blank_token_name_on_the_account_page_is_refused_before_the_password(
    ldap_app: LdapAppFactory,
) -> None:
    env = ldap_app()
    client = env.client()
    post_login(client, "alice", "alice-Secret-1")
    page = client.post(
        "/account/tokens",
        data={"name": "   ", "password": "alice-Secret-1", "csrf_token": csrf_token(client, "/account")},
        follow_redirects=True,
    )
    assert page.status_code == 200 and "Give the token a name" in page.get_data(as_text=True)
    assert env.audit("auth.reauthenticated") == [] and env.audit("auth.token_created") == []


@pytest.mark.parametrize("token_id", ["99999999999999999999", str(2**63), str(2**31)])
def test_revoking_a_token_id_no_row_can_have_is_404(
    ldap_app: LdapAppFactory, any_db_url: str, token_id: str
) -> None:
    env = ldap_app(database={"url": any_db_url})
    client = env.client()
    post_login(client, "alice", "alice-Secret-1")
    response = client.post(
        f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf_token(client, "/account")}
    )
    assert response.status_code == 404
    assert env.audit("auth.token_revoked") == []
