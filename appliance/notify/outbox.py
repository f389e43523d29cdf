"""Writing notifications inside the caller's transaction, and the person's inbox.

Nothing here commits: a notice about a change commits or rolls back with the change. Mail
goes out after the commit (`delivery.deliver_due_mail`), so a rolled-back change never
mails anyone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from appliance.db import transaction
from appliance.models import User
from appliance.models.notify import MailStatus, Notification
from appliance.notify.messages import Message, known_kinds, render_message


@dataclass(frozen=True)
class InboxItem:
    id: int
    kind: str
    created_at: datetime
    read: bool
    message: Message


def notify_user(
    session: Session, user: User, kind: str, params: dict[str, Any], *, now: datetime, mail: bool
) -> Notification:
    """An in-app notice for `user`, and a mail to them when `mail` is on and they have an address."""
    if kind not in known_kinds():
        raise ValueError(f"no message text for notification kind {kind!r}")
    mail_to = user.email if mail and user.email and user.anonymised_at is None else None
    notification = Notification(
        user_id=user.id,
        kind=kind,
        params=json.dumps({"name": user.display_name, **params}, sort_keys=True, ensure_ascii=False),
        created_at=now,
        mail_to=mail_to,
        mail_status=MailStatus.PENDING if mail_to else MailStatus.NONE,
        mail_next_attempt_at=now if mail_to else None,
    )
    session.add(notification)  # written with the caller's next flush: a sweep tells hundreds at once
    return notification


def open_inbox(
    sessions: sessionmaker[Session], user_id: int, *, now: datetime, locale: str | None, limit: int = 50
) -> list[InboxItem]:
    """The person's notices, newest first, in `locale`; opening the inbox marks them read
    (`read` tells which ones were read before)."""
    with transaction(sessions) as session:
        rows = list(
            session.execute(
                select(Notification)
                .where(Notification.user_id == user_id)
                .order_by(Notification.created_at.desc(), Notification.id.desc())
                .limit(limit)
            ).scalars()
        )
        items = [
            InboxItem(
                row.id,
                row.kind,
                row.created_at,
                row.read_at is not None,
                render_message(row.kind, json.loads(row.params), locale),
            )
            for row in rows
        ]
        for row in rows:
            row.read_at = row.read_at or now
    return items


def count_unread(sessions: sessionmaker[Session], user_id: int) -> int:
    with sessions() as session:
        return int(
            session.execute(
                select(func.count())
                .select_from(Notification)
                .where(Notification.user_id == user_id, Notification.read_at.is_(None))
            ).scalar_one()
        )
