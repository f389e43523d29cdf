"""Who may do what: one table of role x action x scope.

Roles come from directory groups (appliance.config.Role). The table names what each role adds
to what every signed-in person may do anyway: start contracts (from their organisation's
templates too), save their drafts as templates, retire the templates they saved, sign or
reject their own parties, decide the approvals named to them, and manage their own account.
Those rest on being the person named (the initiator, the party's signer, the approver), not
on a role.

A scope says how far an action reaches: the person's own organisation, or the whole
appliance. The modules that do the actions ask `scope_of` (or `require`), so changing a role's
reach here changes it everywhere, and tests/workflow/test_permissions.py proves every cell.
"""

from __future__ import annotations

from enum import StrEnum

from appliance.config import Role
from appliance.errors import Forbidden


class Action(StrEnum):
    READ_CONTRACTS = "read_contracts"
    """Read contracts one is no party to (never sign or change them)."""
    END_CONTRACTS = "end_contracts"
    """Terminate completed contracts one did not initiate."""
    APPLY_SEALS = "apply_seals"
    """Apply the organisation's seals where a contract asks for them."""
    MANAGE_SEALS = "manage_seals"
    """Create seals, their certificates and approvers; disable and retire them."""
    READ_SEAL_USAGE = "read_seal_usage"
    MANAGE_TEMPLATES = "manage_templates"
    """Retire any template of the organisation (anyone retires those they saved)."""
    READ_ARCHIVE = "read_archive"
    """List, open and download archived contracts."""
    READ_OPERATION_LOG = "read_operation_log"
    """Browse and export the operation log."""
    ANSWER_DATA_REQUESTS = "answer_data_requests"
    LIFT_FREEZES = "lift_freezes"
    LIFT_SIGN_IN_LOCKS = "lift_sign_in_locks"
    SET_UP_MOBILE_ACCESS = "set_up_mobile_access"
    """See what the mobile app is told, and who collected their VPN configuration."""
    MANAGE_WEBHOOKS = "manage_webhooks"
    """Register the integrations' webhook endpoints, read their delivery logs, redeliver."""


class Scope(StrEnum):
    ORGANISATION = "organisation"
    APPLIANCE = "appliance"


ORG, ALL = Scope.ORGANISATION, Scope.APPLIANCE
PERMISSIONS: dict[Role, dict[Action, Scope]] = {
    Role.EMPLOYEE: {},
    Role.INITIATOR: {},
    Role.APPROVER: {},
    Role.SEAL_KEEPER: {Action.APPLY_SEALS: ORG},
    Role.ORG_ADMIN: {
        Action.READ_CONTRACTS: ORG,
        Action.END_CONTRACTS: ORG,
        Action.MANAGE_SEALS: ORG,
        Action.READ_SEAL_USAGE: ORG,
        Action.MANAGE_TEMPLATES: ORG,
        Action.LIFT_FREEZES: ORG,
        Action.LIFT_SIGN_IN_LOCKS: ORG,
    },
    Role.ARCHIVE_ADMIN: {Action.READ_ARCHIVE: ALL},
    Role.AUDITOR: {
        Action.READ_CONTRACTS: ORG,
        Action.READ_SEAL_USAGE: ORG,
        Action.READ_OPERATION_LOG: ALL,
    },
    Role.SYSTEM_ADMIN: {
        Action.READ_OPERATION_LOG: ALL,
        Action.ANSWER_DATA_REQUESTS: ALL,
        Action.LIFT_FREEZES: ALL,
        Action.LIFT_SIGN_IN_LOCKS: ALL,
        Action.SET_UP_MOBILE_ACCESS: ALL,
        Action.MANAGE_WEBHOOKS: ALL,
    },
}
"""Every role, even one that adds nothing (the directory still maps it)."""


def scope_of(roles: frozenset[Role], action: Action) -> Scope | None:
    """How far `action` reaches for someone with `roles`: the widest scope, or None."""
    scopes = {PERMISSIONS[role].get(action) for role in roles}
    if ALL in scopes:
        return ALL
    return ORG if ORG in scopes else None


def roles_for(action: Action) -> frozenset[Role]:
    """The roles that may do `action` at all (for showing its navigation link)."""
    return frozenset(role for role, actions in PERMISSIONS.items() if action in actions)


def require(roles: frozenset[Role], action: Action, refusal: str) -> Scope:
    """The scope of `action` for `roles`.

    :raises Forbidden: with `refusal`, when none of the roles may do it.
    """
    scope = scope_of(roles, action)
    if scope is None:
        raise Forbidden(refusal)
    return scope
