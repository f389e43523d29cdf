"""Scheduled job bookkeeping: one row per job, claimed atomically so one node runs it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from appliance.models.base import Base


class JobRun(Base):
    __tablename__ = "job_runs"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    locked_by: Mapped[str | None] = mapped_column(String(200))
    """host:pid of the runner holding the job, while it runs."""
    locked_until: Mapped[datetime | None]
    """A runner that died leaves its claim; it lapses at this time."""
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    last_status: Mapped[str | None] = mapped_column(String(20))
    last_summary: Mapped[str | None] = mapped_column(Text)
