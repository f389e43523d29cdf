"""Failed-login counting and lockout over the login_throttles table.

The policy (ASVS 4.0.3 2.2.1, 5.0 6.3.1; security test plan A04 and A05), with
N = auth.max_failed_logins and T = auth.lockout_minutes:

* Counters. Every sign-in attempt takes one slot on each of these counters:

  - ``address:<ip>``: everything from one client address; limit 4N (password spraying
    over many accounts; addresses can be shared through NAT and the VPN);
  - ``name:<name>`` and ``name:<name>@<ip>``: the login name as typed, NFKC-normalised and
    case-folded with format characters and surrounding space removed, because slapd and AD
    match compatibility spellings (full-width ``ａｌｉｃｅ``, mathematical ``𝐚lice``) too;
  - ``entry:<dn>`` and ``entry:<dn>@<ip>``: the directory entry the name resolved to
    (normalised DN), claimed after the search and before the bind, so every spelling and
    every second name of one person (UPN, mail) shares them.

* Limits. A pair of account and address (``...@<ip>``) locks after N failures. The
  account-wide counters (``name:``, ``entry:``) lock after ACCOUNT_FACTOR x N failures from
  all addresses together: a ceiling against attacks from many addresses, which also keeps the
  appliance from tripping the directory's own lockout.

* Increasing delay. A lock lasts T x 2^k, where k is the number of earlier locks of the same
  counter without a quiet day in between (capped at MAX_LOCKOUT_DOUBLINGS). Without a lock, a
  counter's window is T long.

* Who is affected. An attacker at one address locks only their own pair (and, when spraying,
  their address): the person at their own address can still sign in. Only an attack from at
  least ACCOUNT_FACTOR addresses reaches the account-wide ceiling, and each further lock lasts
  twice as long, so at most 4N + 4N + 4N wrong passwords reach the directory in the first hour
  (60 with N = 5), and fewer after, well under ASVS's 100 per hour.

* Outcomes. A failure keeps its slots and locks every counter that reached its limit. A success
  clears the pairs and gives its slot back on the others (it does not reset the account-wide
  counters: the victim signing in must not hand the attacker a fresh budget). An attempt that
  never reached the directory (outage, another counter locked) gives its slots back.

* Concurrency. Each claim is one conditional UPDATE (failures < limit and not locked), committed
  before the directory is asked, so attempts in other workers and nodes cannot all slip through.
  The address is claimed first, and an address that is locked creates no other rows.

* Growth. `purge_expired` deletes counters that are neither locked nor inside their window, and
  forgets lock history after a quiet day; the `login-throttle-purge` job runs it.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from appliance.models import LoginThrottle

ADDRESS_FACTOR = 4
"""A client address may fail this many times more often than one account (shared NAT, VPN)."""
ACCOUNT_FACTOR = 4
"""An account may fail this many times more often from all addresses than from one."""
MAX_LOCKOUT_DOUBLINGS = 4
"""A lock lasts at most 2^4 = 16 times lockout_minutes (capped at one day)."""
MAX_LOCK = timedelta(days=1)
MEMORY = timedelta(days=1)
"""Lock history (the doubling) is forgotten after this long without failures."""
MAX_KEY_LENGTH = 300
"""The key column's length; longer keys are stored as a sha256."""


@dataclass(frozen=True)
class ThrottleKey:
    key: str
    limit: int
    pair: bool
    """Counts one account from one address (cleared by a success)."""


def normalise_login_name(username: str) -> str:
    """The form of a login name that every spelling the directory would match shares."""
    folded = unicodedata.normalize("NFKC", username).casefold()
    # soft hyphens, zero-width characters and the like are invisible and ignored by matching
    visible = "".join(c for c in folded if unicodedata.category(c) != "Cf")
    # LDAP string matching ignores leading/trailing space and collapses inner runs
    return " ".join(visible.split())


def _key(kind: str, value: str, address: str | None = None) -> str:
    key = f"{kind}:{value}" + (f"@{address}" if address else "")
    if len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()
    return f"{kind}:sha256:{digest}" + (f"@{address}" if address else "")


def address_keys(address: str | None, max_failed: int) -> list[ThrottleKey]:
    if not address:
        return []
    return [ThrottleKey(_key("address", address[:64]), max_failed * ADDRESS_FACTOR, pair=False)]


def name_keys(username: str, address: str | None, max_failed: int) -> list[ThrottleKey]:
    """Counters of the typed login name: account-wide, then per address."""
    return _account_keys("name", normalise_login_name(username), address, max_failed)


def entry_keys(dn: str, address: str | None, max_failed: int) -> list[ThrottleKey]:
    """Counters of the directory entry (`dn` normalised): account-wide, then per address."""
    return _account_keys("entry", dn, address, max_failed)


def _account_keys(kind: str, value: str, address: str | None, max_failed: int) -> list[ThrottleKey]:
    keys = [ThrottleKey(_key(kind, value), max_failed * ACCOUNT_FACTOR, pair=False)]
    if address:
        keys.append(ThrottleKey(_key(kind, value, address[:64]), max_failed, pair=True))
    return keys


def _reset_expired(session: Session, key: str, now: datetime, window: timedelta) -> None:
    lock_over = and_(LoginThrottle.locked_until.is_not(None), LoginThrottle.locked_until <= now)
    window_over = and_(LoginThrottle.locked_until.is_(None), LoginThrottle.window_started_at <= now - window)
    quiet_day = or_(
        and_(LoginThrottle.locked_until.is_not(None), LoginThrottle.locked_until <= now - MEMORY),
        and_(LoginThrottle.locked_until.is_(None), LoginThrottle.window_started_at <= now - MEMORY),
    )
    session.execute(
        update(LoginThrottle)
        .where(LoginThrottle.key == key, or_(lock_over, window_over))
        .values(
            failures=0,
            window_started_at=now,
            locked_until=None,
            lockouts=case((quiet_day, 0), else_=LoginThrottle.lockouts),
        )
    )


def _insert_if_missing(session: Session, key: str, now: datetime) -> None:
    values = {"key": key, "failures": 0, "window_started_at": now, "locked_until": None, "lockouts": 0}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(LoginThrottle).values(**values).on_conflict_do_nothing(index_elements=["key"]))


def claim(session: Session, throttle: ThrottleKey, now: datetime, window: timedelta) -> datetime | None:
    """Take one attempt for `throttle`. Returns None when granted, else when to retry."""
    _insert_if_missing(session, throttle.key, now)
    _reset_expired(session, throttle.key, now, window)
    granted = _rowcount(
        session,
        update(LoginThrottle)
        .where(
            LoginThrottle.key == throttle.key,
            LoginThrottle.locked_until.is_(None),
            LoginThrottle.failures < throttle.limit,
        )
        .values(failures=LoginThrottle.failures + 1),
    )
    if granted:
        return None
    row = session.execute(select(LoginThrottle).where(LoginThrottle.key == throttle.key)).scalar_one()
    # at the limit but not yet locked: attempts of other workers are still in flight
    return row.locked_until or (row.window_started_at + window)


def give_back(session: Session, throttle: ThrottleKey) -> None:
    """The attempt was not a failure (success, or the directory was not reached)."""
    session.execute(
        update(LoginThrottle)
        .where(LoginThrottle.key == throttle.key, LoginThrottle.failures > 0)
        .values(failures=LoginThrottle.failures - 1)
    )


def settle_success(session: Session, keys: list[ThrottleKey]) -> None:
    """A successful sign-in: clear the pairs (history too), give the slot back on the rest."""
    for throttle in keys:
        if throttle.pair:
            session.execute(
                update(LoginThrottle)
                .where(LoginThrottle.key == throttle.key)
                .values(failures=0, locked_until=None, lockouts=0)
            )
        else:
            give_back(session, throttle)


def record_failure(session: Session, throttle: ThrottleKey, now: datetime, lockout: timedelta) -> bool:
    """The claimed attempt failed; lock the key when it reached its limit. True when now locked."""
    row = session.execute(
        select(LoginThrottle.failures, LoginThrottle.lockouts, LoginThrottle.locked_until).where(
            LoginThrottle.key == throttle.key
        )
    ).one_or_none()
    if row is None or row.failures < throttle.limit or row.locked_until is not None:
        return False
    duration = min(lockout * 2 ** min(row.lockouts, MAX_LOCKOUT_DOUBLINGS), MAX_LOCK)
    # conditional, so two workers failing at once lock (and double) only once
    locked = _rowcount(
        session,
        update(LoginThrottle)
        .where(
            LoginThrottle.key == throttle.key,
            LoginThrottle.failures >= throttle.limit,
            LoginThrottle.locked_until.is_(None),
        )
        .values(locked_until=now + duration, lockouts=LoginThrottle.lockouts + 1),
    )
    return bool(locked)


def purge_expired(session: Session, now: datetime, window: timedelta) -> int:
    """Delete counters that no longer hold anything back; returns how many.

    A counter goes once it is not locked and its window has ended; one that was ever locked
    stays for a quiet day (MEMORY) so its next lock still lasts longer.
    """
    not_locked = or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until <= now)
    window_over = LoginThrottle.window_started_at <= now - window
    history_over = or_(
        LoginThrottle.lockouts == 0,
        and_(
            LoginThrottle.window_started_at <= now - MEMORY,
            or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until <= now - MEMORY),
        ),
    )
    return _rowcount(session, delete(LoginThrottle).where(not_locked, window_over, history_over))


def _rowcount(session: Session, statement: Any) -> int:
    # an UPDATE answers with a CursorResult, whose rowcount is what makes the claim atomic
    return cast(CursorResult[Any], session.execute(statement)).rowcount
