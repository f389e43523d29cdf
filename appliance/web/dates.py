"""Date fields of the filter forms as the instants the queries compare with (UTC)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta


def start_of(day: date | None) -> datetime | None:
    """The first instant of `day`: a "from" date."""
    return datetime.combine(day, time.min, tzinfo=UTC) if day is not None else None


def end_of(day: date | None) -> datetime | None:
    """The first instant after `day`: an "until" date, which the forms mean inclusively."""
    return start_of(day + timedelta(days=1)) if day is not None else None
