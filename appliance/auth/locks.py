"""Sign-in locks an administrator can see and lift.

Lockout is protection, but it is also a weapon: guesses from a few addresses lock a person
out everywhere, and guesses from a shared VPN egress lock everyone behind it. So the locks
in force are listed for administrators, who can lift one; the person concerned is told, and
the operation log records who lifted what.

Who sees what: a system administrator every lock; an organisation administrator the locks
of people of their own organisation who are not administrators themselves (lifting an
administrator's lock hands a guesser a fresh budget on a powerful account, and an address
lock concerns everyone behind that address).

One failed attempt fills several counters at once (the typed name and the directory entry,
each per address and account-wide), so they lock together: lifting a person's lock lifts
every lock of that person at the same scope (that address, or everywhere), or the person
would be told they can sign in while a twin lock still stops them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.audit import AuditRecord, append_event
from appliance.auth.records import ClientInfo
from appliance.auth.throttle import normalise_login_name
from appliance.config import Role
from appliance.directory.dn import MalformedDn, normalize_dn
from appliance.errors import NotFound
from appliance.models import LoginThrottle, User, UserSource
from appliance.notify import notify_user
from appliance.permissions import Action, Scope, require, roles_for, scope_of

LOCK_ADMINS = roles_for(Action.LIFT_SIGN_IN_LOCKS)
PRIVILEGED = frozenset({Role.ORG_ADMIN, Role.SYSTEM_ADMIN, Role.ARCHIVE_ADMIN, Role.AUDITOR})
NOT_A_LOCK_ADMIN = "Only organisation and system administrators manage sign-in locks."
NO_SUCH_LOCK = "There is no sign-in lock like that in force (it may have ended already)."


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
    """The display name of the person the lock belongs to, when they have signed in before."""


@dataclass(frozen=True)
class _Row:
    row: LoginThrottle
    kind: str
    subject: str
    address: str | None
    person: User | None


def check_lock_admin(user: User) -> None:
    require(user.role_set(), Action.LIFT_SIGN_IN_LOCKS, NOT_A_LOCK_ADMIN)


def list_locks(session: Session, admin: User, now: datetime) -> list[SignInLock]:
    """The locks in force that `admin` may lift, newest end first."""
    check_lock_admin(admin)
    return [_public(lock) for lock in _locks_in_force(session, now) if _may_lift(admin, lock)]


def lift_lock(
    session: Session, key: str, admin: User, client: ClientInfo, now: datetime, *, mail: bool
) -> SignInLock:
    """Lift the lock `key` and its twins (the same person at the same scope), forgetting their
    history so the next lock is not longer; the person is told.

    :raises Forbidden: `admin` is no lock administrator.
    :raises NotFound: no lock with this key is in force that `admin` may lift (the same
        answer for both, so an organisation administrator learns nothing of other locks).
    """
    check_lock_admin(admin)
    locks = _locks_in_force(session, now, for_update=True)
    chosen = next((lock for lock in locks if lock.row.key == key), None)
    if chosen is None or not _may_lift(admin, chosen):
        raise NotFound(NO_SUCH_LOCK)
    result = _public(chosen)
    lifted = [lock for lock in locks if _same_lock(lock, chosen)]
    for lock in lifted:
        lock.row.locked_until = None
        lock.row.failures = 0
        lock.row.lockouts = 0
        lock.row.window_started_at = now
    if chosen.person is not None:
        notice = {"admin": admin.display_name}
        notify_user(session, chosen.person, "account_unlocked", notice, now=now, mail=mail)
    append_event(
        session,
        AuditRecord(
            action="auth.lock_lifted",
            occurred_at=now,
            actor_user_id=admin.id,
            actor_name=admin.username,
            object_type="sign_in_lock",
            object_id=key[:100],
            client_address=client.address,
            user_agent=client.user_agent,
            details={
                "kind": chosen.kind,
                "address": chosen.address,
                "person_id": chosen.person.id if chosen.person else None,
                "keys_lifted": len(lifted),
            },
        ),
    )
    return result


def _locks_in_force(session: Session, now: datetime, *, for_update: bool = False) -> list[_Row]:
    query = (
        select(LoginThrottle)
        .where(LoginThrottle.locked_until.is_not(None), LoginThrottle.locked_until > now)
        .order_by(LoginThrottle.locked_until.desc(), LoginThrottle.key)
    )
    rows = list(session.execute(query.with_for_update() if for_update else query).scalars())
    if not rows:
        return []
    people = _PeopleIndex(session)
    locks = []
    for row in rows:
        kind, _sep, rest = row.key.partition(":")
        subject, address = rest, None
        value, at, tail = rest.rpartition("@")
        if at and kind != "address" and _is_address(tail):
            subject, address = value, tail
        locks.append(_Row(row, kind, subject, address, people.find(kind, subject)))
    return locks


class _PeopleIndex:
    """Known people by what their counters are keyed on: the normalised DN of their entry
    and the normalised login names they sign in with (user name, e-mail)."""

    def __init__(self, session: Session) -> None:
        self._by_entry: dict[str, User] = {}
        self._by_name: dict[str, User] = {}
        for user in session.execute(select(User).where(User.anonymised_at.is_(None))).scalars():
            for name in (user.username, user.email):
                if name:
                    self._by_name.setdefault(normalise_login_name(name), user)
            if user.directory_dn:
                try:
                    self._by_entry[normalize_dn(user.directory_dn)] = user
                except MalformedDn:
                    continue  # stored before DN checks; such a row has no entry counters either

    def find(self, kind: str, subject: str) -> User | None:
        if kind == "entry":
            return self._by_entry.get(subject)
        if kind == "name":
            return self._by_name.get(subject)
        return None


def _may_lift(admin: User, lock: _Row) -> bool:
    if scope_of(admin.role_set(), Action.LIFT_SIGN_IN_LOCKS) is Scope.APPLIANCE:
        return True
    person = lock.person
    return (
        person is not None
        and person.source is UserSource.DIRECTORY
        and person.organisation_id is not None
        and person.organisation_id == admin.organisation_id
        and not person.role_set() & PRIVILEGED
    )


def _same_lock(lock: _Row, chosen: _Row) -> bool:
    if lock.row.key == chosen.row.key:
        return True
    return chosen.person is not None and lock.person is chosen.person and lock.address == chosen.address


def _public(lock: _Row) -> SignInLock:
    until = lock.row.locked_until
    assert until is not None  # only locks in force are listed
    return SignInLock(
        lock.row.key,
        lock.kind,
        lock.subject,
        lock.address,
        lock.row.failures,
        until,
        lock.person.display_name if lock.person else None,
    )


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
