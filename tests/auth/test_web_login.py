"""Web sign-in against the real slapd: outcomes, sessions, cookies, CSRF, outage, operation log."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from appliance.models import LoginThrottle, User, UserSession
from tests.auth.conftest import LdapAppFactory, csrf_token, post_login
from tests.fixtures.ldap import UNUSUAL_PASSWORDS, BadTlsServers, free_port

pytestmark = pytest.mark.ldap

INVALID = "The user name or password is incorrect, or the account cannot sign in."


def test_good_login_creates_the_user_row_and_shows_the_name(ldap_app: LdapAppFactory) -> None:
    env = ldap_app()
    client = env.client()
    response = post_login(client, "alice", "alice-Secret-1", HTTP_USER_AGENT="pytest-agent")
    assert response.status_code == 303 and response.headers["Location"].endswith("/account")
    page = client.get("/account").get_data(as_text=True)
    assert "Alice Liu" in page and "seal_keeper" in page
    with env.services.sessions() as session:
        user = session.execute(select(User).where(User.username == "alice")).scalar_one()
        assert (user.email, user.phone, user.department) == (
            "alice@example.org",
            "+86 21 5555 0101",
            "Finance",
        )
        assert user.password_hash is None  # no password is ever stored for a directory person
        assert user.organisation is not None and user.organisation.name == "Finance"
        assert {r.value for r in user.role_set()} == {"employee", "seal_keeper"}
    [event] = env.audit("auth.login")
    assert (event.actor_name, event.client_address, event.user_agent) == (
        "alice",
        "127.0.0.1",
        "pytest-agent",
    )
    assert "alice-Secret-1" not in json.dumps([e.details for e in env.audit()])


@pytest.mark.parametrize(
    ("username", "password", "reason"),
    [
        ("alice", "wrong-password", "wrong_password"),
        ("nobody", "alice-Secret-1", "unknown_user"),
        ("alice", "", "empty_password"),
        ("alice", "   ", "empty_password"),
        ("carol", "carol-Secret-1", "locked"),
        ("*", "alice-Secret-1", "unknown_user"),
        (")(uid=*", "alice-Secret-1", "unknown_user"),
        ("admin)(|(x=*", "alice-Secret-1", "unknown_user"),
    ],
)
def test_failures_look_the_same_but_the_log_has_the_reason(
    ldap_app: LdapAppFactory, username: str, password: str, reason: str
) -> None:
    env = ldap_app()
    client = env.client()
    response = post_login(client, username, password)
    body = response.get_data(as_text=True)
    assert response.status_code == 401
    assert INVALID in body
    assert client.get("/account").status_code == 302  # not signed in
    [event] = env.audit("auth.login_failed")
    assert json.loads(event.details)["reason"] == reason
    assert password.strip() == "" or password not in event.details


def test_disabled_ad_account_cannot_log_in(ldap_app: LdapAppFactory) -> None:
    env = ldap_app(ad=True)
    response = post_login(env.client(), "llei", "llei-Secret-1")
    assert response.status_code == 401 and INVALID in response.get_data(as_text=True)
    assert json.loads(env.audit("auth.login_failed")[0].details)["reason"] == "disabled"
    assert post_login(env.client(), "wfang", "wfang-Secret-1").status_code == 303


def test_session_fixation_new_session_id_after_login(ldap_app: LdapAppFactory) -> None:
    env = ldap_app()
    client = env.client()
    assert post_login(client, "alice", "alice-Secret-1").status_code == 303
    first_cookie = client.get_cookie("appliance_session")
    assert first_cookie is not None
    # log in again in the same browser: a new id, and the old one stops working
    assert post_login(client, "alice", "alice-Secret-1").status_code == 303
    second_cookie = client.get_cookie("appliance_session")
    assert second_cookie is not None and second_cookie.value != first_cookie.value
    replay = env.client()
    replay.set_cookie("appliance_session", first_cookie.value)
    assert replay.get("/account").status_code == 302
    with env.services.sessions() as session:
        rows = session.execute(select(UserSession)).scalars().all()
        assert len(rows) == 2 and sum(r.revoked_at is None for r in rows) == 1


def test_a_cookie_planted_before_login_is_not_the_session_after(ldap_app: LdapAppFactory) -> None:
    env = ldap_app()
    attacker = env.client()
    csrf_token(attacker)  # attacker obtains a pre-login cookie...
    planted = attacker.get_cookie("appliance_session")
    assert planted is not None
    victim = env.client()
    victim.set_cookie("appliance_session", planted.value)  # ...and plants it in the victim's browser
    assert post_login(victim, "alice", "alice-Secret-1").status_code == 303
    after = victim.get_cookie("appliance_session")
    assert after is not None and after.value != planted.value
    assert attacker.get("/account").status_code == 302  # the attacker's copy is not signed in


def test_only_an_answer_that_changes_the_session_writes_the_cookie(ldap_app: LdapAppFactory) -> None:
    env = ldap_app()
    client = env.client()
    post_login(client, "alice", "alice-Secret-1")
    token = csrf_token(client, "/account")  # the first form after login puts its token in
    # a page or picture that began before a form was posted must not put the old cookie back
    for path in ("/account", "/static/app.css"):
        response = client.get(path)
        assert response.status_code == 200 and "Set-Cookie" not in response.headers, path
    assert "Set-Cookie" in client.post("/logout", data={"csrf_token": token}).headers


def test_logout_invalidates_the_session_server_side(ldap_app: LdapAppFactory) -> None:
    env = ldap_app()
    client = env.client()
    post_login(client, "alice", "alice-Secret-1")
    captured = client.get_cookie("appliance_session")
    assert captured is not None
    token = csrf_token(client, "/account")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/account").status_code == 302
    replay = env.client()
    replay.set_cookie("appliance_session", captured.value)
    assert replay.get("/account").status_code == 302
    assert [e.actor_name for e in env.audit("auth.logout")] == ["alice"]


def test_idle_and_absolute_timeouts(ldap_app: LdapAppFactory) -> None:
    env = ldap_app(auth={"idle_timeout_minutes": 10, "absolute_timeout_hours": 1})
    client = env.client()
    post_login(client, "alice", "alice-Secret-1")
    env.clock.advance(timedelta(minutes=9))
    assert client.get("/account").status_code == 200  # activity refreshes the idle timer
    env.clock.advance(timedelta(minutes=11))
    assert client.get("/account").status_code == 302  # idle too long

    post_login(client, "alice", "alice-Secret-1")
    for _ in range(7):  # active every 9 minutes, but past the absolute hour
        env.clock.advance(timedelta(minutes=9))
        status = client.get("/account").status_code
    assert status == 302


def test_cookie_flags_and_host_prefix_behind_tls(ldap_app: LdapAppFactory) -> None:
    env = ldap_app(server={"tls": True})
    client = env.client()
    # HTTPS, with the same-origin Referer that Flask-WTF's strict check wants on TLS
    client.environ_base.update({"wsgi.url_scheme": "https", "HTTP_REFERER": "https://localhost/login"})
    response = post_login(client, "alice", "alice-Secret-1")
    assert response.status_code == 303
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-appliance=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Domain" not in cookie


def test_login_form_requires_csrf(ldap_app: LdapAppFactory) -> None:
    env = ldap_app()
    client = env.client()
    response = client.post("/login", data={"username": "alice", "password": "alice-Secret-1"})
    assert response.status_code in (400, 403)
    assert client.get("/account").status_code == 302
    assert env.audit("auth.login") == []


def test_directory_down_gives_a_clear_page_503_on_the_api_and_readyz(ldap_app: LdapAppFactory) -> None:
    servers = [{"url": f"ldap://127.0.0.1:{free_port()}"}]
    env = ldap_app(directory={"servers": servers})
    client = env.client()
    page = post_login(client, "alice", "alice-Secret-1")
    assert page.status_code == 503 and "Directory unavailable" in page.get_data(as_text=True)
    api = client.post("/api/v1/auth/tokens", json={"username": "alice", "password": "alice-Secret-1"})
    assert api.status_code == 503 and api.mimetype == "application/problem+json"
    assert api.get_json()["type"].endswith("directory_unavailable")
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["checks"]["directory"]["status"] == "unavailable"
    reasons = [json.loads(e.details)["reason"] for e in env.audit("auth.login_failed")]
    assert reasons == ["directory_unavailable", "directory_unavailable"]


def test_readyz_reports_a_working_directory(ldap_app: LdapAppFactory) -> None:
    response = ldap_app().client().get("/readyz")
    assert response.get_json()["checks"]["directory"] == {"status": "ok"}


def test_logout_needs_the_sessions_own_csrf_token(ldap_app: LdapAppFactory) -> None:
    env = ldap_app()
    alice, other = env.client(), env.client()
    post_login(alice, "alice", "alice-Secret-1")
    post_login(other, "bob", "bob-Secret-1")
    for data in ({}, {"csrf_token": csrf_token(other, "/account")}):
        assert alice.post("/logout", data=data).status_code in (400, 403)
        assert alice.get("/account").status_code == 200  # still signed in
    assert env.audit("auth.logout") == []


@pytest.mark.parametrize(
    "target",
    [
        "/%09/evil.example",
        "/%0a/evil.example",
        "/%0d%0aSet-Cookie:x=1",
        "//evil.example",
        "/%5Cevil.example",
        "%5C%5Cevil.example",
        "https://evil.example/",
        "https:/evil.example",
        "/%E3%80%80/evil.example",
        "javascript:alert(1)",
        "evil.example",
    ],
)
def test_next_never_leads_off_site(ldap_app: LdapAppFactory, target: str) -> None:
    client = ldap_app().client()
    token = csrf_token(client)
    response = client.post(
        f"/login?next={target}", data={"username": "alice", "password": "alice-Secret-1", "csrf_token": token}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/account"


def test_next_keeps_a_local_path(ldap_app: LdapAppFactory) -> None:
    client = ldap_app().client()
    token = csrf_token(client)
    response = client.post(
        "/login?next=/account%3Ftab%3Dtokens",
        data={"username": "alice", "password": "alice-Secret-1", "csrf_token": token},
    )
    assert response.status_code == 303 and response.headers["Location"] == "/account?tab=tokens"


def test_overlong_credentials_are_counted_failures_on_every_entry_point(ldap_app: LdapAppFactory) -> None:
    env = ldap_app(auth={"max_failed_logins": 2})
    client = env.client()
    started = time.monotonic()
    api = [
        client.post("/api/v1/auth/tokens", json={"username": "alice", "password": "x" * 5_000_000})
        for _ in range(2)
    ]
    assert [r.status_code for r in api] == [401, 401]
    assert time.monotonic() - started < 5  # refused before the directory: no 20 s bind
    assert post_login(client, "alice", "alice-Secret-1").status_code == 429  # they were counted
    web = post_login(env.client(), "a" * 300, "pw", REMOTE_ADDR="10.0.0.8")
    assert web.status_code == 401 and INVALID in web.get_data(as_text=True)
    reasons = [json.loads(e.details)["reason"] for e in env.audit("auth.login_failed")]
    assert reasons == ["too_long", "too_long", "throttled", "too_long"]
    assert client.get("/readyz").status_code == 200  # no false directory outage


def test_tls_failure_is_an_outage_and_is_in_the_operation_log(
    ldap_app: LdapAppFactory, bad_tls_slapd: BadTlsServers
) -> None:
    server = bad_tls_slapd["expired"]
    env = ldap_app(directory={"servers": [{"url": server.url}], "ca_file": str(server.tls.ca_file)})
    response = post_login(env.client(), "alice", "alice-Secret-1")
    assert response.status_code == 503
    [event] = env.audit("directory.tls_failed")
    assert json.loads(event.details) == {"during": "login"}
    reasons = [json.loads(e.details)["reason"] for e in env.audit("auth.login_failed")]
    assert reasons == ["directory_unavailable"]


# -- probing: passwords are sent as typed; what no name can hold is a clear 400 ---------------


@pytest.mark.parametrize("username", sorted(UNUSUAL_PASSWORDS))
def test_passwords_saslprep_refuses_or_changes_sign_in_on_the_form_and_the_api(
    ldap_app: LdapAppFactory, username: str
) -> None:
    # a control character, Arabic mixed with Latin, a no-break space: slapd holds them as
    # typed, so they must be sent as typed, never turned into a false "directory unavailable"
    env = ldap_app()
    password = UNUSUAL_PASSWORDS[username]
    assert post_login(env.client(), username, password).status_code == 303
    api = env.client().post("/api/v1/auth/tokens", json={"username": username, "password": password})
    assert api.status_code == 201, api.get_json()
    wrong = post_login(env.client(), username, password + "x")
    assert wrong.status_code == 401 and INVALID in wrong.get_data(as_text=True)
    reasons = [json.loads(e.details)["reason"] for e in env.audit("auth.login_failed")]
    assert reasons == ["wrong_password"]
    assert env.client().get("/readyz").status_code == 200


def test_a_nul_in_the_user_name_on_the_form_is_a_400_and_counts_nothing(
    ldap_app: LdapAppFactory, any_db_url: str
) -> None:
    env = ldap_app(database={"url": any_db_url})
    response = post_login(env.client(), "al\x00ice", "alice-Secret-1")
    assert response.status_code == 400
    assert "holds characters that cannot be used" in response.get_data(as_text=True)
    with env.services.sessions() as session:
        assert session.execute(select(LoginThrottle)).first() is None
    assert env.audit("auth.login_failed") == []
