"""Pure parts of the directory package: DN normalisation, exact group matching, account state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from appliance.config import DirectoryProfile, Role
from appliance.directory.api import AccountStatus
from appliance.directory.dn import MalformedDn, is_within, normalize_dn
from appliance.directory.mapping import OrganisationMap, RoleMap
from appliance.directory.profiles import build_user_filter, filetime_to_datetime, profile_for
from appliance.errors import ApplianceError, InvalidInput

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("*", "(uid=\\2a)"),
        (")(uid=*", "(uid=\\29\\28uid=\\2a)"),
        ("\x00", "(uid=\\00)"),
        ("admin)(|(x=*", "(uid=admin\\29\\28|\\28x=\\2a)"),
        ("back\\slash", "(uid=back\\5cslash)"),
    ],
)
def test_filter_values_are_escaped_per_rfc4515(raw: str, escaped: str) -> None:
    assert build_user_filter("(uid={username})", raw) == escaped


def test_dns_compare_case_and_space_insensitively() -> None:
    assert normalize_dn("CN=Sales Team, OU=Groups,DC=corp,DC=example") == normalize_dn(
        "cn=sales team,ou=groups,dc=corp,dc=example"
    )


def test_role_mapping_uses_exact_dns_never_substrings() -> None:
    roles = RoleMap({Role.AUDITOR: ["cn=auditors,ou=groups,dc=example,dc=org"]})
    assert roles.roles_for(frozenset({normalize_dn("CN=Auditors,OU=Groups,DC=Example,DC=Org")})) == {
        Role.AUDITOR
    }
    for near_miss in (
        "cn=auditors-extra,ou=groups,dc=example,dc=org",
        "cn=auditors,ou=groups,dc=example,dc=org,dc=evil",
        "cn=x,cn=auditors,ou=groups,dc=example,dc=org",
    ):
        assert roles.roles_for(frozenset({normalize_dn(near_miss)})) == frozenset(), near_miss


def test_subtree_membership_is_per_rdn() -> None:
    base = normalize_dn("ou=people,dc=example,dc=org")
    assert is_within(normalize_dn("uid=a,ou=People,dc=example,dc=org"), base)
    assert not is_within(normalize_dn("uid=a,ou=people2,dc=example,dc=org"), base)
    # an escaped comma inside a value cannot fake a parent
    assert not is_within(normalize_dn("cn=x\\,ou\\=people,dc=example,dc=org"), base)


def test_deepest_subtree_names_the_organisation() -> None:
    organisations = OrganisationMap(
        {"ou=people,dc=example,dc=org": "Example", "ou=Finance,ou=people,dc=example,dc=org": "Finance Dept"},
        "departmentNumber",
    )
    ref = organisations.organisation_for("uid=a,ou=Finance,ou=people,dc=example,dc=org", "F-01")
    assert ref is not None and ref.name == "Finance Dept"
    ref = organisations.organisation_for("uid=b,ou=people,dc=example,dc=org", None)
    assert ref is not None and ref.name == "Example"
    ref = OrganisationMap({}, "departmentNumber").organisation_for("uid=c,dc=x", "Sales")
    assert ref is not None and (ref.code, ref.name) == ("Sales", "Sales")


def test_ad_account_state() -> None:
    ad = profile_for(DirectoryProfile.ACTIVE_DIRECTORY, None)
    assert ad.status({"useraccountcontrol": ["512"], "accountexpires": ["0"]}, NOW) is AccountStatus.ACTIVE
    assert ad.status({"useraccountcontrol": ["514"]}, NOW) is AccountStatus.DISABLED
    assert ad.status({"accountexpires": ["9223372036854775807"]}, NOW) is AccountStatus.ACTIVE
    past = 132223104000000000  # 2020-01-01
    assert filetime_to_datetime(past) == datetime(2020, 1, 1, tzinfo=UTC)
    assert (
        ad.status({"useraccountcontrol": ["512"], "accountexpires": [str(past)]}, NOW)
        is AccountStatus.EXPIRED
    )
    future = (int(datetime(2030, 1, 1, tzinfo=UTC).timestamp()) + 11644473600) * 10**7
    assert ad.status({"accountexpires": [str(future)]}, NOW) is AccountStatus.ACTIVE


def test_ppolicy_lock_and_operational_attribute_requested() -> None:
    openldap = profile_for(DirectoryProfile.OPENLDAP, None)
    assert {"pwdAccountLockedTime", "pwdPolicySubentry", "entryUUID"} <= set(openldap.person_attributes)
    assert openldap.status({"pwdaccountlockedtime": ["000001010000Z"]}, NOW) is AccountStatus.LOCKED
    assert openldap.status({}, NOW) is AccountStatus.ACTIVE


def test_ppolicy_lock_lasts_the_policys_duration() -> None:
    openldap = profile_for(DirectoryProfile.OPENLDAP, None)
    locked = {"pwdaccountlockedtime": ["20260601000000Z"]}  # NOW
    minute = timedelta(minutes=1)
    assert openldap.status(locked, NOW + 2 * minute, lockout_duration=minute) is AccountStatus.ACTIVE
    assert openldap.status(locked, NOW + minute / 2, lockout_duration=minute) is AccountStatus.LOCKED
    # 0: until an administrator unlocks; None: the policy could not be read - both fail closed
    assert openldap.status(locked, NOW + 9 * minute, lockout_duration=timedelta(0)) is AccountStatus.LOCKED
    assert openldap.status(locked, NOW + 9 * minute, lockout_duration=None) is AccountStatus.LOCKED
    forever = {"pwdaccountlockedtime": ["000001010000Z"]}
    assert openldap.status(forever, NOW, lockout_duration=minute) is AccountStatus.LOCKED
    garbled = {"pwdaccountlockedtime": ["yesterday"]}
    assert openldap.status(garbled, NOW, lockout_duration=minute) is AccountStatus.LOCKED
    assert openldap.needs_lockout_duration(locked) and not openldap.needs_lockout_duration(forever)


def test_ad_lockout() -> None:
    ad = profile_for(DirectoryProfile.ACTIVE_DIRECTORY, None)
    assert {"lockoutTime", "msDS-User-Account-Control-Computed", "objectGUID"} <= set(ad.person_attributes)
    assert ad.status({"lockouttime": ["0"]}, NOW) is AccountStatus.ACTIVE
    assert ad.status({"lockouttime": ["133500000000000000"]}, NOW) is AccountStatus.LOCKED
    # AD's computed flag (UF_LOCKOUT 0x10) decides when present: a lapsed lock leaves lockoutTime set
    lapsed = {"lockouttime": ["133500000000000000"], "msds-user-account-control-computed": ["0"]}
    assert ad.status(lapsed, NOW) is AccountStatus.ACTIVE
    assert ad.status({"msds-user-account-control-computed": ["16"]}, NOW) is AccountStatus.LOCKED


def test_id_filters_are_escaped_and_keep_the_person_filter() -> None:
    guid = "2329558f-9b04-52b9-bdd0-ec4c6a81812d"
    ad = profile_for(DirectoryProfile.ACTIVE_DIRECTORY, None)
    assert ad.id_filter("(&(objectClass=user)(sAMAccountName={username}))", guid) == (
        "(&(&(objectClass=user)(sAMAccountName=*))"
        "(objectGUID=\\8f\\55\\29\\23\\04\\9b\\b9\\52\\bd\\d0\\ec\\4c\\6a\\81\\81\\2d))"
    )
    openldap = profile_for(DirectoryProfile.OPENLDAP, None)
    assert openldap.id_filter("(uid={username})", guid.upper()) == f"(&(uid=*)(entryUUID={guid}))"
    with pytest.raises(ValueError):
        openldap.id_filter("(uid={username})", "*)(uid=*")


def test_a_malformed_dn_is_an_internal_error_not_client_input() -> None:
    with pytest.raises(MalformedDn) as caught:
        normalize_dn("uid=a,,=x")
    assert not isinstance(caught.value, ApplianceError) and "uid=a" not in str(caught.value)
    with pytest.raises(InvalidInput, match=r"directory\.role_groups: not a valid LDAP DN"):
        RoleMap({Role.AUDITOR: ["not a dn"]})


def test_group_filters_escape_member_values() -> None:
    openldap = profile_for(DirectoryProfile.OPENLDAP, None)
    group_filter = openldap.parent_group_filter(["uid=a*b,dc=x"], "a*b")
    assert "*" not in group_filter.replace("(objectClass=posixGroup)", "")
    assert "(memberUid=a\\2ab)" in group_filter
