"""What differs between Active Directory and OpenLDAP: attributes, account state, group shapes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ldap3.utils.conv import escape_filter_chars

from appliance.config import DirectoryProfile
from appliance.directory.api import AccountStatus

Attributes = Mapping[str, Sequence[str]]
"""Attribute values of one entry, keyed by lower-cased attribute name."""

# userAccountControl flag ACCOUNTDISABLE (MS-ADTS 2.2.16)
UAC_ACCOUNTDISABLE = 0x2
# msDS-User-Account-Control-Computed flag UF_LOCKOUT: AD computes it with the domain's
# lockout duration applied, unlike lockoutTime, which can stay set after a lock has lapsed
UF_LOCKOUT = 0x10
# pwdAccountLockedTime value meaning "locked until an administrator unlocks" (ppolicy)
PPOLICY_PERMANENT_LOCK = "000001010000Z"
# accountExpires values meaning "never" (MS-ADA1 Account-Expires)
AD_NEVER_EXPIRES = (0, 0x7FFFFFFFFFFFFFFF)
FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


def first(attrs: Attributes, *names: str) -> str | None:
    for name in names:
        values = attrs.get(name.lower())
        if values and values[0].strip():
            return values[0].strip()
    return None


def filetime_to_datetime(value: int) -> datetime:
    return FILETIME_EPOCH + timedelta(microseconds=value // 10)


def parse_generalized_time(value: str) -> datetime | None:
    """`YYYYmmddHHMMSS[.fraction]Z` as written by slapd; None for anything else."""
    digits = value[:14]
    if len(value) < 15 or not digits.isdigit() or not value.endswith("Z"):
        return None
    try:
        return datetime.strptime(digits, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def build_user_filter(template: str, username: str) -> str:
    """The configured person filter with the login name escaped (RFC 4515), so `*`, `(`,
    `)`, `\\` and NUL in a name are matched literally and cannot change the filter."""
    return template.replace("{username}", escape_filter_chars(username))


def any_person_filter(template: str) -> str:
    """The configured person filter matching every login name: its scope without a name."""
    return template.replace("{username}", "*")


def _any_of(attribute: str, values: Iterable[str]) -> list[str]:
    return [f"({attribute}={escape_filter_chars(v)})" for v in values]


@dataclass(frozen=True)
class Profile:
    kind: DirectoryProfile
    username_attribute: str
    id_attribute: str
    """Operational attribute with the entry's immutable id: returned only when asked for by name."""
    person_attributes: tuple[str, ...]
    search_attributes: tuple[str, ...]
    """What a people search matches: the login names, the names shown and the e-mail."""

    def status(
        self, attrs: Attributes, now: datetime, lockout_duration: timedelta | None = None
    ) -> AccountStatus:
        """`lockout_duration`: the ppolicy pwdLockoutDuration that applies to the entry
        (zero: until an administrator unlocks), None when it could not be read."""
        if self.kind is DirectoryProfile.ACTIVE_DIRECTORY:
            return _ad_status(attrs, now)
        return _openldap_status(attrs, now, lockout_duration)

    def directory_id(self, attrs: Attributes) -> str | None:
        """The immutable id as a lower-case UUID string (the LDAP code decodes objectGUID)."""
        value = first(attrs, self.id_attribute)
        try:
            return str(uuid.UUID(value)) if value else None
        except ValueError:
            return None

    def id_filter(self, user_filter: str, directory_id: str) -> str:
        """Filter for the entry with this immutable id that still matches the person filter
        (any login name), so someone moved out of the filter's scope counts as gone.

        :raises ValueError: when `directory_id` is not a UUID.
        """
        value = uuid.UUID(directory_id)
        if self.kind is DirectoryProfile.ACTIVE_DIRECTORY:
            # objectGUID is binary, compared byte by byte in AD's (little-endian) order
            escaped = "".join(f"\\{byte:02x}" for byte in value.bytes_le)
        else:
            escaped = escape_filter_chars(str(value))
        return f"(&{any_person_filter(user_filter)}({self.id_attribute}={escaped}))"

    def search_filter(self, user_filter: str, text: str) -> str:
        """Filter for people of the person filter with `text` in any of `search_attributes`
        (escaped, RFC 4515, so it is matched literally), disabled AD accounts left out by the
        server."""
        value = escape_filter_chars(text)
        terms = "".join(f"({name}=*{value}*)" for name in self.search_attributes)
        enabled = ""
        if self.kind is DirectoryProfile.ACTIVE_DIRECTORY:
            # LDAP_MATCHING_RULE_BIT_AND: no ACCOUNTDISABLE bit (slapd knows the rule too)
            enabled = f"(!(userAccountControl:1.2.840.113556.1.4.803:={UAC_ACCOUNTDISABLE}))"
        return f"(&{any_person_filter(user_filter)}{enabled}(|{terms}))"

    def needs_lockout_duration(self, attrs: Attributes) -> bool:
        """True when the entry's ppolicy lock may have lapsed, which only its policy can tell."""
        locked = first(attrs, "pwdAccountLockedTime")
        return (
            self.kind is DirectoryProfile.OPENLDAP and locked is not None and locked != PPOLICY_PERMANENT_LOCK
        )

    def direct_groups(self, attrs: Attributes) -> list[str]:
        """Groups named on the person's own entry (AD's memberOf); OpenLDAP names none."""
        if self.kind is DirectoryProfile.ACTIVE_DIRECTORY:
            return list(attrs.get("memberof", ()))
        return []

    def parent_group_filter(self, member_dns: Sequence[str], username: str | None) -> str:
        """Filter for groups that directly contain any of `member_dns` (or the posix `username`)."""
        if self.kind is DirectoryProfile.ACTIVE_DIRECTORY:
            return f"(&(objectClass=group)(|{''.join(_any_of('member', member_dns))}))"
        terms = _any_of("member", member_dns) + _any_of("uniqueMember", member_dns)
        if username is not None:
            terms.append(f"(&(objectClass=posixGroup)(memberUid={escape_filter_chars(username)}))")
        return f"(|{''.join(terms)})"

    @property
    def group_member_attributes(self) -> tuple[str, ...]:
        if self.kind is DirectoryProfile.ACTIVE_DIRECTORY:
            return ("objectClass", "member")
        return ("objectClass", "member", "uniqueMember", "memberUid")


def _ad_status(attrs: Attributes, now: datetime) -> AccountStatus:
    uac = first(attrs, "userAccountControl")
    if uac is not None and uac.lstrip("-").isdigit() and int(uac) & UAC_ACCOUNTDISABLE:
        return AccountStatus.DISABLED
    expires = first(attrs, "accountExpires")
    if expires is not None and expires.lstrip("-").isdigit():
        value = int(expires)
        if value not in AD_NEVER_EXPIRES and filetime_to_datetime(value) <= now:
            return AccountStatus.EXPIRED
    computed = first(attrs, "msDS-User-Account-Control-Computed")
    if computed is not None and computed.lstrip("-").isdigit():
        return AccountStatus.LOCKED if int(computed) & UF_LOCKOUT else AccountStatus.ACTIVE
    # Without the computed flag, a non-zero lockoutTime counts as locked. AD may leave it set
    # after the domain's lockout duration has passed (until the next logon), so this errs
    # towards refusing; AD servers return the computed flag, which then decides.
    lockout = first(attrs, "lockoutTime")
    if lockout is not None and lockout.lstrip("-").isdigit() and int(lockout) != 0:
        return AccountStatus.LOCKED
    return AccountStatus.ACTIVE


def _openldap_status(attrs: Attributes, now: datetime, lockout_duration: timedelta | None) -> AccountStatus:
    # ppolicy sets pwdAccountLockedTime on lockout. "000001010000Z" means until an
    # administrator unlocks; any other value means until pwdLockoutDuration has passed
    # (a duration of 0 again means until unlocked). The overlay refuses locked binds itself;
    # we refuse them before binding, so a lapsed lock must not be refused either.
    locked = first(attrs, "pwdAccountLockedTime")
    if locked is None:
        return AccountStatus.ACTIVE
    if locked == PPOLICY_PERMANENT_LOCK or not lockout_duration:
        # None: the entry's policy could not be read (no pwdPolicySubentry on the entry, and
        # slapd's ppolicy_default is invisible to clients), so we cannot tell when the lock
        # ends: treat it as locked, failing closed.
        return AccountStatus.LOCKED
    since = parse_generalized_time(locked)
    if since is None or now < since + lockout_duration:
        return AccountStatus.LOCKED
    return AccountStatus.ACTIVE


_COMMON = ("cn", "displayName", "mail", "telephoneNumber", "mobile")


def profile_for(kind: DirectoryProfile, organisation_attribute: str | None) -> Profile:
    extra = (organisation_attribute,) if organisation_attribute else ()
    if kind is DirectoryProfile.ACTIVE_DIRECTORY:
        attributes = (
            *_COMMON,
            "sAMAccountName",
            "userPrincipalName",
            "department",
            "memberOf",
            "userAccountControl",
            "accountExpires",
            "lockoutTime",
            "msDS-User-Account-Control-Computed",
            "objectGUID",
            *extra,
        )
        return Profile(
            kind,
            "sAMAccountName",
            "objectGUID",
            tuple(dict.fromkeys(attributes)),
            # userPrincipalName: the second login name, and the e-mail shown when mail is empty
            search_attributes=("sAMAccountName", "userPrincipalName", "cn", "displayName", "mail"),
        )
    # entryUUID, pwdAccountLockedTime and pwdPolicySubentry are operational: returned only
    # when asked for by name
    attributes = (
        *_COMMON,
        "uid",
        "departmentNumber",
        "ou",
        "entryUUID",
        "pwdAccountLockedTime",
        "pwdPolicySubentry",
        *extra,
    )
    return Profile(
        kind,
        "uid",
        "entryUUID",
        tuple(dict.fromkeys(attributes)),
        search_attributes=("uid", "cn", "displayName", "mail"),
    )
