"""The break-glass local system administrator, created with `appliance admin create`.

The one account whose password the appliance checks itself (argon2id, `passwords`); it
signs in only while `auth.local_admin_enabled` is true.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from appliance.audit import AuditRecord, append_event
from appliance.auth import passwords
from appliance.auth.login import MAX_PASSWORD_LENGTH
from appliance.auth.provisioning import end_access
from appliance.auth.text import is_storable
from appliance.clock import Clock
from appliance.config import AuthConfig, Role
from appliance.db import transaction
from appliance.errors import Conflict, InvalidInput
from appliance.models import User, UserRole, UserSource

MAX_USERNAME_LENGTH = 200


def create_local_admin(
    sessions: sessionmaker[Session],
    cfg: AuthConfig,
    clock: Clock,
    username: str,
    password: str,
    display_name: str | None = None,
) -> int:
    """Create (or reset the password of) the local system administrator; returns the user id.

    :raises InvalidInput: for a weak password or when local admins are disabled.
    :raises Conflict: when a directory person has this name.
    """
    if not cfg.local_admin_enabled:
        raise InvalidInput("auth.local_admin_enabled is false: the local administrator is disabled.")
    username = username.strip()
    if (
        not username
        or len(username) > MAX_USERNAME_LENGTH
        or any(ord(c) < 33 for c in username)
        or not is_storable(username)
    ):
        raise InvalidInput("The user name must be 1-200 visible characters without spaces.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"The password must be at most {MAX_PASSWORD_LENGTH} characters.")
    if not is_storable(password):
        # a NUL is refused at every sign-in, and a lone surrogate is no character at all
        raise InvalidInput("The password holds characters that cannot be used to sign in.")
    if display_name is not None and not is_storable(display_name):
        raise InvalidInput("The display name holds characters that cannot be stored; use plain text.")
    passwords.check_strength(password, username)
    now = clock.now()
    with transaction(sessions) as session:
        user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
        if user is not None and user.source is not UserSource.LOCAL:
            raise Conflict(f"{username!r} is a directory account; choose another name.")
        action = "auth.local_admin_password_reset"
        if user is None:
            action = "auth.local_admin_created"
            user = User(
                username=username,
                source=UserSource.LOCAL,
                display_name=display_name or username,
                created_at=now,
                updated_at=now,
                active=True,
            )
            user.roles = [UserRole(role=Role.SYSTEM_ADMIN)]
            session.add(user)
        user.password_hash = passwords.hash_password(password)
        user.updated_at = now
        user.active = True
        session.flush()
        end_access(session, user.id, now)
        append_event(
            session,
            AuditRecord(
                action=action,
                occurred_at=now,
                actor_name="appliance admin create",
                object_type="user",
                object_id=str(user.id),
                details={"username": username},
            ),
        )
        return user.id
