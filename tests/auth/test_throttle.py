"""Failed-login lockout per account and per client address, shared across processes via the database."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from appliance.auth.throttle import name_keys, normalise_login_name
from appliance.config import load_config
from appliance.jobs import default_jobs
from appliance.models import LoginThrottle
from tests.auth.conftest import LdapAppFactory, build_ldap_app, post_login
from tests.fixtures.ldap import Slapd

pytestmark = pytest.mark.ldap

LOCKED_TEXT = "Too many failed sign-in attempts"

# One independent app instance per process, on the same database: the same as two
# gunicorn workers (or two nodes) sharing PostgreSQL/SQLite.
WORKER = """
import json, re, sys
from appliance.config import load_config
from appliance.web import create_app
path, username, password, count, address = sys.argv[1:6]
client = create_app(load_config(__import__("pathlib").Path(path))).test_client()
statuses = []
for _ in range(int(count)):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                           environ_overrides={"REMOTE_ADDR": address})
    statuses.append(response.status_code)
print(json.dumps(statuses))
"""


def _reasons(env) -> list[str]:  # type: ignore[no-untyped-def]
    return [json.loads(e.details)["reason"] for e in env.audit("auth.login_failed")]


def test_account_lockout_with_a_clear_message_then_recovery(ldap_app: LdapAppFactory) -> None:
    env = ldap_app(auth={"max_failed_logins": 3, "lockout_minutes": 5})
    client = env.client()
    assert [post_login(client, "alice", "bad-password").status_code for _ in range(3)] == [401, 401, 401]
    locked = post_login(client, "alice", "alice-Secret-1")  # even the right password is refused now
    assert locked.status_code == 429 and LOCKED_TEXT in locked.get_data(as_text=True)
    assert 0 < int(locked.headers["Retry-After"]) <= 300
    assert _reasons(env) == ["wrong_password"] * 3 + ["throttled"]
    assert len(env.audit("auth.locked_out")) == 1
    # other accounts from another address are unaffected
    assert post_login(env.client(), "bob", "bob-Secret-1", REMOTE_ADDR="10.0.0.9").status_code == 303
    env.clock.advance(timedelta(minutes=5, seconds=1))
    assert post_login(client, "alice", "alice-Secret-1").status_code == 303


def test_per_address_limit_stops_password_spraying(ldap_app: LdapAppFactory) -> None:
    env = ldap_app(auth={"max_failed_logins": 2})  # an address gets 4x: 8 failures
    client = env.client()
    names = [f"spray{i}" for i in range(9)]
    statuses = [post_login(client, n, "Summer2026!", REMOTE_ADDR="10.9.9.9").status_code for n in names]
    assert statuses == [401] * 8 + [429]
    # the same accounts from elsewhere are not locked (the limit was the address's)
    assert post_login(env.client(), "bob", "bob-Secret-1", REMOTE_ADDR="10.1.1.1").status_code == 303


def test_successful_login_resets_the_account_counter(ldap_app: LdapAppFactory) -> None:
    env = ldap_app(auth={"max_failed_logins": 3})
    client = env.client()
    for _ in range(2):
        post_login(client, "alice", "bad-password")
    assert post_login(client, "alice", "alice-Secret-1").status_code == 303
    fresh = env.client()
    assert [post_login(fresh, "alice", "bad-password").status_code for _ in range(3)] == [401, 401, 401]


@pytest.mark.slow
def test_lockout_holds_across_two_processes(ldap_app: LdapAppFactory, any_db_url: str) -> None:
    env = ldap_app(auth={"max_failed_logins": 3, "lockout_minutes": 10}, database={"url": any_db_url})
    config = str(env.config_path)
    root = str(Path(__file__).resolve().parents[2])
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, config, "alice", "bad-password", "5", "10.0.0.1"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=root,
        )
        for _ in (1, 2)
    ]
    results = [json.loads(w.communicate(timeout=120)[0].strip().splitlines()[-1]) for w in workers]
    statuses = results[0] + results[1]
    # 10 attempts from one address in two processes at once: exactly 3 reached the directory
    assert statuses.count(401) == 3 and statuses.count(429) == 7, results
    env2 = build_ldap_app(load_config(env.config_path, environ={}), env.config_path)
    assert _reasons(env2).count("wrong_password") == 3
    # a third instance sees the lock too, even with the right password, from that address...
    assert post_login(env2.client(), "alice", "alice-Secret-1", REMOTE_ADDR="10.0.0.1").status_code == 429
    # ...while alice at her own address still signs in
    assert post_login(env2.client(), "alice", "alice-Secret-1", REMOTE_ADDR="10.0.0.3").status_code == 303


# -- respelled names, second names, rotating addresses (review finding 1) ---------------------

ALICE_DN = "uid=alice,ou=Finance,ou=people,dc=example,dc=org"
WFANG_DN = "cn=Wang Fang,ou=Staff,dc=corp,dc=example"


def _spellings(name: str, count: int) -> list[str]:
    """Spellings slapd matches as `name`: ASCII, full-width and mathematical bold letters mixed."""
    forms = {c: [c, chr(ord(c) - 0x61 + 0xFF41), chr(ord(c) - 0x61 + 0x1D41A)] for c in name}
    return ["".join(p) for p in itertools.islice(itertools.product(*(forms[c] for c in name)), count)]


def test_login_names_are_folded_like_the_directory_folds_them() -> None:
    assert {normalise_login_name(n) for n in _spellings("alice", 40)} == {"alice"}
    assert normalise_login_name(" ALICE ") == normalise_login_name("al\u00adice\u200b") == "alice"
    # the per-name counter of every spelling is one and the same row
    assert len({name_keys(n, None, 5)[0].key for n in _spellings("alice", 40)}) == 1


def test_respelled_names_from_one_address_get_no_more_wrong_binds_than_the_limit(
    ldap_app: LdapAppFactory, slapd: Slapd
) -> None:
    env = ldap_app(auth={"max_failed_logins": 3})
    since = slapd.log_size()
    statuses = [
        post_login(env.client(), name, f"guess-{i}", REMOTE_ADDR="10.7.0.1").status_code
        for i, name in enumerate(_spellings("alice", 20))
    ]
    assert statuses == [401] * 3 + [429] * 17
    # counted by slapd itself, not by the appliance
    assert slapd.wrong_password_binds(ALICE_DN, since) == 3


def test_rotating_spellings_and_addresses_stop_at_the_account_ceiling(
    ldap_app: LdapAppFactory, slapd: Slapd
) -> None:
    env = ldap_app(auth={"max_failed_logins": 3})  # 3 per address, 12 per account
    since = slapd.log_size()
    for i, name in enumerate(_spellings("alice", 40)):
        post_login(env.client(), name, f"guess-{i}", REMOTE_ADDR=f"10.7.1.{i // 4 + 1}")
    assert slapd.wrong_password_binds(ALICE_DN, since) == 12
    # the ceiling holds for a brand-new address and the right password, until it lapses
    assert post_login(env.client(), "alice", "alice-Secret-1", REMOTE_ADDR="10.7.2.1").status_code == 429


def test_second_names_share_the_entry_counter(ldap_app: LdapAppFactory, slapd: Slapd) -> None:
    # the dev/demo filter accepts uid or mail; AD's accepts sAMAccountName or UPN
    mail_filter = "(&(objectClass=inetOrgPerson)(|(uid={username})(mail={username})))"
    env = ldap_app(directory={"user_filter": mail_filter}, auth={"max_failed_logins": 2})
    since = slapd.log_size()
    names = ["alice", "alice@example.org", "ALICE@EXAMPLE.ORG", "Alice"] * 2
    statuses = [post_login(env.client(), n, "nope", REMOTE_ADDR="10.7.3.1").status_code for n in names]
    assert statuses == [401, 401] + [429] * 6
    assert slapd.wrong_password_binds(ALICE_DN, since) == 2

    ad = ldap_app(ad=True, auth={"max_failed_logins": 2})
    since = slapd.log_size()
    for name in ["wfang", "wfang@corp.example", "WFANG", "wfang@CORP.example"]:
        ad_status = post_login(ad.client(), name, "nope", REMOTE_ADDR="10.7.3.2").status_code
    assert ad_status == 429
    assert slapd.wrong_password_binds(WFANG_DN, since) == 2


# -- who a lockout affects, and for how long (review finding 8) -------------------------------


def test_an_attacker_elsewhere_cannot_lock_the_owner_out(ldap_app: LdapAppFactory) -> None:
    env = ldap_app(auth={"max_failed_logins": 3})
    attacker = [
        post_login(env.client(), "alice", "guess", REMOTE_ADDR="10.8.0.66").status_code for _ in range(6)
    ]
    assert attacker == [401] * 3 + [429] * 3
    # alice, at her own address, signs in during the attack; the attacker stays locked
    assert post_login(env.client(), "alice", "alice-Secret-1", REMOTE_ADDR="10.8.0.5").status_code == 303
    assert post_login(env.client(), "alice", "alice-Secret-1", REMOTE_ADDR="10.8.0.66").status_code == 429


def test_each_lockout_lasts_longer(ldap_app: LdapAppFactory) -> None:
    env = ldap_app(auth={"max_failed_logins": 2, "lockout_minutes": 5})

    def lock() -> int:
        responses = [post_login(env.client(), "bob", "guess", REMOTE_ADDR="10.8.1.1") for _ in range(3)]
        assert [r.status_code for r in responses] == [401, 401, 429]
        return int(responses[-1].headers["Retry-After"])

    waits = []
    for _ in range(3):
        waits.append(lock())
        env.clock.advance(timedelta(seconds=waits[-1] + 1))
    assert [round(w / 60) for w in waits] == [5, 10, 20]
    # after a quiet day the history is forgotten
    env.clock.advance(timedelta(days=1, minutes=1))
    assert round(lock() / 60) == 5


def test_a_locked_address_adds_no_rows_and_expired_rows_are_purged(ldap_app: LdapAppFactory) -> None:
    env = ldap_app(auth={"max_failed_logins": 1, "lockout_minutes": 5})  # 4 per address
    for i in range(30):
        post_login(env.client(), f"spray-{i}", "guess", REMOTE_ADDR="10.8.2.1")
    with env.services.sessions() as session:
        keys = [row.key for row in session.execute(select(LoginThrottle)).scalars()]
    # the address row, and for each of the 4 names it could try: name, name@address and the
    # two stand-ins for an entry (an unknown name costs what a known one does)
    assert len(keys) == 1 + 4 * 4, keys
    assert env.services.auth.purge_login_throttles() == 0  # all still inside their window or locked
    env.clock.advance(timedelta(minutes=6))
    # counters that never locked go; locked ones stay for a quiet day (their next lock doubles)
    assert env.services.auth.purge_login_throttles() == 8
    env.clock.advance(timedelta(days=1))
    assert env.services.auth.purge_login_throttles() == 9
    with env.services.sessions() as session:
        assert session.execute(select(LoginThrottle)).first() is None


def test_the_purge_job_is_registered(ldap_app: LdapAppFactory) -> None:
    env = ldap_app()
    [job] = [j for j in default_jobs(env.services) if j.name == "login-throttle-purge"]
    assert job.run(env.services) == "purged 0 expired login counters"
