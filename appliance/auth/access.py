"""Who may act now, and how the adapters see them."""

from __future__ import annotations

from appliance.auth.records import Principal
from appliance.models import User, UserSource


def principal_of(user: User) -> Principal:
    return Principal(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        roles=user.role_set(),
        local=user.source is UserSource.LOCAL,
    )


def may_act(user: User, local_admin_enabled: bool) -> bool:
    """False for a deactivated, frozen or cancelled account, and for the break-glass
    administrator while auth.local_admin_enabled is false (their open sessions and tokens stop too)."""
    if not user.active or user.anonymised_at is not None or user.frozen_at is not None:
        return False
    return user.source is not UserSource.LOCAL or local_admin_enabled
