"""Who applies a seal: people named per seal, or the members of directory groups.

An organisation admin names a seal's keepers (`set_seal_keepers`): people of the organisation
by login name, and directory groups by DN; a group's members are known from their last
sign-in or directory sync. A seal that names nobody is applied by the organisation's seal
keepers (the role), as before any were named. Who may apply which seal is decided in one
place, `access.kept_seals`; `keepers_of` lists the same people, to tell them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from appliance.auth.provisioning import MAX_GROUP_DN
from appliance.auth.records import ClientInfo, Principal
from appliance.db import transaction
from appliance.directory.dn import MalformedDn, normalize_dn
from appliance.errors import InvalidInput
from appliance.models import Seal, SealKeeper, User, UserGroup, UserRole
from appliance.permissions import Action, roles_for
from appliance.workflow.access import admins_seal, seal_colleague
from appliance.workflow.context import WorkflowContext
from appliance.workflow.store import log_user_action

MAX_KEEPERS = 20
"""People and groups together."""


@dataclass(frozen=True)
class KeepersView:
    usernames: tuple[str, ...]
    groups: tuple[str, ...]
    """Normalised DNs."""


def seal_keepers(session: Session, seal_id: int) -> KeepersView:
    rows = session.execute(
        select(User.username, SealKeeper.group_dn)
        .select_from(SealKeeper)
        .outerjoin(User, User.id == SealKeeper.user_id)
        .where(SealKeeper.seal_id == seal_id)
        .order_by(SealKeeper.id)
    ).all()
    return KeepersView(
        usernames=tuple(name for name, _ in rows if name is not None),
        groups=tuple(dn for _, dn in rows if dn is not None),
    )


def group_label(dn: str) -> str:
    """How a group is shown: its own name, the first RDN's value ("finance approvers")."""
    return dn.split(",", 1)[0].split("=", 1)[-1]


def group_members(session: Session, dn: str, organisation_id: int) -> list[User]:
    """The active people of the organisation in the directory group `dn` (at their last sign-in)."""
    return list(
        session.scalars(
            select(User)
            .join(UserGroup, UserGroup.user_id == User.id)
            .where(UserGroup.group_dn == dn, User.organisation_id == organisation_id, User.active.is_(True))
            .order_by(User.id)
        )
    )


def keepers_of(session: Session, seal: Seal) -> list[User]:
    """The active people of the seal's organisation who apply it (as `access.kept_seals`)."""
    named = session.scalars(select(SealKeeper).where(SealKeeper.seal_id == seal.id)).all()
    if named:
        groups = [k.group_dn for k in named if k.group_dn]
        chosen = or_(
            User.id.in_([k.user_id for k in named if k.user_id]),
            User.id.in_(select(UserGroup.user_id).where(UserGroup.group_dn.in_(groups))),
        )
    else:
        chosen = User.id.in_(select(UserRole.user_id).where(UserRole.role.in_(roles_for(Action.APPLY_SEALS))))
    return list(
        session.scalars(
            select(User)
            .where(chosen, User.organisation_id == seal.organisation_id, User.active.is_(True))
            .order_by(User.id)
        )
    )


def set_seal_keepers(
    ctx: WorkflowContext,
    principal: Principal,
    client: ClientInfo,
    seal_id: int,
    *,
    usernames: list[str],
    groups: list[str],
) -> KeepersView:
    """Replace who applies the seal (both empty: the organisation's seal keepers, by role).

    :raises NotFound: no seal of the admin's organisation with that id.
    :raises Forbidden: not the organisation's admin.
    :raises InvalidInput: too many, a name or group twice, someone who cannot act, or a
        malformed group DN.
    """
    now = ctx.clock.now()
    if len(usernames) + len(groups) > MAX_KEEPERS:
        raise InvalidInput(f"Name at most {MAX_KEEPERS} keepers and groups together.")
    dns = [group_dn(dn) for dn in groups]
    if len(set(usernames)) != len(usernames) or len(set(dns)) != len(dns):
        raise InvalidInput("Name each keeper and each group once.")
    with transaction(ctx.sessions) as session:
        admin, seal = admins_seal(session, principal, seal_id)
        refusal = "has not signed in here, or cannot apply seals: name someone who has."
        people = [seal_colleague(session, seal, name, refusal=refusal) for name in usernames]
        session.execute(delete(SealKeeper).where(SealKeeper.seal_id == seal.id))
        session.add_all(SealKeeper(seal_id=seal.id, user_id=person.id) for person in people)
        session.add_all(SealKeeper(seal_id=seal.id, group_dn=dn) for dn in dns)
        session.flush()
        view = seal_keepers(session, seal.id)
        details = {"keepers": ",".join(view.usernames), "groups": ";".join(view.groups)}
        log_user_action(session, "seal.keepers_set", admin, client, now, "seal", seal.id, details)
        return view


def group_dn(dn: str) -> str:
    """`dn` normalised as sign-in records people's groups; InvalidInput when it is none."""
    try:
        normalised = normalize_dn(dn)
    except MalformedDn:
        raise InvalidInput(
            f"{dn[:100]!r} is not a group's DN, e.g. cn=seal-keepers,ou=groups,dc=example,dc=com."
        ) from None
    if not normalised or len(normalised) > MAX_GROUP_DN:
        raise InvalidInput(f"A group's DN is 1 to {MAX_GROUP_DN} characters.")
    return normalised
