"""User rows refreshed from the directory: on each login, on re-checks and by directory sync.

A directory person's row is keyed on the directory's immutable id (`users.directory_uuid`:
entryUUID / objectGUID), never on the login name or the DN, which directories reuse: a new
`uid=alice` is a new person even where the departed alice's name and DN were.

Login names stay unique in the appliance (the operation log, the UI and the break-glass
account name people by them). When a new person takes a name or DN that an older row still
holds, that older row is never re-pointed: it keeps its records (contracts, certificate,
evidence), is deactivated with its sessions and tokens ended, its DN is cleared and its name
gets the suffix `#<row id>`, which frees the name for the new person's own row. Should the
old person come back under another name, their row is found again by its immutable id.

No password is ever stored for a directory person. The caller owns the transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from appliance.audit import AuditRecord, append_event
from appliance.directory import DirectoryPerson, OrganisationRef
from appliance.errors import Conflict
from appliance.models import ApiToken, Organisation, Role, User, UserGroup, UserRole, UserSession, UserSource

USERNAME_LENGTH = 200
"""users.username's length."""
MAX_GROUP_DN = 500
"""user_groups.group_dn's length."""


def find_organisation(session: Session, ref: OrganisationRef | None, now: datetime) -> Organisation | None:
    if ref is None:
        return None
    organisation = session.execute(
        select(Organisation).where(Organisation.code == ref.code)
    ).scalar_one_or_none()
    if organisation is None:
        organisation = Organisation(name=ref.name[:200], code=ref.code[:100], created_at=now)
        session.add(organisation)
        session.flush()
    elif organisation.name != ref.name[:200]:
        organisation.name = ref.name[:200]
    return organisation


def find_user(session: Session, person: DirectoryPerson) -> User | None:
    """The row of this directory person, by immutable id only."""
    return session.execute(
        select(User).where(User.directory_uuid == person.directory_id)
    ).scalar_one_or_none()


def local_name_taken(session: Session, username: str) -> bool:
    """True when the local (break-glass) account has this login name."""
    found = session.execute(
        select(User.id).where(User.username == username, User.source == UserSource.LOCAL)
    ).first()
    return found is not None


def upsert_user(session: Session, person: DirectoryPerson, now: datetime) -> User:
    """Create or refresh the row for `person` (name, e-mail, phone, department, roles,
    groups).

    :raises Conflict: when a local account already uses the person's login name.
    """
    user = find_user(session, person)
    _release_name_and_dn(session, person, user, now)
    if user is None:
        user = User(
            username=person.username,
            source=UserSource.DIRECTORY,
            directory_uuid=person.directory_id,
            display_name=person.display_name[:200],
            created_at=now,
            updated_at=now,
            active=True,
        )
        session.add(user)
    user.username = person.username
    user.directory_dn = person.dn
    user.display_name = person.display_name[:200]
    user.email = person.email
    user.phone = person.phone
    user.department = person.department
    organisation = find_organisation(session, person.organisation, now)
    user.organisation_id = organisation.id if organisation else None
    user.updated_at = now
    user.left_directory_at = None
    # change only the difference: deleting and re-adding a row with the same key in one
    # flush would collide on the primary key
    before = {r.role for r in user.roles}
    for link in [r for r in user.roles if r.role not in person.roles]:
        user.roles.remove(link)
    user.roles.extend(UserRole(role=role) for role in sorted(person.roles - before))
    session.flush()
    _keep_groups(session, user, person.groups)
    if before != person.roles:
        _log_roles(session, user, before, now)
    return user


def _keep_groups(session: Session, user: User, groups: frozenset[str]) -> None:
    """Remember the person's directory groups (a seal's keepers may be named by group)."""
    had = set(session.scalars(select(UserGroup.group_dn).where(UserGroup.user_id == user.id)))
    gone = had - groups
    if gone:
        session.execute(delete(UserGroup).where(UserGroup.user_id == user.id, UserGroup.group_dn.in_(gone)))
    # a longer DN cannot be named as a seal's keeper group either
    kept = {dn for dn in groups if len(dn) <= MAX_GROUP_DN}
    session.add_all(UserGroup(user_id=user.id, group_dn=dn) for dn in sorted(kept - had))
    session.flush()


def _log_roles(session: Session, user: User, before: set[Role], now: datetime) -> None:
    """Roles come from directory groups: a change there is a change of rights, so it is logged."""
    after = user.role_set()
    append_event(
        session,
        AuditRecord(
            action="user.roles_changed",
            occurred_at=now,
            actor_name="directory",
            object_type="user",
            object_id=str(user.id),
            details={
                "username": user.username,
                "added": sorted(r.value for r in after - before),
                "removed": sorted(r.value for r in before - after),
            },
        ),
    )


def _release_name_and_dn(
    session: Session, person: DirectoryPerson, owner: User | None, now: datetime
) -> None:
    """Take the login name and DN away from rows of other people (see the module docstring)."""
    query = select(User).where(or_(User.username == person.username, User.directory_dn == person.dn))
    if owner is not None:
        query = query.where(User.id != owner.id)
    others = list(session.execute(query).scalars())
    if not others:
        return
    for other in others:
        if other.source is not UserSource.DIRECTORY:
            raise Conflict(f"the local account {person.username!r} has the same name as a directory person")
    for other in others:
        old_name, old_dn = other.username, other.directory_dn
        if other.directory_dn == person.dn:
            other.directory_dn = None
        if other.username == person.username:
            other.username = _retired_name(session, other)
        if other.active or other.left_directory_at is None:
            other.active = False
            other.left_directory_at = other.left_directory_at or now
            end_access(session, other.id, now)
        other.updated_at = now
        append_event(
            session,
            AuditRecord(
                action="user.name_released",
                occurred_at=now,
                actor_name="directory",
                object_type="user",
                object_id=str(other.id),
                details={
                    "username": old_name,
                    "renamed_to": other.username,
                    "dn": old_dn,
                    "reason": "another directory entry (different immutable id) has this name or DN",
                },
            ),
        )
    # the renames must reach the database before a new row takes the name (unique constraint)
    session.flush()


def _retired_name(session: Session, user: User) -> str:
    for attempt in range(100):
        suffix = f"#{user.id}" + (f".{attempt}" if attempt else "")
        candidate = user.username[: USERNAME_LENGTH - len(suffix)] + suffix
        taken = session.execute(select(User.id).where(User.username == candidate)).first()
        if taken is None:
            return candidate
    raise Conflict(f"no free name to retire user {user.id}")


def end_access(session: Session, user_id: int, now: datetime) -> None:
    """Revoke every open session and API token of the user (deactivation, leaving)."""
    session.execute(
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
