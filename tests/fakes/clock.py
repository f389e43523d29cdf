"""A clock the test sets and moves; stands in for `appliance.clock.SystemClock`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FakeClock:
    """Time stands still until the test moves it.

    It starts at the real time by default, so certificates, cookies and CRLs made under it
    are valid for the libraries that check them against the real time. Like SystemClock it
    answers in UTC.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = datetime.now(UTC)
        if start is not None:
            self.set(start)

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        """Jump to `moment` (backwards too: a test may replay a past day)."""
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("FakeClock takes timezone-aware datetimes only")
        self._now = moment.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        """Move forward by `delta`; use `set` to go back, so a sign slip cannot do it unseen."""
        if delta < timedelta(0):
            raise ValueError("FakeClock.advance moves forward only; use set() to go back")
        self._now += delta
