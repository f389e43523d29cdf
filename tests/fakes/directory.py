"""An in-memory `Directory`; stands in for `LdapDirectory` over slapd.

People, nested groups, account states (disabled, expired, locked), wrong passwords, people
searches and an outage (`available = False`), with the same refusals, reasons, bind costs and
search rules as the LDAP implementation. tests/behaviour/test_directory.py runs the same test
bodies against both.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from appliance.config import Role
from appliance.directory import (
    AccountStatus,
    AuthenticationFailed,
    DirectoryAccount,
    DirectoryHealth,
    DirectoryPerson,
    DirectoryUnavailable,
    FailureReason,
    OrganisationRef,
    ServerHealth,
    normalize_dn,
)
from appliance.directory.api import check_search, is_text, search_order
from appliance.directory.mapping import RoleMap
from appliance.errors import InvalidInput

MAX_USERNAME_LENGTH = 256
"""As the LDAP implementation: longer names are refused without a search."""
DECOY_DN = "cn=appliance-no-such-user"
"""What `binds` records for the bind an account that cannot sign in costs."""
UNSENDABLE_PASSWORD = "The password holds characters that are not valid text (a lone surrogate)."


@dataclass(frozen=True)
class FakePerson:
    dn: str
    login_names: tuple[str, ...]
    """Every name the person filter matches (uid; sAMAccountName and UPN)."""
    password: str
    display_name: str
    username: str = ""
    """The directory's own login name; the first of `login_names` when empty."""
    cn: str | None = None
    """The entry's cn, searched too, when it is not the display name."""
    email: str | None = None
    phone: str | None = None
    department: str | None = None
    organisation: OrganisationRef | None = None
    status: AccountStatus = AccountStatus.ACTIVE
    directory_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True)
class FakeGroup:
    dn: str
    members: tuple[str, ...]
    """DNs of people and of groups (nesting; cycles allowed)."""


def _fold(name: str) -> str:
    """How the directory matches login names: compatibility forms, case and spacing ignored."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


class FakeDirectory:
    """`Directory` over `people` and `groups`; `role_groups` maps groups to roles as the config does.

    `binds` lists the DN of every bind a person's password was tried with (`DECOY_DN` for
    the one an account that cannot sign in costs), so tests can see what reached it.
    """

    def __init__(
        self,
        people: Iterable[FakePerson],
        groups: Iterable[FakeGroup] = (),
        role_groups: Mapping[Role, Sequence[str]] | None = None,
    ) -> None:
        self._people = {normalize_dn(p.dn): p for p in people}
        self._groups = {normalize_dn(g.dn): g for g in groups}
        self._roles = RoleMap(role_groups or {})
        self.available = True
        self.binds: list[str] = []

    # -- the Directory interface ---------------------------------------------------

    def find_account(self, username: str) -> DirectoryAccount:
        if not self._acceptable(username):
            return DirectoryAccount(username, None, None, FailureReason.INVALID_USERNAME)
        self._answer()
        matches = self._matching(username)
        if len(matches) != 1:
            reason = FailureReason.UNKNOWN_USER if not matches else FailureReason.AMBIGUOUS_USER
            return DirectoryAccount(username, None, None, reason)
        person = matches[0]
        refusal = None if person.status is AccountStatus.ACTIVE else FailureReason(person.status.value)
        return DirectoryAccount(username, normalize_dn(person.dn), person.directory_id, refusal)

    def verify_password(self, account: DirectoryAccount, password: str) -> DirectoryPerson:
        if not password or not password.strip() or "\x00" in password:
            raise AuthenticationFailed(FailureReason.EMPTY_PASSWORD)
        if not is_text(password):
            raise InvalidInput(UNSENDABLE_PASSWORD)
        if account.refusal is not None:
            if account.refusal is not FailureReason.INVALID_USERNAME and self.available:
                self.binds.append(DECOY_DN)  # like the LDAP decoy, it never turns into an outage
            raise AuthenticationFailed(account.refusal)
        person = self._people.get(account.dn or "")
        if person is None:
            raise TypeError("verify_password takes an account found by this directory's find_account")
        self._bind(account.dn or "")
        if password != person.password:  # compared as sent: no folding, no normalising
            raise AuthenticationFailed(FailureReason.WRONG_PASSWORD)
        return self._person(person, account.login_name)

    def lookup(self, username: str) -> DirectoryPerson | None:
        if not self._acceptable(username):
            return None
        self._answer()
        matches = self._matching(username)
        return self._person(matches[0], username) if len(matches) == 1 else None

    def lookup_by_id(self, directory_id: str) -> DirectoryPerson | None:
        try:
            wanted = str(uuid.UUID(directory_id))
        except ValueError:
            return None
        self._answer()
        found = [p for p in self._people.values() if p.directory_id == wanted]
        return self._person(found[0], "") if len(found) == 1 else None

    def group_members(self, group_dn: str) -> list[DirectoryPerson]:
        self._answer()
        people: dict[str, DirectoryPerson] = {}
        seen: set[str] = set()
        frontier = [normalize_dn(group_dn)]
        while frontier:
            dn = frontier.pop()
            if dn in seen:
                continue
            seen.add(dn)
            if dn in self._people:
                person = self._people[dn]
                people.setdefault(dn, self._person(person, person.login_names[0]))
            elif dn in self._groups:
                frontier.extend(normalize_dn(member) for member in self._groups[dn].members)
        return sorted(people.values(), key=lambda p: p.username)

    def search_people(self, query: str, *, limit: int = 20) -> list[DirectoryPerson]:
        text = _fold(check_search(query, limit))
        self._answer()
        found = [
            p
            for p in self._people.values()
            if p.status is not AccountStatus.DISABLED
            and any(
                text in _fold(value) for value in (*p.login_names, p.display_name, p.cn or "", p.email or "")
            )
        ]
        found.sort(key=lambda p: search_order(p.display_name, self._username(p)))
        return [self._person(p, "") for p in found[:limit]]

    def add_people(self, people: Iterable[FakePerson]) -> None:
        """People who join after the directory was made, as an administrator's ldapadd does."""
        self._people.update((normalize_dn(p.dn), p) for p in people)

    def health(self) -> DirectoryHealth:
        detail = "ok" if self.available else "unreachable"
        return DirectoryHealth((ServerHealth("fake", self.available, detail),))

    def check_ready(self) -> None:
        self._answer()

    def close(self) -> None:
        """Nothing to close."""

    # -- helpers ---------------------------------------------------------------------

    def _answer(self) -> None:
        if not self.available:
            raise DirectoryUnavailable()

    def _bind(self, dn: str) -> None:
        self._answer()
        self.binds.append(dn)

    @staticmethod
    def _acceptable(username: str) -> bool:
        return (
            bool(username.strip())
            and len(username) <= MAX_USERNAME_LENGTH
            and not any(ord(c) < 32 for c in username)
            and is_text(username)
        )

    def _matching(self, username: str) -> list[FakePerson]:
        folded = _fold(username)
        return [p for p in self._people.values() if folded in {_fold(n) for n in p.login_names}]

    @staticmethod
    def _username(person: FakePerson) -> str:
        return person.username or person.login_names[0]

    def _groups_of(self, dn: str) -> frozenset[str]:
        found: set[str] = set()
        frontier = {normalize_dn(dn)}
        while frontier:
            parents = {
                group_dn
                for group_dn, group in self._groups.items()
                if frontier & {normalize_dn(m) for m in group.members}
            }
            frontier = parents - found
            found |= parents
        return frozenset(found)

    def _person(self, person: FakePerson, typed_username: str) -> DirectoryPerson:
        username = self._username(person) or typed_username
        groups = self._groups_of(person.dn)
        return DirectoryPerson(
            dn=person.dn,
            directory_id=person.directory_id,
            username=username,
            display_name=person.display_name,
            email=person.email,
            phone=person.phone,
            department=person.department,
            organisation=person.organisation,
            groups=groups,
            roles=self._roles.roles_for(groups),
            status=person.status,
        )
