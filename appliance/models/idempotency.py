"""Answers to requests sent with an Idempotency-Key, kept so a retry gets the first answer."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from appliance.models.base import Base


class IdempotentResult(Base):
    __tablename__ = "idempotent_results"
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    operation: Mapped[str] = mapped_column(String(100))
    """What was asked (e.g. sign:12:34), so one key cannot be replayed for another request."""
    request_sha256: Mapped[str] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(Text)
    """JSON of the first answer."""
    created_at: Mapped[datetime] = mapped_column(index=True)
