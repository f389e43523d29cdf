"""The per-process PKCS#11 session: lazy initialisation after fork, one logged-in session, lock,
timeout, reopen once.

Rules (DESIGN §8, style-anchors §3.4):
* The module is loaded (C_Initialize) on first use, never at import or while the app is
  built, so the gunicorn master never holds PKCS#11 state. The pid that loaded it is
  recorded; a process that inherited a loaded pool through fork() refuses to use it,
  since a forked child must run its own C_Initialize and login.
* One logged-in session per process, behind a lock: many tokens do not allow several
  logged-in sessions of one process.
* A session or device error (session closed/invalid, device error/removed, token not
  present) drops the session and reopens it once; a second failure is `HsmUnavailable`.
  PIN errors are never retried (each retry burns one of the token's PIN attempts).
* Every call runs in a helper thread and is abandoned after `hsm.timeout_seconds`, so a
  hung HSM gives a 503 instead of a stuck worker. A timed-out session is never reused.
* Object handles found in a session (private keys) may be cached for that session only:
  `handles` is emptied whenever the session is dropped or reopened, since a handle means
  nothing outside the session that found it.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pkcs11
from pkcs11 import exceptions as p11e
from pydantic import SecretStr

from appliance.config import HsmConfig
from appliance.errors import ApplianceError
from appliance.hsm.errors import HsmUnavailable, PinRejected
from appliance.hsm.uri import parse_uri

log = logging.getLogger(__name__)

T = TypeVar("T")

RECOVERABLE_ERRORS: tuple[type[Exception], ...] = (
    p11e.SessionHandleInvalid,
    p11e.SessionClosed,
    p11e.DeviceError,
    p11e.DeviceRemoved,
    p11e.TokenNotPresent,
    p11e.TokenNotRecognised,
    # the token forgot our login (e.g. it was reset underneath us): a fresh session logs in again
    p11e.UserNotLoggedIn,
)
PIN_ERRORS: tuple[type[Exception], ...] = (
    p11e.PinIncorrect,
    p11e.PinLocked,
    p11e.PinExpired,
    p11e.PinInvalid,
    p11e.PinLenRange,
    p11e.UserPinNotInitialized,
)


# One loaded module per path and one pool per token and PIN in a process, so that every
# custody object of the process shares the single logged-in session (and no second
# `pkcs11.lib` finalizes the module under the first one). Entries carry the pid that made
# them; a forked child finds its parent's entries and refuses them.
_REGISTRY_LOCK = threading.Lock()
_LIBS: dict[str, tuple[int, Any]] = {}
_POOLS: dict[tuple[str, str, str], SessionPool] = {}


def _inherited() -> HsmUnavailable:
    return HsmUnavailable(
        "HSM state was inherited from another process; each worker must open the HSM itself"
    )


def load_module(path: str, pid: int) -> Any:
    """The process's `pkcs11.lib` for `path` (C_Initialize on first use)."""
    with _REGISTRY_LOCK:
        cached = _LIBS.get(path)
        if cached is not None:
            if cached[0] != pid:
                raise _inherited()
            return cached[1]
        try:
            lib = pkcs11.lib(path)
        except p11e.PKCS11Error as exc:
            raise HsmUnavailable(f"cannot load the PKCS#11 module {path}") from exc
        _LIBS[path] = (pid, lib)
        return lib


def shared_pool(cfg: HsmConfig, pin: SecretStr) -> SessionPool:
    """The process-wide pool for this module, token and PIN (created lazily, opens nothing)."""
    selector = repr(sorted(SessionPool.token_selector(cfg).items()))
    # the PIN is part of the key only as a digest, so a wrong PIN never shares a good login
    key = (str(cfg.module), selector, hashlib.sha256(pin.get_secret_value().encode()).hexdigest())
    with _REGISTRY_LOCK:
        pool = _POOLS.get(key)
        if pool is None or pool.inherited():
            pool = _POOLS[key] = SessionPool(cfg, pin)
        return pool


class SessionPool:
    """The process's single logged-in PKCS#11 session (see module doc)."""

    def __init__(
        self,
        cfg: HsmConfig,
        pin: SecretStr,
        *,
        getpid: Callable[[], int] = os.getpid,
    ) -> None:
        self._cfg = cfg
        self._pin = pin
        self._getpid = getpid
        self._lock = threading.RLock()
        self._pid: int | None = None
        self._lib: Any = None
        self._token: Any = None
        self._session: Any = None
        self._mechanisms: frozenset[Any] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._handles: dict[Any, Any] = {}
        self._pin_refused = False
        """Set when the token refused the PIN: a real HSM counts every attempt and locks
        the token (for every node) after a few, so this process never tries again."""
        self.reopen_count = 0
        """How often a session was dropped and reopened (metrics and tests)."""
        self._token_selector = self.token_selector(cfg)

    @staticmethod
    def token_selector(cfg: HsmConfig) -> dict[str, str]:
        """Keyword arguments of `pkcs11.lib.get_token` selecting the configured token."""
        if cfg.uri:
            parsed = parse_uri(cfg.uri)
            selector = {}
            if parsed.token:
                selector["token_label"] = parsed.token
            if parsed.serial:
                selector["token_serial"] = parsed.serial
            if not selector and cfg.token_label:
                selector["token_label"] = cfg.token_label
            if not selector:
                raise HsmUnavailable("hsm.uri names no token (give token= or serial=)")
            return selector
        assert cfg.token_label is not None  # the config validator demands one of them
        return {"token_label": cfg.token_label}

    @property
    def token_label(self) -> str | None:
        return self._token_selector.get("token_label")

    @property
    def timeout_seconds(self) -> float:
        return self._cfg.timeout_seconds

    # -- public ---------------------------------------------------------------------------

    def run(self, operation: Callable[[Any], T], *, what: str) -> T:
        """Run `operation(session)` on the logged-in session: locked, timed, reopened once.

        `what` names the operation in public error text ("sign", "list keys").
        ApplianceErrors raised by `operation` pass through unchanged.
        """
        self._check_pid()
        if self._pin_refused:
            raise PinRejected(
                "the HSM refused the configured PIN earlier (check hsm.pin_file, then restart); not retried"
            )
        if not self._lock.acquire(timeout=self._cfg.timeout_seconds):
            raise HsmUnavailable(f"HSM busy: {what} waited longer than {self._cfg.timeout_seconds:g} s")
        try:
            for attempt in (1, 2):
                try:
                    return self._call_with_timeout(lambda: operation(self._ensure_session()), what)
                except RECOVERABLE_ERRORS as exc:
                    self._drop_session()
                    if attempt == 2:
                        raise HsmUnavailable(
                            f"HSM unavailable: {what} failed twice ({type(exc).__name__})"
                        ) from exc
                    self.reopen_count += 1
                    log.warning("HSM %s failed with %s; reopening the session once", what, type(exc).__name__)
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            self._lock.release()

    def mechanisms(self) -> frozenset[Any]:
        """Mechanisms the token's slot offers (read once per process)."""
        if self._mechanisms is None:

            def read(_session: Any) -> frozenset[Any]:
                return frozenset(self._token.slot.get_mechanisms())

            self._mechanisms = self.run(read, what="read mechanisms")
        return self._mechanisms

    @property
    def handles(self) -> dict[Any, Any]:
        """Object handles cached for the current session; use only inside `run` (under the lock)."""
        return self._handles

    def token_info(self) -> tuple[Any, Any]:
        """(lib, token) after the session is open; for health reports."""
        return self._lib, self._token

    def close(self) -> None:
        """Log out and close (end of process, CLI commands, tests)."""
        if self._pid is not None and self._pid != self._getpid():
            return  # never touch another process's handles
        with self._lock:
            self._drop_session(close=True)
            if self._executor is not None:
                self._executor.shutdown(wait=False)
                self._executor = None

    # -- internals ------------------------------------------------------------------------

    def inherited(self) -> bool:
        """True when this pool was loaded by another process (we are a fork of it)."""
        return self._pid is not None and self._pid != self._getpid()

    def _check_pid(self) -> None:
        if self.inherited():
            raise _inherited()

    def _call_with_timeout(self, call: Callable[[], T], what: str) -> T:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="hsm")
        future = self._executor.submit(call)
        try:
            return future.result(timeout=self._cfg.timeout_seconds)
        except concurrent.futures.TimeoutError as exc:
            # The helper thread may stay stuck in the module; abandon it and its session, and
            # never hand that session to anyone again.
            self._executor.shutdown(wait=False)
            self._executor = None
            self._session = None
            self._handles = {}
            log.error("HSM %s did not return within %s s; session abandoned", what, self._cfg.timeout_seconds)
            raise HsmUnavailable(
                f"HSM did not answer within {self._cfg.timeout_seconds:g} s ({what})"
            ) from exc
        except ApplianceError:
            raise
        except RECOVERABLE_ERRORS:
            raise
        except PIN_ERRORS as exc:
            self._pin_refused = True
            raise PinRejected("the HSM refused the configured PIN (check hsm.pin_file); not retried") from exc
        except p11e.PKCS11Error as exc:
            raise HsmUnavailable(f"HSM refused the operation: {what} ({type(exc).__name__})") from exc

    def _ensure_session(self) -> Any:
        """The logged-in session, opening the module, token and session as needed (helper thread)."""
        if self._session is not None:
            return self._session
        self._handles = {}
        if self._lib is None:
            pid = self._getpid()
            self._lib = load_module(str(self._cfg.module), pid)
            self._pid = pid
        try:
            self._token = self._lib.get_token(**self._token_selector)
        except p11e.NoSuchToken as exc:
            raise HsmUnavailable(f"HSM token {self._describe_token()} not present") from exc
        except p11e.MultipleTokensReturned as exc:
            raise HsmUnavailable(f"several HSM tokens match {self._describe_token()}") from exc
        try:
            self._session = self._token.open(rw=True, user_pin=self._pin.get_secret_value())
        except p11e.UserAlreadyLoggedIn:
            # another session of this process is still logged in (login state is per
            # application): a session without explicit login shares it
            self._session = self._token.open(rw=True)
        return self._session

    def _describe_token(self) -> str:
        return ", ".join(f"{k.removeprefix('token_')}={v!r}" for k, v in self._token_selector.items())

    def _drop_session(self, *, close: bool = True) -> None:
        session, self._session = self._session, None
        self._handles = {}
        if session is None or not close:
            return
        try:
            session.close()
        except p11e.PKCS11Error:
            # the session is already gone (device removed, handle invalid): nothing to release
            log.debug("closing a broken HSM session failed", exc_info=True)
