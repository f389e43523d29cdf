"""The directory port's behaviour: the same test bodies against the fake and LdapDirectory on slapd.

Both hold the same two trees (tests/fixtures/ldap/*.ldif and their mirrors in
tests/fixtures/ldap.py), so whatever a test here says of one it says of the other, and the
fake that other tests use cannot drift from the real directory. The people searches also add
`NEWCOMERS` to both, written below once as LDIF and once for the fake.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import pytest

from appliance.clock import SystemClock
from appliance.config import DirectoryConfig, Role
from appliance.directory import (
    AccountStatus,
    AuthenticationFailed,
    Directory,
    DirectoryPerson,
    DirectoryUnavailable,
    FailureReason,
    LdapDirectory,
    OrganisationRef,
)
from appliance.directory.profiles import UAC_ACCOUNTDISABLE
from appliance.errors import InvalidInput
from tests.fakes.directory import FakePerson
from tests.fixtures.ldap import (
    AD_SERVICE_DN,
    AD_SUFFIX,
    OPENLDAP_SERVICE_DN,
    OPENLDAP_SUFFIX,
    SERVICE_PASSWORD,
    UNUSUAL_PASSWORDS,
    Slapd,
    ad_section,
    fake_ad_tree,
    fake_openldap_tree,
    free_port,
    openldap_section,
)

ALICE_DN = "uid=alice,ou=Finance,ou=people,dc=example,dc=org"
CAROL_DN = "uid=carol,ou=Sales,ou=people,dc=example,dc=org"
DECOY = "cn=appliance-no-such-user"
INVALID = "The user name or password is incorrect, or the account cannot sign in."


@dataclass
class Backend:
    openldap: Directory
    ad: Directory
    binds: Callable[[], list[str]]
    """Lower-cased DNs of the binds people's passwords were tried with since the test began
    (the service account's own binds left out)."""
    outage: Callable[[], Directory]
    """A directory of which no server answers."""
    add_newcomers: Callable[[], None]
    """Adds `NEWCOMERS` to both trees, for this test only."""


# -- people who joined after the trees were seeded, for the people searches ---------------------
# Here rather than in the seed data, so the fakes other tests use (tests/fixtures/ldap.py) keep
# mirroring the seed exactly: each newcomer is written once as LDIF and once for the fake.

Attribute = tuple[str, str]
NEWCOMERS: dict[str, list[tuple[str, list[Attribute], FakePerson]]] = {
    OPENLDAP_SUFFIX: [
        (
            f"uid={uid},ou=Sales,ou=people,{OPENLDAP_SUFFIX}",
            [
                ("cn", name),
                ("sn", "张"),
                ("displayName", name),
                ("mail", mail),
                ("departmentNumber", "Sales"),
            ],
            FakePerson(
                dn=f"uid={uid},ou=Sales,ou=people,{OPENLDAP_SUFFIX}",
                login_names=(uid,),
                password="",
                display_name=name,
                email=mail,
                department="Sales",
                organisation=OrganisationRef("Sales", "Sales"),
            ),
        )
        for uid, name, mail in (
            ("zhangwei", "张伟", "zhangwei@example.org"),
            ("zhangweimin", "张伟民", "zwm@example.org"),
        )
    ]
    + [
        # every searched attribute different from the others
        (
            f"uid=qxu,ou=Sales,ou=people,{OPENLDAP_SUFFIX}",
            [
                ("cn", "Xu Qing"),
                ("sn", "Xu"),
                ("displayName", "Qing Xu (Legal)"),
                ("mail", "q.xu@legal.example"),
            ],
            FakePerson(
                dn=f"uid=qxu,ou=Sales,ou=people,{OPENLDAP_SUFFIX}",
                login_names=("qxu",),
                password="",
                display_name="Qing Xu (Legal)",
                cn="Xu Qing",
                email="q.xu@legal.example",
            ),
        ),
        # filter syntax in the name; no displayName (the cn is shown) and no mail
        (
            f"uid=odd-name,ou=Sales,ou=people,{OPENLDAP_SUFFIX}",
            [("cn", "Odd (Name) *Star* Back\\Slash"), ("sn", "Odd")],
            FakePerson(
                dn=f"uid=odd-name,ou=Sales,ou=people,{OPENLDAP_SUFFIX}",
                login_names=("odd-name",),
                password="",
                display_name="Odd (Name) *Star* Back\\Slash",
            ),
        ),
    ],
    AD_SUFFIX: [
        (
            f"cn={cn},ou=Staff,{AD_SUFFIX}",
            [
                ("sn", "Zhang"),
                ("displayName", name),
                ("sAMAccountName", sam),
                ("userPrincipalName", upn),
                ("mail", mail),
                ("userAccountControl", str(uac)),
                ("objectGUID", str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{sam}.corp.example"))),
            ],
            FakePerson(
                dn=f"cn={cn},ou=Staff,{AD_SUFFIX}",
                login_names=(sam, upn),
                password="",
                display_name=name,
                cn=cn,
                email=mail,
                status=AccountStatus.DISABLED if uac & UAC_ACCOUNTDISABLE else AccountStatus.ACTIVE,
                directory_id=str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{sam}.corp.example")),
            ),
        )
        for cn, name, sam, upn, mail, uac in (
            ("张伟", "张伟", "zwei", "zwei@corp.example", "zwei@corp.example", 512),
            # 66050: NORMAL_ACCOUNT | DONT_EXPIRE_PASSWORD | ACCOUNTDISABLE
            ("Zhang Wei Old", "张伟", "zwei-old", "zwei-old@corp.example", "zwei-old@corp.example", 66050),
            # the UPN differs from the mail: both are searched
            ("Ma Hui", "Hui Ma", "hma", "hma@ad.corp.example", "hui.ma@corp.example", 512),
        )
    ],
}


def _ldif_line(name: str, value: str) -> str:
    if name == "objectGUID":
        return f"{name}:: {base64.b64encode(uuid.UUID(value).bytes_le).decode()}"
    if value.isascii():
        return f"{name}: {value}"
    return f"{name}:: {base64.b64encode(value.encode()).decode()}"  # LDIF text is ASCII


def _ldif(dn: str, attributes: Sequence[Attribute], suffix: str) -> str:
    classes = ["inetOrgPerson"] + (["user"] if suffix == AD_SUFFIX else [])
    lines = [_ldif_line("dn", dn), *(f"objectClass: {c}" for c in classes)]
    rdn_name, rdn_value = dn.split(",")[0].split("=", 1)
    lines += [_ldif_line(rdn_name, rdn_value), *(_ldif_line(n, v) for n, v in attributes if n != rdn_name)]
    return "\n".join(lines) + "\n"


def _fake_backend() -> Backend:
    openldap, ad = fake_openldap_tree(), fake_ad_tree()

    def outage() -> Directory:
        down = fake_openldap_tree()
        down.available = False
        return down

    def add_newcomers() -> None:
        openldap.add_people(person for _, _, person in NEWCOMERS[OPENLDAP_SUFFIX])
        ad.add_people(person for _, _, person in NEWCOMERS[AD_SUFFIX])

    return Backend(
        openldap, ad, lambda: [dn.lower() for dn in openldap.binds + ad.binds], outage, add_newcomers
    )


def _ldap(section: dict[str, object]) -> LdapDirectory:
    return LdapDirectory(DirectoryConfig.model_validate(section), SERVICE_PASSWORD, SystemClock())


@pytest.fixture(params=["fake", pytest.param("slapd", marks=pytest.mark.ldap)])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "fake":
        yield _fake_backend()
        return
    slapd: Slapd = request.getfixturevalue("slapd")
    opened: list[LdapDirectory] = []

    def directory(section: dict[str, object]) -> LdapDirectory:
        opened.append(_ldap(section))
        return opened[-1]

    services = {OPENLDAP_SERVICE_DN.lower(), AD_SERVICE_DN.lower()}
    since = slapd.log_size()

    def binds() -> list[str]:
        return [dn.lower() for dn, _, _ in slapd.binds(since) if dn.lower() not in services]

    def outage() -> Directory:
        return directory(openldap_section(slapd, servers=[{"url": f"ldap://127.0.0.1:{free_port()}"}]))

    added: list[tuple[str, str]] = []

    def add_newcomers() -> None:
        for suffix, newcomers in NEWCOMERS.items():
            for dn, attributes, _ in newcomers:
                slapd.ldap_cli("ldapadd", _ldif(dn, attributes, suffix), suffix=suffix)
                added.append((dn, suffix))

    yield Backend(
        directory(openldap_section(slapd)), directory(ad_section(slapd)), binds, outage, add_newcomers
    )
    for opened_directory in opened:
        opened_directory.close()
    for dn, suffix in reversed(added):
        slapd.ldap_cli("ldapdelete", f"{dn}\n", suffix=suffix)


def sign_in(directory: Directory, username: str, password: str) -> DirectoryPerson:
    return directory.verify_password(directory.find_account(username), password)


def refusal(directory: Directory, username: str, password: str) -> FailureReason:
    with pytest.raises(AuthenticationFailed) as caught:
        sign_in(directory, username, password)
    assert caught.value.public == INVALID
    assert isinstance(caught.value.reason, FailureReason)
    return caught.value.reason


# -- who signs in, and as whom ----------------------------------------------------------------


def test_good_login_returns_the_person_with_mapped_roles(backend: Backend) -> None:
    person = sign_in(backend.openldap, "alice", "alice-Secret-1")
    assert person.dn == ALICE_DN
    assert (person.username, person.display_name, person.email) == ("alice", "Alice Liu", "alice@example.org")
    assert person.phone == "+86 21 5555 0101" and person.department == "Finance"
    assert person.organisation is not None and person.organisation.name == "Finance"
    assert person.status is AccountStatus.ACTIVE
    # seal_keeper comes only through nesting (finance-signers inside seal-keepers);
    # auditors-extra must not count as auditors
    assert person.roles == {Role.EMPLOYEE, Role.SEAL_KEEPER}
    assert "cn=seal-keepers,ou=groups,dc=example,dc=org" in person.groups
    # the membership cycle loop-a <-> loop-b was walked and ended
    assert {"cn=loop-a,ou=groups,dc=example,dc=org", "cn=loop-b,ou=groups,dc=example,dc=org"} <= person.groups


def test_group_shapes_group_of_unique_names_and_posix(backend: Backend) -> None:
    assert sign_in(backend.openldap, "bob", "bob-Secret-1").roles == {Role.EMPLOYEE, Role.INITIATOR}
    assert sign_in(backend.openldap, "dave", "dave-Secret-1").roles == {
        Role.EMPLOYEE,
        Role.APPROVER,
        Role.AUDITOR,
    }


def test_ad_login_by_sam_account_name_or_upn_with_nested_groups(backend: Backend) -> None:
    person = sign_in(backend.ad, "wfang", "wfang-Secret-1")
    assert person.username == "wfang" and person.email == "wfang@corp.example"
    # Sales Team -> Contract Initiators -> Seal Approvers: two levels of nesting
    assert person.roles == {Role.EMPLOYEE, Role.INITIATOR, Role.APPROVER}
    assert sign_in(backend.ad, "wfang@corp.example", "wfang-Secret-1").dn == person.dn
    assert sign_in(backend.ad, "sli", "sli-Secret-1").roles == {Role.EMPLOYEE, Role.AUDITOR}
    # AD's objectGUID, from its 16 bytes (first three fields little-endian) to the usual form
    assert person.directory_id == str(uuid.uuid5(uuid.NAMESPACE_DNS, "wfang.corp.example"))


def test_every_spelling_of_a_name_finds_the_same_account_without_a_bind(backend: Backend) -> None:
    accounts = [
        backend.openldap.find_account(spelling)
        for spelling in ("alice", "ALICE", " alice ", "\uff41\uff4c\uff49\uff43\uff45")  # full-width too
    ]
    assert {a.dn for a in accounts} == {ALICE_DN.lower()}
    assert len({a.directory_id for a in accounts}) == 1 and accounts[0].directory_id is not None
    assert all(a.refusal is None for a in accounts)
    upn, sam = backend.ad.find_account("WFANG@corp.example"), backend.ad.find_account("wfang")
    assert upn.dn == sam.dn is not None and upn.directory_id == sam.directory_id
    assert backend.binds() == []  # finding is a search only: the password step binds


# -- refusals ---------------------------------------------------------------------------------


def test_wrong_password_and_unknown_user_fail_alike(backend: Backend) -> None:
    assert refusal(backend.openldap, "alice", "not-her-password") is FailureReason.WRONG_PASSWORD
    assert refusal(backend.openldap, "nobody", "whatever-1") is FailureReason.UNKNOWN_USER
    # each cost one bind: to her entry, and to a DN that cannot exist
    binds = backend.binds()
    assert len(binds) == 2 and binds[0] == ALICE_DN.lower() and binds[1].startswith(DECOY)


@pytest.mark.parametrize("password", ["", " ", "\t", "\x00", "alice-Secret-1\x00"])
def test_empty_or_nul_password_is_refused_before_any_bind(backend: Backend, password: str) -> None:
    assert refusal(backend.openldap, "alice", password) is FailureReason.EMPTY_PASSWORD
    assert backend.binds() == []


@pytest.mark.parametrize(
    "username", ["*", ")(uid=*", "\\00", "\x00", "admin)(|(x=*", "al*", "*)(uid=*", "alice)(uid=*", ALICE_DN]
)
def test_injection_strings_neither_log_in_nor_widen_the_search(backend: Backend, username: str) -> None:
    account = backend.openldap.find_account(username)
    assert account.dn is None and account.directory_id is None
    assert account.refusal in (FailureReason.UNKNOWN_USER, FailureReason.INVALID_USERNAME)
    assert refusal(backend.openldap, username, "alice-Secret-1") is account.refusal
    assert backend.openldap.lookup(username) is None


def test_a_name_that_cannot_be_searched_for_costs_no_bind(backend: Backend) -> None:
    for username in ("", "   ", "a\x07b", "x" * 257, "\ud800"):
        assert refusal(backend.openldap, username, "alice-Secret-1") is FailureReason.INVALID_USERNAME
        assert backend.openldap.lookup(username) is None
    assert backend.binds() == []


def test_a_locked_account_is_refused_after_a_decoy_bind(backend: Backend) -> None:
    account = backend.openldap.find_account("carol")
    assert account.dn == CAROL_DN.lower() and account.refusal is FailureReason.LOCKED
    assert refusal(backend.openldap, "carol", "carol-Secret-1") is FailureReason.LOCKED
    # the right password never reached her entry: the bind went to the decoy
    assert [dn.startswith(DECOY) for dn in backend.binds()] == [True]
    person = backend.openldap.lookup("carol")
    assert person is not None and person.status is AccountStatus.LOCKED


def test_ad_disabled_and_expired_accounts_cannot_log_in(backend: Backend) -> None:
    # the passwords are right: only the account state stops them
    assert refusal(backend.ad, "llei", "llei-Secret-1") is FailureReason.DISABLED
    assert refusal(backend.ad, "zmin@corp.example", "zmin-Secret-1") is FailureReason.EXPIRED
    assert [dn.startswith(DECOY) for dn in backend.binds()] == [True, True]


# -- passwords are sent as typed --------------------------------------------------------------


@pytest.mark.parametrize("username", sorted(UNUSUAL_PASSWORDS))
def test_passwords_saslprep_would_refuse_or_change_sign_in_as_typed(backend: Backend, username: str) -> None:
    password = UNUSUAL_PASSWORDS[username]
    assert sign_in(backend.openldap, username, password).username == username
    # nothing is folded either: the same password with a plain space is another password
    if "\u00a0" in password:
        assert refusal(backend.openldap, username, password.replace("\u00a0", " ")) is (
            FailureReason.WRONG_PASSWORD
        )


def test_a_password_that_is_not_text_is_invalid_input_with_no_bind(backend: Backend) -> None:
    account = backend.openldap.find_account("alice")
    with pytest.raises(InvalidInput, match="not valid text"):
        backend.openldap.verify_password(account, "alice-\ud800")
    assert backend.binds() == []


# -- people by id, groups, outage ---------------------------------------------------------------


def test_people_are_found_again_by_their_immutable_id(backend: Backend) -> None:
    alice = sign_in(backend.openldap, "alice", "alice-Secret-1")
    assert uuid.UUID(alice.directory_id)
    assert backend.openldap.lookup_by_id(alice.directory_id) == alice
    assert backend.openldap.lookup_by_id(alice.directory_id.upper()) == alice
    wfang = sign_in(backend.ad, "wfang", "wfang-Secret-1")
    assert backend.ad.lookup_by_id(wfang.directory_id) == wfang
    assert backend.openldap.lookup_by_id(str(uuid.uuid4())) is None
    assert backend.openldap.lookup_by_id("*") is None
    assert backend.openldap.lookup_by_id("not-a-uuid)(uid=*") is None


def test_group_members_resolves_nesting(backend: Backend) -> None:
    def members(directory: Directory, group: str) -> list[str]:
        return [p.username for p in directory.group_members(group)]

    openldap_groups = "ou=groups,dc=example,dc=org"
    assert members(backend.openldap, f"cn=seal-keepers,{openldap_groups}") == ["alice"]
    assert members(backend.openldap, f"cn=approvers,{openldap_groups}") == ["dave"]
    assert members(backend.openldap, f"cn=employees,{openldap_groups}") == ["alice", "bob", "carol", "dave"]
    assert members(backend.ad, "CN=Seal Approvers,OU=Groups,DC=corp,DC=example") == ["wfang"]


def test_an_outage_is_unavailable_never_a_refusal(backend: Backend) -> None:
    down = backend.outage()
    with pytest.raises(DirectoryUnavailable):
        down.find_account("alice")
    with pytest.raises(DirectoryUnavailable):
        down.lookup("alice")
    with pytest.raises(DirectoryUnavailable):
        down.search_people("alice")
    with pytest.raises(DirectoryUnavailable):
        down.check_ready()
    assert not down.health().ok
    assert backend.openldap.health().ok
    backend.openldap.check_ready()


# -- searching people by name, for picking a colleague who may never have signed in -------------


def found(directory: Directory, query: str, limit: int = 20) -> list[str]:
    return [person.username for person in directory.search_people(query, limit=limit)]


def test_search_matches_the_login_name_cn_display_name_and_mail(backend: Backend) -> None:
    backend.add_newcomers()
    # qxu's four values share none of these texts
    for query in ("qxu", "xu qing", "qing xu", "q.xu@"):
        assert found(backend.openldap, query) == ["qxu"], query
    # AD: sAMAccountName, userPrincipalName, cn, displayName, mail
    for query in ("hma", "@ad.corp", "ma hui", "hui ma", "hui.ma@"):
        assert found(backend.ad, query) == ["hma"], query
    assert found(backend.openldap, "nobody-at-all") == []


def test_search_ignores_case(backend: Backend) -> None:
    for query in ("ALICE LIU", "alice liu", "aLiCe", "ALICE@EXAMPLE"):
        assert found(backend.openldap, query) == ["alice"], query
    assert found(backend.ad, "WANG FANG") == found(backend.ad, "wfang@CORP") == ["wfang"]


def test_search_finds_chinese_names_and_returns_what_lookup_does(backend: Backend) -> None:
    backend.add_newcomers()
    assert found(backend.openldap, "张伟") == ["zhangwei", "zhangweimin"]  # sorted by display name
    assert found(backend.openldap, "伟民") == ["zhangweimin"]
    [zhang] = backend.openldap.search_people("张伟", limit=1)
    assert (zhang.display_name, zhang.email, zhang.department) == ("张伟", "zhangwei@example.org", "Sales")
    assert zhang == backend.openldap.lookup("zhangwei")
    [ad_zhang] = backend.ad.search_people(" 张伟 ")  # surrounding spaces are not searched for
    assert ad_zhang.username == "zwei" and ad_zhang == backend.ad.lookup("zwei")
    # ids, groups, roles and organisation: the same person as sign-in and lookup give
    [alice] = backend.openldap.search_people("Alice")
    assert alice == sign_in(backend.openldap, "alice", "alice-Secret-1")
    assert alice.roles == {Role.EMPLOYEE, Role.SEAL_KEEPER}
    [wfang] = backend.ad.search_people("Wang")
    assert wfang == backend.ad.lookup_by_id(wfang.directory_id)


def test_search_shows_the_cn_when_there_is_no_display_name(backend: Backend) -> None:
    backend.add_newcomers()
    [bob] = backend.openldap.search_people("bob")
    assert bob.display_name == "Bob Chen"
    [odd] = backend.openldap.search_people("odd-name")
    assert (odd.display_name, odd.email) == ("Odd (Name) *Star* Back\\Slash", None)


@pytest.mark.parametrize(
    ("query", "usernames"),
    [
        ("(name)", ["odd-name"]),
        ("*star*", ["odd-name"]),
        ("k\\s", ["odd-name"]),
        ("(legal)", ["qxu"]),
        # each would match everyone, or more, were it not escaped
        ("*a", []),
        ("**", []),
        ("*)(uid=*", []),
        ("*)(|(uid=*", []),
        (")(", []),
        ("\\2a", []),
        ("\\\\", []),  # the name holds one backslash, not two
    ],
)
def test_search_text_is_matched_literally(backend: Backend, query: str, usernames: list[str]) -> None:
    backend.add_newcomers()
    assert found(backend.openldap, query) == usernames
    assert found(backend.ad, query) == []


def test_search_leaves_out_disabled_accounts_only(backend: Backend) -> None:
    backend.add_newcomers()
    assert found(backend.ad, "li") == ["sli"]  # Li Lei is disabled (userAccountControl 514)
    assert found(backend.ad, "llei") == []
    assert found(backend.ad, "张伟") == ["zwei"]  # zwei-old: 66050 has the ACCOUNTDISABLE bit too
    # locked and expired people can still be picked: a lock lapses, an account is renewed
    assert found(backend.openldap, "carol") == ["carol"]
    assert found(backend.ad, "zhao min") == ["zmin"]


def test_search_returns_at_most_limit_people_sorted_by_display_name(backend: Backend) -> None:
    everyone = backend.openldap.search_people("@example.org", limit=50)
    assert [p.username for p in everyone] == ["alice", "bob", "carol", "dave"]
    assert found(backend.openldap, "@example.org", limit=2) == ["alice", "bob"]
    assert found(backend.openldap, "pw", limit=1) == ["bidi-pw"]
    assert found(backend.openldap, "@example.org", limit=1) == ["alice"]
    backend.add_newcomers()
    assert len(backend.openldap.search_people("@example.org")) == 6
    assert found(backend.ad, "corp.example", limit=3) == ["hma", "sli", "wfang"]  # Hui Ma, Sun Li, Wang Fang


@pytest.mark.parametrize(
    "query",
    ["", "  ", "a", " a ", "张", "x" * 101, "a\x00b", "\x00\x00", "a\nb", "al\x7f", "\ud800\ud800"],
)
def test_search_text_must_be_two_to_a_hundred_characters_of_text(backend: Backend, query: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        backend.openldap.search_people(query)
    assert "2 to 100 characters" in caught.value.public or "not text" in caught.value.public


def test_search_limit_is_one_to_fifty(backend: Backend) -> None:
    for limit in (0, -1, 51):
        with pytest.raises(InvalidInput, match="1 to 50"):
            backend.openldap.search_people("alice", limit=limit)
    assert found(backend.openldap, "x" * 100) == [] and found(backend.openldap, "li", limit=50) == ["alice"]
    with pytest.raises(InvalidInput):
        backend.outage().search_people("a")  # refused before any server is asked
