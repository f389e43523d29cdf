"""`appliance directory sync` and the directory-sync job: refresh every directory person's row.

People are looked up by their immutable id, so a renamed person keeps their row and a new
person with a departed person's name never takes it over. Everyone is looked up first and
nothing changes if the directory fails part-way.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from appliance.audit import AuditRecord, append_event
from appliance.auth.provisioning import end_access, upsert_user
from appliance.auth.records import SyncReport
from appliance.clock import Clock
from appliance.db import transaction
from appliance.directory import AccountStatus, Directory
from appliance.errors import Conflict
from appliance.models import User, UserSource

MAX_LEAVE_FRACTION = 0.5
"""Sync refuses to mark more than this share of people as gone unless forced: an empty
answer usually means a wrong base DN, not a mass departure."""


def sync_directory(
    sessions: sessionmaker[Session], directory: Directory, clock: Clock, *, force: bool = False
) -> SyncReport:
    """Refresh every directory person's row; mark people no longer found as inactive.

    :raises DirectoryUnavailable: when the directory cannot be reached.
    :raises Conflict: when more than half would be marked as gone (unless `force`).
    """
    with transaction(sessions) as session:
        known = session.execute(
            select(User.id, User.directory_uuid).where(
                User.source == UserSource.DIRECTORY, User.anonymised_at.is_(None)
            )
        ).all()
    # a row without an immutable id cannot be matched to anyone safely: it counts as gone
    found = {
        user_id: directory.lookup_by_id(directory_uuid) if directory_uuid else None
        for user_id, directory_uuid in known
    }
    gone = [user_id for user_id, person in found.items() if person is None]
    if known and not force and len(gone) > MAX_LEAVE_FRACTION * len(known) and len(gone) > 2:
        raise Conflict(
            f"{len(gone)} of {len(known)} people were not found in the directory; check "
            "directory.user_base_dn and user_filter, or run the sync with --force"
        )
    now = clock.now()
    refreshed = deactivated = left = 0
    with transaction(sessions) as session:
        for user_id, person in found.items():
            user = session.get_one(User, user_id)
            if person is None:
                if user.left_directory_at is None:
                    user.active = False
                    user.left_directory_at = now
                    user.updated_at = now
                    end_access(session, user.id, now)
                    _log(session, user, "user.left_directory", now)
                    left += 1
                continue
            upsert_user(session, person, now)
            user.last_directory_check_at = now
            refreshed += 1
            active = person.status is AccountStatus.ACTIVE
            if user.active and not active:
                end_access(session, user.id, now)
                _log(session, user, "user.deactivated", now, status=person.status.value)
                deactivated += 1
            user.active = active
        append_event(
            session,
            AuditRecord(
                action="directory.sync",
                occurred_at=now,
                details={"refreshed": refreshed, "deactivated": deactivated, "left": left},
            ),
        )
    return SyncReport(refreshed=refreshed, deactivated=deactivated, left=left)


def _log(session: Session, user: User, action: str, now: datetime, **details: str) -> None:
    append_event(
        session,
        AuditRecord(
            action=action,
            occurred_at=now,
            object_type="user",
            object_id=str(user.id),
            actor_name="directory sync",
            details={"username": user.username, **details},
        ),
    )
