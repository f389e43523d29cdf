"""The LDAP implementation of `Directory`, over ldap3.

* Search-then-bind, in two calls: `find_account` finds exactly one entry with the
  configured filter on a pooled service-account connection (the login name escaped per
  RFC 4515) and reads its account state; `verify_password` then binds as that entry's DN
  on a separate pooled connection that is only ever used for binds, never for searches.
  The password is sent as UTF-8 bytes, exactly as typed (see `_password_bytes`).
* Servers are tried in order; a server that failed is skipped for a short while.
  Every connection is TLS (LDAPS or StartTLS, certificate checked against `ca_file`)
  unless the config says `allow_plain` and `start_tls: false`.
* Every ldap3 and socket error is turned into DirectoryUnavailable here (DirectoryTlsFailed
  when TLS could not be established or verified); nothing of ldap3 leaves this module.
* People are identified by the entry's immutable id (entryUUID / objectGUID), which is
  requested by name with every person search.
"""

from __future__ import annotations

import logging
import math
import os
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ldap3 import BASE, SIMPLE, SUBTREE, SYNC, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException, LDAPStartTLSError

from appliance.clock import Clock
from appliance.config import DirectoryConfig
from appliance.directory.api import (
    AccountStatus,
    DirectoryAccount,
    DirectoryHealth,
    DirectoryPerson,
    ServerHealth,
    check_search,
    is_text,
    search_order,
)
from appliance.directory.dn import MalformedDn, normalize_dn, split_rdns
from appliance.directory.errors import (
    AuthenticationFailed,
    DirectoryTlsFailed,
    DirectoryUnavailable,
    FailureReason,
)
from appliance.directory.mapping import OrganisationMap, RoleMap
from appliance.directory.profiles import Attributes, Profile, build_user_filter, first, profile_for
from appliance.errors import InvalidInput

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_GROUP_DEPTH = 10
"""Nested groups deeper than this are ignored (AD allows cycles and deep chains)."""
GROUP_FILTER_BATCH = 50
"""Member DNs per group search, to keep filters small."""
SERVER_RETRY_SECONDS = 15.0
"""A server that failed is skipped this long (unless every server has failed)."""
POOL_IDLE_SECONDS = 60.0
"""Idle pooled connections older than this are closed rather than reused: servers and
firewalls drop idle connections, and a dead socket would cost a full receive timeout."""
MAX_USERNAME_LENGTH = 256
MAX_SEARCH_ENTRIES = 100
"""Entries a people search reads at most (its size limit): enough to sort a page of matches by
name, while a broad query never reads the whole directory."""
LDAP_SUCCESS = 0
LDAP_SIZE_LIMIT_EXCEEDED = 4
LDAP_NO_SUCH_OBJECT = 32
LDAP_INVALID_CREDENTIALS = 49

_COMMUNICATION_ERRORS = (LDAPException, OSError)


Entry = tuple[str, dict[str, list[str]]]
"""A search result: the DN and its attribute values keyed by lower-cased name."""


class _SearchFailed(Exception):
    """A search answered with an unexpected result code (busy, unavailable, ...)."""


class _TlsRefused(LDAPException):
    """TLS could not be set up or verified (certificate, host name, StartTLS refused)."""


def _is_tls_failure(exc: BaseException) -> bool:
    # ldap3 raises classes made on the fly that derive from both its own exception and the
    # ssl error (SSLCertVerificationError for a bad chain, expiry or host name)
    return isinstance(exc, LDAPStartTLSError | ssl.SSLError | ssl.CertificateError)


UNREADABLE_ENTRY = "The company directory returned an entry the appliance cannot read."
UNSENDABLE_PASSWORD = "The password holds characters that are not valid text (a lone surrogate)."  # noqa: S105


@dataclass(frozen=True)
class _LdapAccount(DirectoryAccount):
    """An entry `find_account` found, with what the search returned, for the bind and the person."""

    entry: Entry = field(compare=False, repr=False)


@dataclass
class _Pooled:
    connection: Connection
    idle_since: float


class _ConnectionPool:
    """Idle connections of one kind, per process; a connection is used by one thread at a time."""

    def __init__(self, size: int, opener: Callable[[], Connection]) -> None:
        self._size = size
        self._opener = opener
        self._idle: list[_Pooled] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def acquire(self) -> Connection:
        with self._lock:
            if self._pid != os.getpid():
                # inherited through fork: the sockets belong to the parent; never share them
                self._idle = []
                self._pid = os.getpid()
            while self._idle:
                pooled = self._idle.pop()
                if time.monotonic() - pooled.idle_since < POOL_IDLE_SECONDS and not pooled.connection.closed:
                    return pooled.connection
                _close(pooled.connection)
        return self._opener()

    def release(self, connection: Connection) -> None:
        with self._lock:
            if len(self._idle) < self._size and self._pid == os.getpid():
                self._idle.append(_Pooled(connection, time.monotonic()))
                return
        _close(connection)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for pooled in idle:
            _close(pooled.connection)


def _close(connection: Connection) -> None:
    try:
        connection.unbind()
    except _COMMUNICATION_ERRORS:
        log.debug("closing an LDAP connection failed", exc_info=True)


def _decode(raw: dict[str, list[bytes]]) -> dict[str, list[str]]:
    decoded = {}
    for name, values in raw.items():
        if name.lower() == "objectguid":
            # binary; its usual string form has the first three fields little-endian
            decoded["objectguid"] = [str(uuid.UUID(bytes_le=v)) for v in values if len(v) == 16]
        else:
            decoded[name.lower()] = [v.decode("utf-8", errors="replace") for v in values]
    return decoded


def _naming_context(dn: str) -> str:
    """The dc= tail of a DN: where groups are searched when group_base_dn is not set."""
    rdns = split_rdns(normalize_dn(dn))
    tail = [rdn for rdn in rdns if rdn.startswith("dc=")]
    return ",".join(tail) if tail else ",".join(rdns[-1:])


class LdapDirectory:
    """`Directory` over one or more LDAP servers (see the module docstring)."""

    def __init__(self, cfg: DirectoryConfig, bind_password: str, clock: Clock) -> None:
        self._cfg = cfg
        self._bind_password = bind_password
        self._clock = clock
        self._profile: Profile = profile_for(cfg.profile, cfg.organisation_attribute)
        self._roles = RoleMap(cfg.role_groups)
        self._organisations = OrganisationMap(cfg.organisation_subtrees, cfg.organisation_attribute)
        self._group_base = cfg.group_base_dn or _naming_context(cfg.user_base_dn)
        self._servers = [self._make_server(s.url) for s in cfg.servers]
        self._down_until: dict[int, float] = {}
        self._service_pool = _ConnectionPool(cfg.pool_size, self._open_service)
        self._bind_pool = _ConnectionPool(cfg.pool_size, self._open_for_binds)
        # A DN that cannot exist: binding to it takes the same round trip as a wrong
        # password, so unknown and disabled accounts answer in the same time.
        self._decoy_dn = f"cn=appliance-no-such-user,{cfg.user_base_dn}"

    # -- connections ---------------------------------------------------------------

    def _make_server(self, url: str) -> Server:
        parts = urlsplit(url)
        ldaps = parts.scheme == "ldaps"
        tls = None
        if ldaps or self._cfg.start_tls:
            if self._cfg.ca_file is None:
                # ldap3 would fall back to the operating system's trust store; the config
                # check refuses this too
                raise InvalidInput("directory.ca_file: required when TLS is used")
            tls = Tls(
                validate=ssl.CERT_REQUIRED,
                ca_certs_file=str(self._cfg.ca_file),
                # default context: TLS 1.2 at least; ldap3 checks the name (IP SANs too)
                version=None,
            )
        return Server(
            parts.hostname or "",
            port=parts.port or (636 if ldaps else 389),
            use_ssl=ldaps,
            tls=tls,
            get_info="NO_INFO",
            connect_timeout=self._cfg.connect_timeout_seconds,
        )

    def _connect(self, server: Server, user: str | None, password: str | None) -> Connection:
        connection = Connection(
            server,
            user=user,
            password=password,
            authentication=SIMPLE if user else None,
            client_strategy=SYNC,
            read_only=True,
            raise_exceptions=False,
            # ldap3 sets SO_RCVTIMEO from whole seconds only
            receive_timeout=max(1, math.ceil(self._cfg.receive_timeout_seconds)),
            auto_referrals=False,
        )
        try:
            connection.open(read_server_info=False)
            if not server.ssl and self._cfg.start_tls:
                # start_tls raises when the server refuses or the certificate does not
                # verify; we never fall back to clear text. It can also return False without
                # raising (operations in flight): nothing may be sent unless TLS is on.
                connection.start_tls(read_server_info=False)
                if not connection.tls_started:
                    raise _TlsRefused("StartTLS did not take effect")
            if user is not None and not connection.bind(read_server_info=False):
                code = connection.result.get("result")
                _close(connection)
                raise DirectoryUnavailable(
                    "The appliance's directory service account was refused."
                    if code == LDAP_INVALID_CREDENTIALS
                    else "The company directory (LDAP) refused the appliance's connection."
                )
        except _COMMUNICATION_ERRORS as exc:
            _close(connection)
            if _is_tls_failure(exc) and not isinstance(exc, _TlsRefused):
                raise _TlsRefused(exc.__class__.__name__) from exc
            raise
        return connection

    def _open(self, user: str | None, password: str | None) -> Connection:
        """A new connection to the first server that answers, trying each in order."""
        now = time.monotonic()
        order = [i for i in range(len(self._servers)) if self._down_until.get(i, 0.0) <= now]
        order += [i for i in range(len(self._servers)) if i not in order]  # all down: try anyway
        last: BaseException | None = None
        tls_failed = False
        for index in order:
            server = self._servers[index]
            try:
                connection = self._connect(server, user, password)
            except _TlsRefused as exc:
                last, tls_failed = exc, True
                self._down_until[index] = time.monotonic() + SERVER_RETRY_SECONDS
                log.error("directory server %s:%s: TLS failed (%s)", server.host, server.port, exc)
                continue
            except _COMMUNICATION_ERRORS as exc:
                last = exc
                self._down_until[index] = time.monotonic() + SERVER_RETRY_SECONDS
                log.warning(
                    "directory server %s:%s failed (%s); trying the next one",
                    server.host,
                    server.port,
                    exc.__class__.__name__,
                )
                continue
            except DirectoryUnavailable as exc:
                last = exc
                self._down_until[index] = time.monotonic() + SERVER_RETRY_SECONDS
                log.error("directory server %s:%s: %s", server.host, server.port, exc.detail)
                continue
            self._down_until.pop(index, None)
            return connection
        if tls_failed:
            raise DirectoryTlsFailed() from last
        if isinstance(last, DirectoryUnavailable):
            raise last
        raise DirectoryUnavailable() from last

    def _open_service(self) -> Connection:
        return self._open(self._cfg.bind_dn, self._bind_password)

    def _open_for_binds(self) -> Connection:
        return self._open(None, None)

    def _with_service(self, operation: Callable[[Connection], T]) -> T:
        """Run `operation` on a pooled service connection; a stale one is replaced once."""
        for attempt in (1, 2):
            connection = self._service_pool.acquire()
            try:
                result = operation(connection)
            except (*_COMMUNICATION_ERRORS, _SearchFailed) as exc:
                _close(connection)
                if attempt == 2:
                    raise DirectoryUnavailable() from exc
                continue
            except MalformedDn as exc:
                # the directory's own data: an operator problem, never the client's input
                self._service_pool.release(connection)
                log.error("the directory returned a DN that does not parse")
                raise DirectoryUnavailable(UNREADABLE_ENTRY) from exc
            except DirectoryUnavailable:
                # an entry it cannot read (no immutable id): the connection itself is fine
                self._service_pool.release(connection)
                raise
            self._service_pool.release(connection)
            return result
        raise AssertionError("unreachable")

    @contextmanager
    def _bind_connection(self) -> Iterator[Connection]:
        connection = self._bind_pool.acquire()
        try:
            yield connection
        except BaseException:
            _close(connection)
            raise
        self._bind_pool.release(connection)

    # -- searches ------------------------------------------------------------------

    @staticmethod
    def _search(
        connection: Connection,
        base: str,
        search_filter: str,
        attributes: tuple[str, ...] | list[str],
        *,
        scope: Any = SUBTREE,
        size_limit: int = 0,
    ) -> list[Entry]:
        connection.search(
            base, search_filter, search_scope=scope, attributes=list(attributes), size_limit=size_limit
        )
        code = connection.result.get("result")
        if code == LDAP_NO_SUCH_OBJECT:
            return []
        if code not in (LDAP_SUCCESS, LDAP_SIZE_LIMIT_EXCEEDED):
            raise _SearchFailed(f"search answered {code} {connection.result.get('description')}")
        return [
            (entry["dn"], _decode(entry.get("raw_attributes", {})))
            for entry in connection.response or []
            if entry.get("type") == "searchResEntry"
        ]

    def _find_entries(self, connection: Connection, username: str) -> list[Entry]:
        search_filter = build_user_filter(self._cfg.user_filter, username)
        # size limit 2: we only need to know whether the match is unique
        return self._search(
            connection, self._cfg.user_base_dn, search_filter, self._profile.person_attributes, size_limit=2
        )

    def _groups_of(self, connection: Connection, dn: str, username: str, attrs: Attributes) -> frozenset[str]:
        """Every group the entry is in, nested ones included, walking upwards level by level."""
        found: set[str] = set()
        direct = {normalize_dn(g) for g in self._profile.direct_groups(attrs)}
        frontier: list[str] = sorted(direct) if direct else [dn]
        found |= direct
        posix_name: str | None = username
        for _ in range(MAX_GROUP_DEPTH):
            parents: set[str] = set()
            for start in range(0, max(len(frontier), 1), GROUP_FILTER_BATCH):
                batch = frontier[start : start + GROUP_FILTER_BATCH]
                group_filter = self._profile.parent_group_filter(batch, posix_name)
                for group_dn, _ in self._search(connection, self._group_base, group_filter, ["1.1"]):
                    parents.add(normalize_dn(group_dn))
                posix_name = None  # posixGroup holds people by uid, never groups
            new = parents - found
            if not new:
                break
            found |= new
            frontier = sorted(new)
        return frozenset(found)

    def _directory_id(self, dn: str, attrs: Attributes) -> str:
        directory_id = self._profile.directory_id(attrs)
        if directory_id is None:
            # without it a reused login name could take over someone else's records
            log.error("directory entry %r has no %s; it cannot sign in", dn, self._profile.id_attribute)
            raise DirectoryUnavailable(UNREADABLE_ENTRY)
        return directory_id

    def _status(self, connection: Connection, attrs: Attributes) -> AccountStatus:
        duration: timedelta | None = None
        if self._profile.needs_lockout_duration(attrs):
            duration = self._lockout_duration(connection, first(attrs, "pwdPolicySubentry"))
        return self._profile.status(attrs, self._clock.now(), duration)

    def _lockout_duration(self, connection: Connection, policy_dn: str | None) -> timedelta | None:
        """pwdLockoutDuration of the entry's ppolicy; None when it cannot be read."""
        if policy_dn is None:
            return None
        found = self._search(
            connection, policy_dn, "(objectClass=pwdPolicy)", ["pwdLockoutDuration"], scope=BASE
        )
        if not found:
            return None
        seconds = first(found[0][1], "pwdLockoutDuration") or "0"  # absent: 0, until unlocked
        return timedelta(seconds=int(seconds)) if seconds.isdigit() else None

    def _person(
        self, connection: Connection, dn: str, attrs: dict[str, list[str]], typed_username: str
    ) -> DirectoryPerson:
        directory_id = self._directory_id(dn, attrs)
        username, display_name = self._names(attrs, typed_username)
        groups = self._groups_of(connection, dn, username, attrs)
        department_attr = self._cfg.organisation_attribute or (
            "department" if self._cfg.profile == "active_directory" else "departmentNumber"
        )
        department = first(attrs, department_attr)
        organisation = self._organisations.organisation_for(dn, department)
        return DirectoryPerson(
            dn=dn,
            directory_id=directory_id,
            username=username,
            display_name=display_name,
            email=first(attrs, "mail", "userPrincipalName"),
            phone=first(attrs, "telephoneNumber", "mobile"),
            department=department or (organisation.name if organisation else None),
            organisation=organisation,
            groups=groups,
            roles=self._roles.roles_for(groups),
            status=self._status(connection, attrs),
        )

    def _names(self, attrs: Attributes, typed_username: str) -> tuple[str, str]:
        """The login name and the display name a person is shown with."""
        username = first(attrs, self._profile.username_attribute) or typed_username
        return username, first(attrs, "displayName", "cn") or username

    def _search_order(self, entry: Entry) -> tuple[str, str]:
        username, display_name = self._names(entry[1], "")
        return search_order(display_name, username)

    # -- the Directory interface ---------------------------------------------------

    def find_account(self, username: str) -> DirectoryAccount:
        if not _acceptable_username(username):
            return DirectoryAccount(username, None, None, FailureReason.INVALID_USERNAME)

        def find(connection: Connection) -> DirectoryAccount:
            entries = self._find_entries(connection, username)
            if len(entries) != 1:
                reason = FailureReason.UNKNOWN_USER if not entries else FailureReason.AMBIGUOUS_USER
                return DirectoryAccount(username, None, None, reason)
            dn, attrs = entries[0]
            status = self._status(connection, attrs)
            return _LdapAccount(
                login_name=username,
                dn=normalize_dn(dn),
                directory_id=self._directory_id(dn, attrs),
                refusal=None if status is AccountStatus.ACTIVE else FailureReason(status.value),
                entry=(dn, attrs),
            )

        return self._with_service(find)

    def verify_password(self, account: DirectoryAccount, password: str) -> DirectoryPerson:
        # An empty password makes a simple bind "unauthenticated" (RFC 4513 5.1.2),
        # which servers answer with success: refuse before any LDAP traffic.
        if not password or not password.strip() or "\x00" in password:
            raise AuthenticationFailed(FailureReason.EMPTY_PASSWORD)
        secret = _password_bytes(password)
        if account.refusal is not None:
            if account.refusal is not FailureReason.INVALID_USERNAME:
                self._decoy_bind(secret)
            raise AuthenticationFailed(account.refusal)
        if not isinstance(account, _LdapAccount):
            raise TypeError("verify_password takes an account found by this directory's find_account")
        dn, attrs = account.entry
        if not self._bind_as(dn, secret):
            raise AuthenticationFailed(FailureReason.WRONG_PASSWORD)
        # groups are resolved only after the password is proven: failures all cost one
        # search and one bind, so their timing does not tell them apart
        return self._with_service(lambda connection: self._person(connection, dn, attrs, account.login_name))

    def _bind_as(self, dn: str, password: bytes) -> bool:
        for attempt in (1, 2):
            try:
                with self._bind_connection() as connection:
                    return bool(connection.rebind(user=dn, password=password, read_server_info=False))
            except _COMMUNICATION_ERRORS as exc:
                # ldap3 raises LDAPBindError for a closed connection as well as for
                # refused credentials; only a result code tells them apart.
                code = getattr(exc, "result", None)
                if code == LDAP_INVALID_CREDENTIALS:
                    return False
                if attempt == 2:
                    raise DirectoryUnavailable() from exc
        raise AssertionError("unreachable")

    def _decoy_bind(self, password: bytes) -> None:
        try:
            self._bind_as(self._decoy_dn, password)
        except DirectoryUnavailable:
            log.debug("decoy bind failed", exc_info=True)

    def lookup(self, username: str) -> DirectoryPerson | None:
        if not _acceptable_username(username):
            return None

        def find(connection: Connection) -> DirectoryPerson | None:
            entries = self._find_entries(connection, username)
            if len(entries) != 1:
                return None
            dn, attrs = entries[0]
            return self._person(connection, dn, attrs, username)

        return self._with_service(find)

    def lookup_by_id(self, directory_id: str) -> DirectoryPerson | None:
        try:
            search_filter = self._profile.id_filter(self._cfg.user_filter, directory_id)
        except ValueError:
            return None
        wanted = str(uuid.UUID(directory_id))

        def find(connection: Connection) -> DirectoryPerson | None:
            entries = self._search(
                connection,
                self._cfg.user_base_dn,
                search_filter,
                self._profile.person_attributes,
                size_limit=2,
            )
            if len(entries) != 1 or self._profile.directory_id(entries[0][1]) != wanted:
                return None
            dn, attrs = entries[0]
            return self._person(connection, dn, attrs, "")

        return self._with_service(find)

    def group_members(self, group_dn: str) -> list[DirectoryPerson]:
        def walk(connection: Connection) -> list[DirectoryPerson]:
            people: dict[str, DirectoryPerson] = {}
            seen: set[str] = set()
            frontier = [group_dn]
            member_attrs = self._profile.group_member_attributes
            wanted = tuple(dict.fromkeys((*member_attrs, *self._profile.person_attributes)))
            for _ in range(MAX_GROUP_DEPTH):
                next_frontier: list[str] = []
                for dn in frontier:
                    key = normalize_dn(dn)
                    if key in seen:
                        continue
                    seen.add(key)
                    found = self._search(connection, dn, "(objectClass=*)", wanted, scope=BASE)
                    if not found:
                        continue
                    entry_dn, attrs = found[0]
                    classes = {c.lower() for c in attrs.get("objectclass", [])}
                    if classes & {"groupofnames", "groupofuniquenames", "posixgroup", "group"}:
                        next_frontier += attrs.get("member", []) + attrs.get("uniquemember", [])
                        for uid in attrs.get("memberuid", []):
                            for person_dn, person_attrs in self._find_entries(connection, uid):
                                person = self._person(connection, person_dn, person_attrs, uid)
                                people.setdefault(normalize_dn(person_dn), person)
                    elif entry_dn != group_dn:
                        name = first(attrs, self._profile.username_attribute) or entry_dn
                        people.setdefault(key, self._person(connection, entry_dn, attrs, name))
                if not next_frontier:
                    break
                frontier = next_frontier
            return sorted(people.values(), key=lambda p: p.username)

        return self._with_service(walk)

    def search_people(self, query: str, *, limit: int = 20) -> list[DirectoryPerson]:
        search_filter = self._profile.search_filter(self._cfg.user_filter, check_search(query, limit))

        def search(connection: Connection) -> list[DirectoryPerson]:
            # a size limit exceeded answers with the entries read so far, which are sorted
            # here: groups (several searches a person) are resolved only for those returned
            entries = self._search(
                connection,
                self._cfg.user_base_dn,
                search_filter,
                self._profile.person_attributes,
                size_limit=MAX_SEARCH_ENTRIES,
            )
            people: list[DirectoryPerson] = []
            for dn, attrs in sorted(entries, key=self._search_order):
                if self._profile.directory_id(attrs) is None:
                    # lookup refuses such an entry as unreadable; one of them must not make
                    # every search that matches it fail
                    log.error(
                        "directory entry %r has no %s; left out of a search", dn, self._profile.id_attribute
                    )
                    continue
                person = self._person(connection, dn, attrs, "")
                if person.status is not AccountStatus.DISABLED:
                    people.append(person)
                if len(people) == limit:
                    break
            return people

        return self._with_service(search)

    def health(self) -> DirectoryHealth:
        results = []
        for server in self._servers:
            name = f"{server.host}:{server.port}"
            try:
                _close(self._connect(server, self._cfg.bind_dn, self._bind_password))
            except _TlsRefused:
                results.append(ServerHealth(name, False, "TLS failed"))
            except _COMMUNICATION_ERRORS as exc:
                results.append(ServerHealth(name, False, exc.__class__.__name__))
            except DirectoryUnavailable as exc:
                results.append(ServerHealth(name, False, exc.detail))
            else:
                results.append(ServerHealth(name, True, "ok"))
        return DirectoryHealth(tuple(results))

    def check_ready(self) -> None:
        self._with_service(
            lambda connection: self._search(
                connection, self._cfg.user_base_dn, "(objectClass=*)", ["1.1"], scope=BASE
            )
        )

    def close(self) -> None:
        self._service_pool.close()
        self._bind_pool.close()


def _acceptable_username(username: str) -> bool:
    return (
        bool(username)
        and bool(username.strip())
        and len(username) <= MAX_USERNAME_LENGTH
        and not any(ord(c) < 32 for c in username)
        and is_text(username)
    )


def _password_bytes(password: str) -> bytes:
    """The password as the bind sends it: UTF-8, exactly as typed.

    ldap3 runs a str password through SASLprep, which maps some characters (no-break spaces,
    ligatures) to others and refuses control characters and mixed right-to-left and
    left-to-right text, raising an error that would look like an outage. Bytes are sent as
    they are (RFC 4511 gives the simple password as an OCTET STRING), so the directory
    compares what the person typed with what it holds, as its own tools (ldapwhoami) do.

    :raises InvalidInput: when the password cannot be encoded (a lone surrogate).
    """
    if not is_text(password):
        raise InvalidInput(UNSENDABLE_PASSWORD)
    return password.encode("utf-8")
