"""Re-checking people in the directory while their sessions and tokens are in use.

A directory person's session or token is honoured for `auth.directory_recheck_minutes`
after the directory last vouched for them; after that, the next request asks the directory
again. Disabled, locked, expired or gone: the person is deactivated and their sessions and
tokens end. Directory down: access continues (security test plan A12), the outage is logged
and the next check comes one interval later, so requests do not all wait for timeouts while
the directory is down.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from appliance.audit import AuditRecord, append_event
from appliance.auth.oplog import record_directory_tls_failure
from appliance.auth.provisioning import end_access, upsert_user
from appliance.clock import Clock
from appliance.db import transaction
from appliance.directory import AccountStatus, Directory, DirectoryTlsFailed, DirectoryUnavailable
from appliance.errors import Conflict
from appliance.models import User, UserSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecheckDue:
    """The session or token is valid, but its owner must be re-checked in the directory first."""

    user_id: int
    directory_uuid: str | None


class DirectoryRecheck:
    def __init__(
        self, sessions: sessionmaker[Session], directory: Directory | None, interval: timedelta, clock: Clock
    ) -> None:
        self._sessions = sessions
        self._directory = directory
        self._interval = interval
        self._clock = clock

    def due(self, user: User, now: datetime) -> RecheckDue | None:
        """A re-check to run before `user` may act, or None when the last one is recent enough."""
        if user.source is not UserSource.DIRECTORY:
            return None
        if user.last_directory_check_at is not None and now - user.last_directory_check_at < self._interval:
            return None
        return RecheckDue(user.id, user.directory_uuid)

    def run(self, due: RecheckDue) -> bool:
        """Ask the directory whether the person may still sign in; False ends their access."""
        now = self._clock.now()
        if self._directory is None or due.directory_uuid is None:
            # nothing can vouch for this directory person (the directory section was removed):
            # refuse the request, but change nothing, since the directory may come back
            return False
        try:
            person = self._directory.lookup_by_id(due.directory_uuid)
        except DirectoryUnavailable as exc:
            log.warning("directory re-check of user %s skipped: the directory is unavailable", due.user_id)
            with transaction(self._sessions) as session:
                session.execute(
                    update(User).where(User.id == due.user_id).values(last_directory_check_at=now)
                )
                if isinstance(exc, DirectoryTlsFailed):
                    record_directory_tls_failure(session, now, "recheck")
            return True
        with transaction(self._sessions) as session:
            user = session.get_one(User, due.user_id)
            if user.anonymised_at is not None:
                return False  # cancelled meanwhile: the directory's data must not come back
            if person is not None and person.status is AccountStatus.ACTIVE:
                try:
                    upsert_user(session, person, now)  # roles may have changed too
                except Conflict:
                    log.error("directory re-check of user %s: name clashes with the local account", user.id)
                user.last_directory_check_at = now
                return True
            user.active = False
            user.last_directory_check_at = now
            if person is None and user.left_directory_at is None:
                user.left_directory_at = now
            user.updated_at = now
            end_access(session, user.id, now)
            append_event(
                session,
                AuditRecord(
                    action="user.deactivated",
                    occurred_at=now,
                    object_type="user",
                    object_id=str(user.id),
                    actor_name="directory re-check",
                    details={
                        "username": user.username,
                        "status": person.status.value if person is not None else "gone",
                    },
                ),
            )
            return False
