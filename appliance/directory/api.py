"""The directory interface the rest of the appliance sees, and its value types.

No ldap3 type crosses this boundary: people come back as `DirectoryPerson`, every
failure as one of the errors in `directory.errors`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from appliance.config import Role


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
    """The one entry a login name resolved to, before the password is tried."""

    dn: str
    """Normalised (see `normalize_dn`), so every spelling of the name gives the same value."""
    directory_id: str


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


BeforeBind = Callable[[DirectoryAccount], None]
"""Called with the entry found for a login name, before its password is tried; raising
from it stops the attempt with no bind (the login domain counts failures per entry here)."""


class Directory(Protocol):
    def authenticate(
        self, username: str, password: str, before_bind: BeforeBind | None = None
    ) -> DirectoryPerson:
        """Search for the person with the service account, then bind as them.

        `before_bind` runs once exactly one entry matched, whatever its status.
        :raises AuthenticationFailed: with the true reason (for the log only).
        :raises DirectoryUnavailable: when no server answers (DirectoryTlsFailed: not over verified TLS).
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

    def health(self) -> DirectoryHealth: ...

    def check_ready(self) -> None:
        """Return when a server answers the service account; else raise DirectoryUnavailable."""
        ...

    def close(self) -> None: ...
