"""Requests counted per client address and endpoint, shared by every worker and node."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from appliance.models.base import Base


class RequestCounter(Base):
    """One fixed window of a request rate limit (see appliance.web.request_limit)."""

    __tablename__ = "request_counters"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    """What is counted: `<limit name>:<client address>`."""
    count: Mapped[int]
    """Requests in the window, stopping at one past the limit."""
    window_started_at: Mapped[datetime] = mapped_column(index=True)
