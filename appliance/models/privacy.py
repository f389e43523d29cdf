"""Requests a person files about their personal data, and the answers given."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from appliance.models.base import Base, enum_column


class DataRequestKind(StrEnum):
    CORRECTION = "correction"
    DELETION = "deletion"
    """Deletion where the law allows it (signed records stay for the regulatory period)."""
    CONSENT_WITHDRAWAL = "consent_withdrawal"


class DataRequestStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    """Answered: what was asked was done (or, for directory data, is to be done there)."""
    REFUSED = "refused"
    """Answered: it cannot be done, and the answer says why."""


class DataRequest(Base):
    __tablename__ = "data_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[DataRequestKind] = mapped_column(enum_column(DataRequestKind, 30))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[DataRequestStatus] = mapped_column(enum_column(DataRequestStatus, 10), index=True)
    created_at: Mapped[datetime]
    due_at: Mapped[datetime]
    """The answer is owed by then (privacy.request_working_days after filing)."""
    answered_at: Mapped[datetime | None]
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    answer: Mapped[str | None] = mapped_column(Text)
    answered_by_name: Mapped[str | None] = mapped_column(String(200))


class PrivacyAcceptance(Base):
    """A person's acceptance of one version of the privacy notice, as it was shown."""

    __tablename__ = "privacy_acceptances"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    version: Mapped[str] = mapped_column(String(20))
    sha256: Mapped[str] = mapped_column(String(64))
    """sha256 of the notice's text, in the language it was shown in."""
    locale: Mapped[str] = mapped_column(String(20))
    accepted_at: Mapped[datetime]
    client_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
