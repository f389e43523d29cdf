"""The one path from a presented credential (session cookie, bearer token) to a person.

A credential counts while it is neither revoked nor expired (nor idle too long, for kinds
with an idle timeout) and its owner may act; a directory person is re-checked in the
directory when their last check is older than the interval (see `recheck`). Each use
touches the credential's last-use time, at most every LAST_USE_GRANULARITY.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from appliance.auth.access import may_act, principal_of
from appliance.auth.credentials import Credential, digest
from appliance.auth.recheck import DirectoryRecheck, RecheckDue
from appliance.auth.records import Principal
from appliance.clock import Clock
from appliance.db import transaction
from appliance.models import User

LAST_USE_GRANULARITY = timedelta(seconds=30)
"""The last-use time is written at most this often per credential (idle timeouts are minutes)."""


class Resolver:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        recheck: DirectoryRecheck,
        clock: Clock,
        local_admin_enabled: bool,
    ) -> None:
        self._sessions = sessions
        self._recheck = recheck
        self._clock = clock
        self._local_admin_enabled = local_admin_enabled

    def resolve(self, credential: Credential, secret: str) -> Principal | None:
        """The person behind `secret`, or None when it is not (or no longer) valid."""
        # A due directory re-check runs outside the resolving transaction; a second pass
        # then sees its result.
        for _ in range(2):
            outcome = self._resolve_once(credential, secret)
            if not isinstance(outcome, RecheckDue):
                return outcome
            if not self._recheck.run(outcome):
                return None
        return None

    def _resolve_once(self, credential: Credential, secret: str) -> Principal | RecheckDue | None:
        now = self._clock.now()
        model = credential.model
        this = credential.digest == digest(secret)
        with transaction(self._sessions) as session:
            row = session.execute(
                select(model.user_id, model.revoked_at, model.expires_at, credential.touched).where(this)
            ).one_or_none()
            if row is None:
                return None
            user_id, revoked_at, expires_at, touched_at = row
            if revoked_at is not None or expires_at <= now:
                return None
            idle = credential.idle_timeout
            if idle is not None and touched_at is not None and touched_at + idle <= now:
                session.execute(update(model).where(this).values(revoked_at=now))
                return None
            user = session.get(User, user_id)
            if user is None or not may_act(user, self._local_admin_enabled):
                return None
            due = self._recheck.due(user, now)
            if due is not None:
                return due
            if touched_at is None or now - touched_at >= LAST_USE_GRANULARITY:
                session.execute(update(model).where(this).values({credential.touched: now}))
            return principal_of(user)
