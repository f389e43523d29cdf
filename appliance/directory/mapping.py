"""Pure mapping from directory facts to the appliance's roles and organisations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from appliance.config import Role
from appliance.directory.api import OrganisationRef
from appliance.directory.dn import MalformedDn, is_within, normalize_dn
from appliance.errors import InvalidInput


def _configured_dn(key: str, dn: str) -> str:
    """A DN from the config, or an error naming the config key (shown to the operator only)."""
    try:
        return normalize_dn(dn)
    except MalformedDn as exc:
        raise InvalidInput(f"{key}: not a valid LDAP DN: {dn!r}") from exc


class RoleMap:
    """Directory group DNs -> roles, compared as exact normalised DNs."""

    def __init__(self, role_groups: Mapping[Role, Sequence[str]]) -> None:
        self._by_group: dict[str, set[Role]] = {}
        for role, groups in role_groups.items():
            for group in groups:
                self._by_group.setdefault(_configured_dn("directory.role_groups", group), set()).add(role)

    @property
    def groups(self) -> frozenset[str]:
        return frozenset(self._by_group)

    def roles_for(self, groups: frozenset[str]) -> frozenset[Role]:
        """`groups` must already be normalised (DirectoryPerson.groups are)."""
        roles: set[Role] = set()
        for group in groups:
            roles |= self._by_group.get(group, set())
        return frozenset(roles)


class OrganisationMap:
    """A person's organisation: the deepest configured subtree holding their entry,
    else the value of the configured attribute."""

    def __init__(self, subtrees: Mapping[str, str], attribute: str | None) -> None:
        normalised = [
            (_configured_dn("directory.organisation_subtrees", dn), name) for dn, name in subtrees.items()
        ]
        # deepest first, so a department wins over the company subtree around it
        self._subtrees = sorted(normalised, key=lambda item: item[0].count(","), reverse=True)
        self.attribute = attribute

    def organisation_for(self, dn: str, attribute_value: str | None) -> OrganisationRef | None:
        """:raises MalformedDn: when `dn` is not a valid DN."""
        normalised = normalize_dn(dn)
        for base, name in self._subtrees:
            if is_within(normalised, base):
                return OrganisationRef(code=base, name=name)
        if attribute_value:
            return OrganisationRef(code=attribute_value, name=attribute_value)
        return None
