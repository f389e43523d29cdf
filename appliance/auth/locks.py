"""Sign-in locks an administrator can see and lift.

Lockout is protection, but it is also a weapon: guesses from a few addresses lock a person
out everywhere, and guesses from a shared VPN egress lock everyone behind it. So the locks
in force are listed for organisation and system administrators, who can lift one; the
person concerned hears of it, and the operation log records who lifted what.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.audit import AuditRecord, append_event
from appliance.auth.records import ClientInfo
from appliance.config import Role
from appliance.directory.dn import MalformedDn, normalize_dn
from appliance.errors import Forbidden, NotFound
from appliance.models import LoginThrottle, User
from appliance.notify import notify_user

LOCK_ADMINS = frozenset({Role.ORG_ADMIN, Role.SYSTEM_ADMIN})


@dataclass(frozen=True)
class SignInLock:
    key: str
    kind: str
    """address (one client address, all accounts), name (a login name as typed) or entry
    (a directory entry, every name of one person)."""
    subject: str
    address: str | None
    """For a lock of one account at one address: that address."""
    failures: int
    locked_until: datetime
    person: str | None
    """The display name of the person an entry lock belongs to, when they have signed in before."""


def check_lock_admin(user: User) -> None:
    if not user.role_set() & LOCK_ADMINS:
        raise Forbidden("Only organisation and system administrators manage sign-in locks.")


def list_locks(session: Session, now: datetime) -> list[SignInLock]:
    rows = list(
        session.execute(
            select(LoginThrottle)
            .where(LoginThrottle.locked_until.is_not(None), LoginThrottle.locked_until > now)
            .order_by(LoginThrottle.locked_until.desc(), LoginThrottle.key)
        ).scalars()
    )
    people = _people_by_entry(session) if any(r.key.startswith("entry:") for r in rows) else {}
    return [_describe(row, people) for row in rows]


def lift_lock(
    session: Session, key: str, actor: User, client: ClientInfo, now: datetime, *, mail: bool
) -> SignInLock:
    """Lift one lock in force (and forget its history, so the next one is not longer).

    :raises NotFound: when no lock with this key is in force.
    """
    row = session.execute(
        select(LoginThrottle).where(LoginThrottle.key == key).with_for_update()
    ).scalar_one_or_none()
    if row is None or row.locked_until is None or row.locked_until <= now:
        raise NotFound("There is no sign-in lock like that in force (it may have ended already).")
    people = _people_by_entry(session) if key.startswith("entry:") else {}
    lock = _describe(row, people)
    row.locked_until = None
    row.failures = 0
    row.lockouts = 0
    row.window_started_at = now
    append_event(
        session,
        AuditRecord(
            action="auth.lock_lifted",
            occurred_at=now,
            actor_user_id=actor.id,
            actor_name=actor.username,
            object_type="sign_in_lock",
            object_id=key[:100],
            client_address=client.address,
            user_agent=client.user_agent,
            details={"kind": lock.kind, "address": lock.address, "until": lock.locked_until.isoformat()},
        ),
    )
    person = people.get(lock.subject) if lock.kind == "entry" else None
    if person is not None:
        notify_user(session, person, "account_unlocked", {"admin": actor.display_name}, now=now, mail=mail)
    return lock


def _describe(row: LoginThrottle, people: dict[str, User]) -> SignInLock:
    assert row.locked_until is not None
    kind, _sep, rest = row.key.partition(":")
    subject, address = rest, None
    value, at, tail = rest.rpartition("@")
    if at and kind != "address" and _is_address(tail):
        subject, address = value, tail
    person = people.get(subject) if kind == "entry" else None
    return SignInLock(
        row.key,
        kind,
        subject,
        address,
        row.failures,
        row.locked_until,
        person.display_name if person else None,
    )


def _people_by_entry(session: Session) -> dict[str, User]:
    """Directory people by the normalised DN their entry locks are keyed on."""
    people: dict[str, User] = {}
    for user in session.execute(select(User).where(User.directory_dn.is_not(None))).scalars():
        assert user.directory_dn is not None
        try:
            people[normalize_dn(user.directory_dn)] = user
        except MalformedDn:
            continue  # stored before DN checks; such a row has no entry counters either
    return people


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
