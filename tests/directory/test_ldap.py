"""What only the LDAP implementation has: failover, pooling, timeouts, TLS, ppolicy and AD lock
attributes, immutable ids as slapd writes them. The port's behaviour, which the fake shares, is
in test_behaviour.py."""

from __future__ import annotations

import base64
import re
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ldap3 import Connection, Server, Tls
from ldap3.core.exceptions import LDAPSASLPrepError

from appliance.auth import AuthService, ClientInfo, TooManyAttempts
from appliance.clock import SystemClock
from appliance.config import DirectoryConfig
from appliance.db import create_db_engine, create_session_factory, migrate_database
from appliance.directory import (
    AccountStatus,
    AuthenticationFailed,
    DirectoryPerson,
    DirectoryUnavailable,
    FailureReason,
    LdapDirectory,
)
from tests.conftest import ConfigFactory
from tests.fakes.clock import FakeClock
from tests.fixtures.ldap import (
    AD_SUFFIX,
    SERVICE_PASSWORD,
    UNUSUAL_PASSWORDS,
    Slapd,
    ad_section,
    free_port,
    openldap_section,
    write_foreign_ca,
)

pytestmark = pytest.mark.ldap

ALICE_DN = "uid=alice,ou=Finance,ou=people,dc=example,dc=org"


def _directory(section: dict[str, Any]) -> LdapDirectory:
    return LdapDirectory(DirectoryConfig.model_validate(section), SERVICE_PASSWORD, SystemClock())


@pytest.fixture
def openldap(slapd: Slapd) -> Iterator[LdapDirectory]:
    directory = _directory(openldap_section(slapd))
    yield directory
    directory.close()


@pytest.fixture
def ad(slapd: Slapd) -> Iterator[LdapDirectory]:
    directory = _directory(ad_section(slapd))
    yield directory
    directory.close()


def _sign_in(directory: LdapDirectory, username: str, password: str) -> DirectoryPerson:
    return directory.verify_password(directory.find_account(username), password)


def _reason(directory: LdapDirectory, username: str, password: str) -> FailureReason:
    with pytest.raises(AuthenticationFailed) as caught:
        _sign_in(directory, username, password)
    assert caught.value.public == "The user name or password is incorrect, or the account cannot sign in."
    assert isinstance(caught.value.reason, FailureReason)
    return caught.value.reason


def test_a_wildcard_filter_would_have_matched_many(slapd: Slapd) -> None:
    # the control for the test above: the same search unescaped finds several people
    result = subprocess.run(
        [
            *("ldapsearch", "-x", "-ZZ", "-H", slapd.url, "-D", "cn=svc-esign,ou=services,dc=example,dc=org"),
            *("-w", SERVICE_PASSWORD, "-b", "ou=people,dc=example,dc=org", "(uid=*)", "1.1"),
        ],
        capture_output=True,
        text=True,
        env={"LDAPTLS_CACERT": str(slapd.tls.ca_file)},
        check=True,
    )
    assert result.stdout.count("dn: uid=") >= 4


def test_ppolicy_locked_account_cannot_log_in(openldap: LdapDirectory, slapd: Slapd) -> None:
    carol = "uid=carol,ou=Sales,ou=people,dc=example,dc=org"
    assert not slapd.bind_works(carol, "carol-Secret-1")  # the overlay refuses the bind itself
    assert _reason(openldap, "carol", "carol-Secret-1") is FailureReason.LOCKED  # we refuse before


def test_unusual_passwords_are_what_slapd_holds(slapd: Slapd) -> None:
    # the control for the behaviour suite's test of them: slapd's own tools sign these people
    # in, and ldap3 given the same passwords as text refuses them itself (SASLprep) or sends
    # something else
    for uid, password in UNUSUAL_PASSWORDS.items():
        dn = f"uid={uid},ou=Sales,ou=people,dc=example,dc=org"
        assert slapd.bind_works(dn, password)
        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(slapd.tls.ca_file))
        server = Server("127.0.0.1", port=slapd.port, tls=tls)
        connection = Connection(server, raise_exceptions=False)
        connection.open()
        connection.start_tls()
        try:
            assert not connection.rebind(user=dn, password=password)
        except LDAPSASLPrepError:
            pass
        finally:
            connection.unbind()


def test_service_connection_is_pooled_and_reused(openldap: LdapDirectory) -> None:
    openldap.lookup("alice")
    pool = openldap._service_pool
    first = pool.acquire()
    pool.release(first)
    openldap.lookup("bob")
    second = pool.acquire()
    pool.release(second)
    assert first is second


def test_first_server_down_second_up(slapd: Slapd) -> None:
    down = f"ldap://127.0.0.1:{free_port()}"
    directory = _directory(openldap_section(slapd, servers=[{"url": down}, {"url": slapd.url}]))
    try:
        assert _sign_in(directory, "alice", "alice-Secret-1").username == "alice"
        assert [p.username for p in directory.search_people("Alice Liu")] == ["alice"]
        health = directory.health()
        assert [s.reachable for s in health.servers] == [False, True] and health.ok
    finally:
        directory.close()


def test_all_servers_down_is_unavailable_quickly(slapd: Slapd) -> None:
    servers = [{"url": f"ldap://127.0.0.1:{free_port()}"}, {"url": f"ldap://127.0.0.1:{free_port()}"}]
    directory = _directory(openldap_section(slapd, servers=servers))
    started = time.monotonic()
    with pytest.raises(DirectoryUnavailable):
        directory.find_account("alice")
    with pytest.raises(DirectoryUnavailable):
        directory.check_ready()
    assert time.monotonic() - started < 5
    assert not directory.health().ok


def test_a_server_that_accepts_but_never_answers_times_out(slapd: Slapd) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever answers
        url = f"ldap://127.0.0.1:{silent.getsockname()[1]}"
        directory = _directory(openldap_section(slapd, servers=[{"url": url}], receive_timeout_seconds=1))
        started = time.monotonic()
        with pytest.raises(DirectoryUnavailable):
            directory.lookup("alice")
        assert time.monotonic() - started < 6


def test_certificate_from_a_foreign_ca_is_refused(slapd: Slapd, tmp_path: Path) -> None:
    directory = _directory(openldap_section(slapd, ca_file=str(write_foreign_ca(tmp_path))))
    with pytest.raises(DirectoryUnavailable):
        directory.find_account("alice")


def test_plain_ldap_only_when_the_config_says_so(slapd: Slapd) -> None:
    with pytest.raises(ValueError, match="start_tls"):
        DirectoryConfig.model_validate(openldap_section(slapd, start_tls=False))
    directory = _directory(openldap_section(slapd, start_tls=False, allow_plain=True))
    try:
        assert _sign_in(directory, "alice", "alice-Secret-1").username == "alice"
    finally:
        directory.close()


def test_wrong_service_password_is_unavailable_not_a_login_failure(slapd: Slapd) -> None:
    section = openldap_section(slapd)
    directory = LdapDirectory(DirectoryConfig.model_validate(section), "wrong", SystemClock())
    with pytest.raises(DirectoryUnavailable, match="service account"):
        directory.find_account("alice")


# -- immutable ids; the order of a login: no bind once the throttle refuses --------------------


def _entry_uuid(slapd: Slapd, dn: str) -> str:
    result = subprocess.run(
        [
            *("ldapsearch", "-x", "-ZZ", "-H", slapd.url, "-D", "cn=svc-esign,ou=services,dc=example,dc=org"),
            *("-w", SERVICE_PASSWORD, "-b", dn, "-s", "base", "(objectClass=*)", "entryUUID"),
        ],
        capture_output=True,
        text=True,
        env={"LDAPTLS_CACERT": str(slapd.tls.ca_file)},
        check=True,
    )
    return result.stdout.split("entryUUID: ")[1].split()[0]


def test_people_carry_the_directorys_immutable_id(openldap: LdapDirectory, slapd: Slapd) -> None:
    alice = _sign_in(openldap, "alice", "alice-Secret-1")
    assert alice.directory_id == _entry_uuid(slapd, ALICE_DN)
    assert openldap.find_account("alice").directory_id == alice.directory_id
    # the id of an entry outside the person filter finds nobody
    assert openldap.lookup_by_id(_entry_uuid(slapd, "cn=svc-esign,ou=services,dc=example,dc=org")) is None


def test_no_bind_happens_when_the_throttle_refuses(slapd: Slapd, write_config: ConfigFactory) -> None:
    # uid or mail: two names of one entry, each with name counters of its own
    mail_filter = "(&(objectClass=inetOrgPerson)(|(uid={username})(mail={username})))"
    _, cfg = write_config(auth={"max_failed_logins": 2})
    engine = create_db_engine(cfg.database)
    migrate_database(engine)
    directory = _directory(openldap_section(slapd, user_filter=mail_filter))
    auth = AuthService(create_session_factory(engine), directory, cfg.auth, FakeClock())
    client = ClientInfo("10.7.9.1", None)
    try:
        since = slapd.log_size()
        for name in ("alice", "alice@example.org"):  # the entry's counter at this address is full
            with pytest.raises(AuthenticationFailed):
                auth.login(name, "wrong-password", client)
        assert slapd.wrong_password_binds(ALICE_DN, since) == 2
        since = slapd.log_size()
        # this name's own counters have room (one failure of two): the search finds the entry,
        # whose counters refuse, and the password, right as it is, is never tried
        with pytest.raises(TooManyAttempts):
            auth.login("ALICE@EXAMPLE.ORG", "alice-Secret-1", client)
        assert [dn for dn, _, _ in slapd.binds(since) if dn.lower() == ALICE_DN.lower()] == []
    finally:
        directory.close()
        engine.dispose()


# -- account state: ppolicy lock durations, AD lockout -----------------------------------------


@pytest.fixture
def policy_people(slapd: Slapd) -> Iterator[Callable[[str, str], None]]:
    """Adds people under a ppolicy with a 60 s lockout duration, with a given lock time."""
    policy = "cn=one-minute,ou=policies,dc=example,dc=org"
    slapd.ldap_cli(
        "ldapadd",
        f"dn: {policy}\nobjectClass: organizationalRole\nobjectClass: pwdPolicy\ncn: one-minute\n"
        "pwdAttribute: userPassword\npwdLockout: TRUE\npwdMaxFailure: 0\npwdLockoutDuration: 60\n",
    )
    added: list[str] = []

    def add(uid: str, locked_at: str) -> None:
        dn = f"uid={uid},ou=Sales,ou=people,dc=example,dc=org"
        slapd.ldap_cli(
            "ldapadd",
            f"dn: {dn}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n"
            f"userPassword: {uid}-Secret-1\npwdPolicySubentry: {policy}\n",
        )
        added.append(dn)
        slapd.ldap_cli(
            "ldapmodify",
            f"dn: {dn}\nchangetype: modify\nreplace: pwdAccountLockedTime\n"
            f"pwdAccountLockedTime: {locked_at}\n",
        )

    yield add
    for dn in added:
        slapd.ldap_cli("ldapdelete", f"{dn}\n")
    slapd.ldap_cli("ldapdelete", f"{policy}\n")


def test_ppolicy_lock_ends_after_the_policys_duration(
    openldap: LdapDirectory, slapd: Slapd, policy_people: Callable[[str, str], None]
) -> None:
    recent = datetime.now(UTC).strftime("%Y%m%d%H%M%SZ")
    policy_people("lapsed", "20240101000000Z")
    policy_people("fresh", recent)
    policy_people("forever", "000001010000Z")
    assert slapd.bind_works("uid=lapsed,ou=Sales,ou=people,dc=example,dc=org", "lapsed-Secret-1")
    assert _sign_in(openldap, "lapsed", "lapsed-Secret-1").status is AccountStatus.ACTIVE
    assert _reason(openldap, "fresh", "fresh-Secret-1") is FailureReason.LOCKED
    assert _reason(openldap, "forever", "forever-Secret-1") is FailureReason.LOCKED
    # carol's entry names no policy (slapd's default one is invisible to clients): locked
    assert _reason(openldap, "carol", "carol-Secret-1") is FailureReason.LOCKED


def test_ad_lockout_time(ad: LdapDirectory, slapd: Slapd) -> None:
    base = "ou=Staff,dc=corp,dc=example"
    entries = {
        "locked": "lockoutTime: 133500000000000000\n",
        "lapsed": "lockoutTime: 133500000000000000\nmsDS-User-Account-Control-Computed: 0\n",
    }
    for name, extra in entries.items():
        guid = base64.b64encode(uuid.uuid4().bytes_le).decode()
        slapd.ldap_cli(
            "ldapadd",
            f"dn: cn={name},{base}\nobjectClass: inetOrgPerson\nobjectClass: user\ncn: {name}\nsn: {name}\n"
            f"sAMAccountName: ad-{name}\nobjectGUID:: {guid}\nuserAccountControl: 512\n{extra}"
            f"userPassword: {name}-Secret-1\n",
            suffix="dc=corp,dc=example",
        )
    try:
        assert _reason(ad, "ad-locked", "locked-Secret-1") is FailureReason.LOCKED
        # AD's computed flag, when returned, says the lock has lapsed
        assert _sign_in(ad, "ad-lapsed", "lapsed-Secret-1").status is AccountStatus.ACTIVE
    finally:
        for name in entries:
            slapd.ldap_cli("ldapdelete", f"cn={name},{base}\n", suffix="dc=corp,dc=example")


# -- people searches: scope, size limit, AD's disabled flag, unreadable entries ---------------


def _usernames(people: list[DirectoryPerson]) -> list[str]:
    return [p.username for p in people]


def test_search_keeps_to_the_person_filter_and_base_dn(openldap: LdapDirectory, slapd: Slapd) -> None:
    assert _usernames(openldap.search_people("@example.org")) == ["alice", "bob", "carol", "dave"]
    assert openldap.search_people("svc-esign") == []  # outside the base DN, and not a person
    finance = _directory(openldap_section(slapd, user_base_dn="ou=Finance,ou=people,dc=example,dc=org"))
    sales_filter = "(&(objectClass=inetOrgPerson)(departmentNumber=Sales)(uid={username}))"
    sales = _directory(openldap_section(slapd, user_filter=sales_filter))
    try:
        assert _usernames(finance.search_people("@example.org")) == ["alice", "dave"]
        assert _usernames(sales.search_people("@example.org")) == ["bob", "carol"]
    finally:
        finance.close()
        sales.close()


@pytest.fixture
def add_entries(slapd: Slapd) -> Iterator[Callable[[str, str], None]]:
    """Adds LDIF entries to the running tree for one test, and deletes them after it."""
    added: list[tuple[str, str]] = []

    def add(ldif: str, suffix: str) -> None:
        slapd.ldap_cli("ldapadd", ldif, suffix=suffix)
        added.extend((line[4:], suffix) for line in ldif.splitlines() if line.startswith("dn: "))

    yield add
    for dn, suffix in reversed(added):
        slapd.ldap_cli("ldapdelete", f"{dn}\n", suffix=suffix)


def _search_results(slapd: Slapd, since: int) -> list[tuple[int, int]]:
    """(result code, entries sent) of each search slapd answered after log offset `since`."""
    with slapd.log.open("rb") as log:
        log.seek(since)
        text = log.read().decode("utf-8", errors="replace")
    return [
        (int(code), int(count))
        for code, count in re.findall(r"SEARCH RESULT tag=101 err=(\d+) .*?nentries=(\d+)", text)
    ]


def test_a_broad_search_reads_at_most_a_hundred_entries(
    openldap: LdapDirectory, slapd: Slapd, add_entries: Callable[[str, str], None]
) -> None:
    add_entries(
        "".join(
            f"dn: uid=bulk-{n:03},ou=Sales,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\n"
            f"uid: bulk-{n:03}\ncn: Bulk {n:03}\nsn: Bulk\n\n"
            for n in range(150, 30, -1)  # 120 people, added in reverse order of their names
        ),
        "dc=example,dc=org",
    )
    since = slapd.log_size()
    people = openldap.search_people("bulk", limit=50)
    # slapd stopped at the size limit (result 4, sizeLimitExceeded): what came back is used
    assert (4, 100) in _search_results(slapd, since)
    assert len(people) == 50
    names = [p.display_name for p in people]
    assert names == sorted(names) and all(name.startswith("Bulk ") for name in names)
    assert len({p.directory_id for p in people}) == 50


def test_ad_disabled_accounts_are_left_out_by_the_server(
    ad: LdapDirectory, add_entries: Callable[[str, str], None]
) -> None:
    # more disabled matches than one search reads, added before the one enabled match: were
    # they only dropped after reading, the size limit would leave nobody to return
    entries = [(f"gone-{n:03}", 514 if n % 2 else 66050) for n in range(101)] + [("gone-keeper", 512)]
    add_entries(
        "".join(
            f"dn: cn={name},ou=Staff,{AD_SUFFIX}\nobjectClass: inetOrgPerson\nobjectClass: user\n"
            f"cn: {name}\nsn: Gone\nsAMAccountName: {name}\nuserAccountControl: {uac}\n"
            f"objectGUID:: {base64.b64encode(uuid.uuid5(uuid.NAMESPACE_DNS, name).bytes_le).decode()}\n\n"
            for name, uac in entries
        ),
        AD_SUFFIX,
    )
    assert _usernames(ad.search_people("gone-")) == ["gone-keeper"]


def test_ad_entry_without_an_object_guid_is_left_out_of_searches(
    ad: LdapDirectory, add_entries: Callable[[str, str], None]
) -> None:
    add_entries(
        f"dn: cn=No Guid,ou=Staff,{AD_SUFFIX}\nobjectClass: inetOrgPerson\nobjectClass: user\n"
        "cn: No Guid\nsn: Guid\nsAMAccountName: noguid\ndisplayName: Wang Noguid\nuserAccountControl: 512\n",
        AD_SUFFIX,
    )
    with pytest.raises(DirectoryUnavailable, match="cannot read"):
        ad.lookup("noguid")  # a single person: refused as unreadable
    # a search that also matches it still answers, with everyone else it matches
    assert _usernames(ad.search_people("wang")) == ["wfang"]
