"""The notification outbox: written in the transaction of the change it reports, read as
the person's in-app inbox, and delivered by mail after the commit by a scheduled job."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from appliance.models.base import Base, enum_column


class MailStatus(StrEnum):
    NONE = "none"
    """No mail for this one (the person has no address, or mail is off)."""
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    """Given up after the last retry; the in-app notice stays."""


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_mail_due", "mail_status", "mail_next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(50))
    params: Mapped[str] = mapped_column(Text, default="{}")
    """JSON of the facts the message is rendered from, in the reader's language."""
    created_at: Mapped[datetime]
    read_at: Mapped[datetime | None]
    mail_to: Mapped[str | None] = mapped_column(String(320))
    mail_status: Mapped[MailStatus] = mapped_column(enum_column(MailStatus, 10), default=MailStatus.NONE)
    mail_attempts: Mapped[int] = mapped_column(default=0)
    mail_next_attempt_at: Mapped[datetime | None]
    mail_sent_at: Mapped[datetime | None]
    mail_last_error: Mapped[str | None] = mapped_column(String(500))
