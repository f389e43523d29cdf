"""The LDAP implementation against a real slapd: OpenLDAP- and AD-shaped trees over StartTLS."""

from __future__ import annotations

import base64
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from appliance.clock import SystemClock
from appliance.config import DirectoryConfig, Role
from appliance.directory import (
    AccountStatus,
    AuthenticationFailed,
    DirectoryAccount,
    DirectoryUnavailable,
    FailureReason,
    LdapDirectory,
)
from tests.fixtures.ldap import (
    SERVICE_PASSWORD,
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


def _reason(directory: LdapDirectory, username: str, password: str) -> FailureReason:
    with pytest.raises(AuthenticationFailed) as caught:
        directory.authenticate(username, password)
    assert caught.value.public == "The user name or password is incorrect, or the account cannot sign in."
    return caught.value.reason


def test_good_login_returns_the_person_with_mapped_roles(openldap: LdapDirectory) -> None:
    person = openldap.authenticate("alice", "alice-Secret-1")
    assert person.dn == ALICE_DN
    assert (person.username, person.display_name, person.email) == ("alice", "Alice Liu", "alice@example.org")
    assert person.phone == "+86 21 5555 0101" and person.department == "Finance"
    assert person.status is AccountStatus.ACTIVE
    # seal_keeper comes only through nesting (finance-signers inside seal-keepers);
    # auditors-extra must not count as auditors
    assert person.roles == {Role.EMPLOYEE, Role.SEAL_KEEPER}
    assert "cn=seal-keepers,ou=groups,dc=example,dc=org" in person.groups
    # the membership cycle loop-a <-> loop-b was walked and ended
    assert {"cn=loop-a,ou=groups,dc=example,dc=org", "cn=loop-b,ou=groups,dc=example,dc=org"} <= person.groups


def test_group_shapes_group_of_unique_names_and_posix(openldap: LdapDirectory) -> None:
    assert openldap.authenticate("bob", "bob-Secret-1").roles == {Role.EMPLOYEE, Role.INITIATOR}
    assert openldap.authenticate("dave", "dave-Secret-1").roles == {
        Role.EMPLOYEE,
        Role.APPROVER,
        Role.AUDITOR,
    }


def test_wrong_password_and_unknown_user_fail_alike(openldap: LdapDirectory) -> None:
    assert _reason(openldap, "alice", "not-her-password") is FailureReason.WRONG_PASSWORD
    assert _reason(openldap, "nobody", "whatever-1") is FailureReason.UNKNOWN_USER


@pytest.mark.parametrize("password", ["", " ", "\t", "\x00", "alice-Secret-1\x00"])
def test_empty_or_nul_password_is_refused_before_any_bind(openldap: LdapDirectory, password: str) -> None:
    assert _reason(openldap, "alice", password) is FailureReason.EMPTY_PASSWORD


@pytest.mark.parametrize(
    "username", ["*", ")(uid=*", "\\00", "\x00", "admin)(|(x=*", "al*", "*)(uid=*", "alice)(uid=*", ALICE_DN]
)
def test_injection_strings_neither_log_in_nor_widen_the_search(
    openldap: LdapDirectory, username: str
) -> None:
    assert _reason(openldap, username, "alice-Secret-1") in (
        FailureReason.UNKNOWN_USER,
        FailureReason.INVALID_USERNAME,
    )
    assert openldap.lookup(username) is None


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
    assert _reason(openldap, "carol", "carol-Secret-1") is FailureReason.LOCKED
    person = openldap.lookup("carol")
    assert person is not None and person.status is AccountStatus.LOCKED


def test_ad_login_by_sam_account_name_or_upn_with_nested_groups(ad: LdapDirectory) -> None:
    person = ad.authenticate("wfang", "wfang-Secret-1")
    assert person.username == "wfang"
    # Sales Team -> Contract Initiators -> Seal Approvers: two levels of nesting
    assert person.roles == {Role.EMPLOYEE, Role.INITIATOR, Role.APPROVER}
    assert ad.authenticate("wfang@corp.example", "wfang-Secret-1").dn == person.dn
    assert ad.authenticate("sli", "sli-Secret-1").roles == {Role.EMPLOYEE, Role.AUDITOR}


def test_ad_disabled_and_expired_accounts_cannot_log_in(ad: LdapDirectory, slapd: Slapd) -> None:
    # the passwords are right: only the account state stops them
    assert slapd.bind_works("cn=Li Lei,ou=Staff,dc=corp,dc=example", "llei-Secret-1")
    assert _reason(ad, "llei", "llei-Secret-1") is FailureReason.DISABLED
    assert _reason(ad, "zmin", "zmin-Secret-1") is FailureReason.EXPIRED


def test_group_members_resolves_nesting(openldap: LdapDirectory, ad: LdapDirectory) -> None:
    assert [p.username for p in openldap.group_members("cn=seal-keepers,ou=groups,dc=example,dc=org")] == [
        "alice"
    ]
    assert [p.username for p in openldap.group_members("cn=approvers,ou=groups,dc=example,dc=org")] == [
        "dave"
    ]
    assert [p.username for p in ad.group_members("CN=Seal Approvers,OU=Groups,DC=corp,DC=example")] == [
        "wfang"
    ]


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
        assert directory.authenticate("alice", "alice-Secret-1").username == "alice"
        health = directory.health()
        assert [s.reachable for s in health.servers] == [False, True] and health.ok
    finally:
        directory.close()


def test_all_servers_down_is_unavailable_quickly(slapd: Slapd) -> None:
    servers = [{"url": f"ldap://127.0.0.1:{free_port()}"}, {"url": f"ldap://127.0.0.1:{free_port()}"}]
    directory = _directory(openldap_section(slapd, servers=servers))
    started = time.monotonic()
    with pytest.raises(DirectoryUnavailable):
        directory.authenticate("alice", "alice-Secret-1")
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
        directory.authenticate("alice", "alice-Secret-1")


def test_plain_ldap_only_when_the_config_says_so(slapd: Slapd) -> None:
    with pytest.raises(ValueError, match="start_tls"):
        DirectoryConfig.model_validate(openldap_section(slapd, start_tls=False))
    directory = _directory(openldap_section(slapd, start_tls=False, allow_plain=True))
    try:
        assert directory.authenticate("alice", "alice-Secret-1").username == "alice"
    finally:
        directory.close()


def test_wrong_service_password_is_unavailable_not_a_login_failure(slapd: Slapd) -> None:
    section = openldap_section(slapd)
    directory = LdapDirectory(DirectoryConfig.model_validate(section), "wrong", SystemClock())
    with pytest.raises(DirectoryUnavailable, match="service account"):
        directory.authenticate("alice", "alice-Secret-1")


# -- immutable ids, lookup by id, the before-bind hook ----------------------------------------


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


def test_people_carry_the_directorys_immutable_id(
    openldap: LdapDirectory, ad: LdapDirectory, slapd: Slapd
) -> None:
    alice = openldap.authenticate("alice", "alice-Secret-1")
    assert alice.directory_id == _entry_uuid(slapd, ALICE_DN)
    # AD's objectGUID, from its 16 bytes (first three fields little-endian) to the usual form
    wfang = ad.authenticate("wfang", "wfang-Secret-1")
    assert wfang.directory_id == str(uuid.uuid5(uuid.NAMESPACE_DNS, "wfang.corp.example"))
    assert openldap.lookup_by_id(alice.directory_id) == alice
    assert ad.lookup_by_id(wfang.directory_id) == wfang
    assert openldap.lookup_by_id(str(uuid.uuid4())) is None
    assert openldap.lookup_by_id("*") is None and openldap.lookup_by_id("not-a-uuid)(uid=*") is None
    # the id of an entry outside the person filter finds nobody
    assert openldap.lookup_by_id(_entry_uuid(slapd, "cn=svc-esign,ou=services,dc=example,dc=org")) is None


def test_the_hook_sees_the_entry_before_any_bind_and_can_stop_it(
    openldap: LdapDirectory, slapd: Slapd
) -> None:
    seen: list[DirectoryAccount] = []

    class Stop(Exception):
        pass

    def refuse(account: DirectoryAccount) -> None:
        seen.append(account)
        raise Stop

    since = slapd.log_size()
    for spelling in ("alice", "ALICE", "\uff41\uff4c\uff49\uff43\uff45"):  # full-width too
        with pytest.raises(Stop):
            openldap.authenticate(spelling, "wrong-password", before_bind=refuse)
    assert {a.dn for a in seen} == {ALICE_DN.lower()} and len(seen) == 3
    assert len({a.directory_id for a in seen}) == 1
    assert [dn for dn, _, _ in slapd.binds(since) if dn.lower() == ALICE_DN.lower()] == []


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
    assert openldap.authenticate("lapsed", "lapsed-Secret-1").status is AccountStatus.ACTIVE
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
        assert ad.authenticate("ad-lapsed", "lapsed-Secret-1").status is AccountStatus.ACTIVE
    finally:
        for name in entries:
            slapd.ldap_cli("ldapdelete", f"cn={name},{base}\n", suffix="dc=corp,dc=example")
