"""The directory interface the rest of the appliance sees, and its value types.

No ldap3 type crosses this boundary: people come back as `DirectoryPerson`, every
failure as one of the errors in `directory.errors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from appliance.config import Role
from appliance.directory.errors import FailureReason
from appliance.errors import InvalidInput


def is_text(value: str) -> bool:
    """False when `value` holds a lone surrogate ("\\ud800", which JSON can carry): no
    character, so it cannot be encoded as UTF-8, stored, or sent to a directory."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


SEARCH_QUERY_LENGTH = (2, 100)
"""Characters a people search's text may have, after surrounding spaces are stripped."""
SEARCH_LIMIT = (1, 50)
"""How many people one search may ask for."""


def check_search(query: str, limit: int) -> str:
    """The text `Directory.search_people` searches for: `query` stripped.

    :raises InvalidInput: when the text is too short or too long, or holds what is not text
        (control characters, a lone surrogate), or `limit` is out of range.
    """
    text = query.strip()
    shortest, longest = SEARCH_QUERY_LENGTH
    if not shortest <= len(text) <= longest:
        raise InvalidInput(
            f"Type {shortest} to {longest} characters of a name, login name or e-mail to search for."
        )
    # control characters are in no name; NUL, escaped as it is, matches every entry in slapd
    if not is_text(text) or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InvalidInput("The search text holds what is not text: control characters or a lone surrogate.")
    fewest, most = SEARCH_LIMIT
    if not fewest <= limit <= most:
        raise InvalidInput(f"Ask for {fewest} to {most} people per search.")
    return text


def search_order(display_name: str, username: str) -> tuple[str, str]:
    """How `Directory.search_people` sorts: by display name, case-insensitively, then login name."""
    return display_name.casefold(), username.casefold()


class AccountStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    """AD userAccountControl ACCOUNTDISABLE."""
    EXPIRED = "expired"
    """AD accountExpires in the past."""
    LOCKED = "locked"
    """OpenLDAP ppolicy pwdAccountLockedTime (within pwdLockoutDuration, or for good), or
    AD lockoutTime non-zero (msDS-User-Account-Control-Computed UF_LOCKOUT when returned)."""


@dataclass(frozen=True)
class DirectoryAccount:
    """What a login name resolved to, before any password is tried (`Directory.find_account`).

    Hand it back to `verify_password` of the directory that returned it: an implementation
    may keep what it read about the entry in a subclass, for the bind and the person.
    """

    login_name: str
    """As typed."""
    dn: str | None
    """The entry's DN normalised (see `normalize_dn`), so every spelling and every second name
    (UPN, mail) of one person gives the same value; None when no single entry matched."""
    directory_id: str | None
    """The entry's immutable id; None when no single entry matched."""
    refusal: FailureReason | None
    """Why no password can sign this account in (invalid name, unknown, ambiguous, disabled,
    expired, locked); None for an active entry."""


@dataclass(frozen=True)
class OrganisationRef:
    code: str
    """Stable key: the normalised subtree DN, or the attribute value."""
    name: str


@dataclass(frozen=True)
class DirectoryPerson:
    dn: str
    directory_id: str
    """The entry's immutable id (OpenLDAP entryUUID, AD objectGUID) as a lower-case UUID string:
    unlike the login name and the DN, it is never reused for another person."""
    username: str
    """The directory's own login name (uid / sAMAccountName), whatever the person typed."""
    display_name: str
    email: str | None
    phone: str | None
    department: str | None
    organisation: OrganisationRef | None
    groups: frozenset[str]
    """Normalised full DNs of every group, nested ones included; compared exactly."""
    roles: frozenset[Role]
    status: AccountStatus


@dataclass(frozen=True)
class ServerHealth:
    url: str
    reachable: bool
    detail: str


@dataclass(frozen=True)
class DirectoryHealth:
    servers: tuple[ServerHealth, ...]

    @property
    def ok(self) -> bool:
        return any(s.reachable for s in self.servers)


class Directory(Protocol):
    """Sign-in is two steps, so the caller can count attempts per entry between them:
    `find_account` (search and account state, no bind), then `verify_password` (the bind)."""

    def find_account(self, username: str) -> DirectoryAccount:
        """The one entry this login name matches (searched with the service account) and its
        account state, whatever that is; an account with a `refusal` when there is no single
        entry or the name cannot be searched for. Never binds as the person.

        :raises DirectoryUnavailable: when no server answers (DirectoryTlsFailed: not over verified TLS).
        """
        ...

    def verify_password(self, account: DirectoryAccount, password: str) -> DirectoryPerson:
        """Bind as the account's entry with `password`, sent exactly as typed (UTF-8, no
        SASLprep): the directory alone decides which characters a password may hold. Groups and
        roles are resolved only after the bind succeeded.

        An account with a `refusal` costs one bind to a DN that cannot exist (none for an
        invalid login name), so a refusal takes as long as a wrong password.
        :raises AuthenticationFailed: EMPTY_PASSWORD for an empty, blank or NUL-holding password
            (never sent: an empty simple bind is an anonymous bind), else the account's refusal,
            else WRONG_PASSWORD.
        :raises InvalidInput: when the password is not text that can be sent (a lone surrogate).
        :raises DirectoryUnavailable: when no server answers.
        """
        ...

    def lookup(self, username: str) -> DirectoryPerson | None:
        """The person with this login name, whatever their status; None when absent."""
        ...

    def lookup_by_id(self, directory_id: str) -> DirectoryPerson | None:
        """The person with this immutable id (still matching the user filter), whatever
        their status; None when absent."""
        ...

    def group_members(self, group_dn: str) -> list[DirectoryPerson]:
        """People in the group, through nested groups too."""
        ...

    def search_people(self, query: str, *, limit: int = 20) -> list[DirectoryPerson]:
        """People whose name, login name or e-mail contains `query` (case-insensitive), enabled
        ones only, at most `limit`, sorted by display name (`search_order`).

        For picking a colleague who may never have signed in. Within the person filter and base
        DN; the directory's login names (uid; sAMAccountName and userPrincipalName), cn,
        displayName and mail are matched, the text taken literally (`*`, `(`, `\\` match
        themselves). Locked and expired people are found (a lock lapses, an account is
        renewed); disabled ones are not. A broad query reads a bounded number of entries, so
        it finds some of its matches, not all.
        :raises InvalidInput: see `check_search`.
        :raises DirectoryUnavailable: when no server answers.
        """
        ...

    def health(self) -> DirectoryHealth: ...

    def check_ready(self) -> None:
        """Return when a server answers the service account; else raise DirectoryUnavailable."""
        ...

    def close(self) -> None: ...
