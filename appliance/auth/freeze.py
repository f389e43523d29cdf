"""Freezing one's own account when misuse is suspected, and lifting it after a check.

Freezing takes effect at once: every web session and API token of the person ends (they are
revoked, and `may_act` refuses a frozen account on every request), signing in is refused,
and so is every workflow command. Only an administrator lifts it: an organisation admin of
the person's organisation, or a system administrator, after checking with the person.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from appliance.audit import AuditRecord, append_event
from appliance.auth.records import ClientInfo
from appliance.db import rows_changed
from appliance.errors import Conflict, NotFound
from appliance.models import ApiToken, User, UserSession
from appliance.notify import notify_user
from appliance.permissions import Action, Scope, require, roles_for, scope_of

FREEZE_LIFTERS = roles_for(Action.LIFT_FREEZES)
NOT_A_LIFTER = "Only organisation and system administrators lift frozen accounts."
NO_SUCH_FROZEN = "There is no frozen account like that (it may have been lifted already)."


@dataclass(frozen=True)
class FrozenAccount:
    user_id: int
    username: str
    display_name: str
    frozen_at: datetime


def freeze_account(session: Session, user: User, client: ClientInfo, now: datetime) -> int:
    """Freeze `user`'s own account; returns how many sessions and tokens it ended.

    :raises Conflict: the account is frozen already.
    """
    if user.frozen_at is not None:
        raise Conflict("Your account is frozen already.")
    user.frozen_at = now
    ended = _revoke(session, UserSession, user.id, now) + _revoke(session, ApiToken, user.id, now)
    append_event(
        session,
        AuditRecord(
            action="auth.account_frozen",
            occurred_at=now,
            actor_user_id=user.id,
            actor_name=user.username,
            object_type="user",
            object_id=str(user.id),
            client_address=client.address,
            user_agent=client.user_agent,
            details={"sessions_and_tokens_ended": ended},
        ),
    )
    return ended


def list_frozen(session: Session, admin: User) -> list[FrozenAccount]:
    """The frozen accounts `admin` may lift, most recently frozen first."""
    _check_lifter(admin)
    rows = session.scalars(_liftable(admin).order_by(User.frozen_at.desc(), User.id))
    return [FrozenAccount(u.id, u.username, u.display_name, u.frozen_at) for u in rows if u.frozen_at]


def _liftable(admin: User) -> Select[Any]:
    """The frozen accounts `admin` may lift: every one for a system admin, else their organisation's."""
    query = select(User).where(User.frozen_at.is_not(None), User.anonymised_at.is_(None))
    if scope_of(admin.role_set(), Action.LIFT_FREEZES) is not Scope.APPLIANCE:
        query = query.where(User.organisation_id == admin.organisation_id, User.organisation_id.is_not(None))
    return query


def lift_freeze(
    session: Session, admin: User, user_id: int, client: ClientInfo, now: datetime, *, mail: bool
) -> FrozenAccount:
    """Lift the freeze on `user_id`; the person is told and may sign in again.

    :raises Forbidden: `admin` lifts no freezes.
    :raises NotFound: no frozen account `admin` may lift (the same answer for both, so an
        organisation admin learns nothing of other organisations' people).
    """
    _check_lifter(admin)
    user = session.scalars(_liftable(admin).where(User.id == user_id).with_for_update()).one_or_none()
    if user is None or user.frozen_at is None:
        raise NotFound(NO_SUCH_FROZEN)
    lifted = FrozenAccount(user.id, user.username, user.display_name, user.frozen_at)
    user.frozen_at = None
    notify_user(session, user, "account_unfrozen", {"admin": admin.display_name}, now=now, mail=mail)
    append_event(
        session,
        AuditRecord(
            action="auth.freeze_lifted",
            occurred_at=now,
            actor_user_id=admin.id,
            actor_name=admin.username,
            object_type="user",
            object_id=str(user.id),
            client_address=client.address,
            user_agent=client.user_agent,
            details={"frozen_at": lifted.frozen_at.isoformat()},
        ),
    )
    return lifted


def _check_lifter(admin: User) -> None:
    require(admin.role_set(), Action.LIFT_FREEZES, NOT_A_LIFTER)


def _revoke(session: Session, table: type[UserSession] | type[ApiToken], user_id: int, now: datetime) -> int:
    return rows_changed(
        session,
        update(table).where(table.user_id == user_id, table.revoked_at.is_(None)).values(revoked_at=now),
    )
