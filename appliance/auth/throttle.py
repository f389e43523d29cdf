"""Failed-login counting and lockout over the login_throttles table.

The policy (ASVS 4.0.3 2.2.1, 5.0 6.3.1; security test plan A04 and A05), with
N = auth.max_failed_logins and T = auth.lockout_minutes:

* Counters. Every sign-in attempt takes one slot on each of these counters:

  - ``address:<ip>``: everything from one client address; limit 4N (password spraying
    over many accounts; addresses can be shared through NAT and the VPN, so
    ``auth.address_limits`` sets a higher ceiling for such networks);
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

import functools
import hashlib
import ipaddress
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, and_, bindparam, case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from appliance.config import AddressLimit
from appliance.db import rows_changed
from appliance.directory.dn import normalize_dn
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


def forget_account(session: Session, username: str, dn: str | None) -> None:
    """Remove every counter of this login name and directory entry (account cancellation)."""
    # entry counters are keyed by the DN as normalised at sign-in
    accounts = [("name", normalise_login_name(username))] + ([("entry", normalize_dn(dn))] if dn else [])
    for kind, value in accounts:
        # a key names the value itself, or its sha256 when the key with the address is too long
        for stem in (f"{kind}:{value}", f"{kind}:sha256:{hashlib.sha256(value.encode('utf-8')).hexdigest()}"):
            session.execute(
                delete(_TABLE).where(or_(_C.key == stem, _C.key.startswith(stem + "@", autoescape=True)))
            )


def _key(kind: str, value: str, address: str | None = None) -> str:
    key = f"{kind}:{value}" + (f"@{address}" if address else "")
    if len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()
    return f"{kind}:sha256:{digest}" + (f"@{address}" if address else "")


def address_keys(
    address: str | None, max_failed: int, limits: Sequence[AddressLimit] = ()
) -> list[ThrottleKey]:
    if not address:
        return []
    limit = address_limit(address, max_failed, limits)
    return [ThrottleKey(_key("address", address[:64]), limit, pair=False)]


@functools.lru_cache(maxsize=256)
def _parsed_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    # the configured networks, parsed once instead of at every sign-in
    return ipaddress.ip_network(text, strict=False)


def address_limit(address: str, max_failed: int, limits: Sequence[AddressLimit]) -> int:
    """The configured ceiling of the narrowest network holding `address`, else 4 x max_failed."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return max_failed * ADDRESS_FACTOR
    holding = [
        (network, limit.max_failed_logins)
        for limit in limits
        if ip in (network := _parsed_network(limit.network))
    ]
    if not holding:
        return max_failed * ADDRESS_FACTOR
    return max(holding, key=lambda pair: pair[0].prefixlen)[1]


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


# Every statement is built once, with bound parameters, over the table (not the ORM class):
# a sign-in runs about twenty of them, and building and caching each anew was most of the
# Python time of a login. Parameters: k (key), t (now), window_start (t - window),
# memory_start (t - MEMORY), limit.
_TABLE = cast(Table, LoginThrottle.__table__)
_C = _TABLE.c
_LOCK_OVER = and_(_C.locked_until.is_not(None), _C.locked_until <= bindparam("t"))
_WINDOW_OVER = and_(_C.locked_until.is_(None), _C.window_started_at <= bindparam("window_start"))
_QUIET_DAY = or_(
    and_(_C.locked_until.is_not(None), _C.locked_until <= bindparam("memory_start")),
    and_(_C.locked_until.is_(None), _C.window_started_at <= bindparam("memory_start")),
)
_RESET_EXPIRED = (
    update(_TABLE)
    .where(_C.key == bindparam("k"), or_(_LOCK_OVER, _WINDOW_OVER))
    .values(
        failures=0,
        window_started_at=bindparam("t"),
        locked_until=None,
        lockouts=case((_QUIET_DAY, 0), else_=_C.lockouts),
    )
)
_GRANT = (
    update(_TABLE)
    .where(_C.key == bindparam("k"), _C.locked_until.is_(None), _C.failures < bindparam("limit"))
    .values(failures=_C.failures + 1)
)
_GIVE_BACK = update(_TABLE).where(_C.key == bindparam("k"), _C.failures > 0).values(failures=_C.failures - 1)
_CLEAR = update(_TABLE).where(_C.key == bindparam("k")).values(failures=0, locked_until=None, lockouts=0)
_ROW = select(_C.failures, _C.lockouts, _C.locked_until, _C.window_started_at).where(_C.key == bindparam("k"))
_NEW_ROW = {"key": bindparam("k"), "failures": 0, "window_started_at": bindparam("t"), "locked_until": None}
_INSERT_IF_MISSING = {
    "postgresql": postgresql.insert(_TABLE).values(**_NEW_ROW, lockouts=0).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(_TABLE).values(**_NEW_ROW, lockouts=0).on_conflict_do_nothing(),
}


def claim(session: Session, throttle: ThrottleKey, now: datetime, window: timedelta) -> datetime | None:
    """Take one attempt for `throttle`. Returns None when granted, else when to retry."""
    insert = _INSERT_IF_MISSING[session.get_bind().dialect.name]
    session.execute(insert, {"k": throttle.key, "t": now})
    times = {"t": now, "window_start": now - window, "memory_start": now - MEMORY}
    session.execute(_RESET_EXPIRED, {"k": throttle.key, **times})
    if rows_changed(session, _GRANT, {"k": throttle.key, "limit": throttle.limit}):
        return None
    row = session.execute(_ROW, {"k": throttle.key}).one()
    # at the limit but not yet locked: attempts of other workers are still in flight
    return cast(datetime | None, row.locked_until) or (row.window_started_at + window)


def give_back(session: Session, throttle: ThrottleKey) -> None:
    """The attempt was not a failure (success, or the directory was not reached)."""
    session.execute(_GIVE_BACK, {"k": throttle.key})


def settle_success(session: Session, keys: list[ThrottleKey]) -> None:
    """A successful sign-in: clear the pairs (history too), give the slot back on the rest."""
    for throttle in keys:
        session.execute(_CLEAR if throttle.pair else _GIVE_BACK, {"k": throttle.key})


def record_failure(
    session: Session, throttle: ThrottleKey, now: datetime, lockout: timedelta
) -> datetime | None:
    """The claimed attempt failed; lock the key when it reached its limit. Returns the end of
    the lock when this failure started one, else None."""
    row = session.execute(
        select(LoginThrottle.failures, LoginThrottle.lockouts, LoginThrottle.locked_until).where(
            LoginThrottle.key == throttle.key
        )
    ).one_or_none()
    if row is None or row.failures < throttle.limit or row.locked_until is not None:
        return None
    duration = min(lockout * 2 ** min(row.lockouts, MAX_LOCKOUT_DOUBLINGS), MAX_LOCK)
    # conditional, so two workers failing at once lock (and double) only once
    locked = rows_changed(
        session,
        update(LoginThrottle)
        .where(
            LoginThrottle.key == throttle.key,
            LoginThrottle.failures >= throttle.limit,
            LoginThrottle.locked_until.is_(None),
        )
        .values(locked_until=now + duration, lockouts=LoginThrottle.lockouts + 1),
    )
    return now + duration if locked else None


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
    return rows_changed(session, delete(LoginThrottle).where(not_locked, window_over, history_over))
