"""`Clock`: the same test bodies against SystemClock and the tests' FakeClock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from appliance.clock import Clock, SystemClock
from tests.fakes.clock import FakeClock


@pytest.fixture(params=["system", "fake"])
def clock(request: pytest.FixtureRequest) -> Clock:
    return SystemClock() if request.param == "system" else FakeClock()


def test_now_is_timezone_aware_utc(clock: Clock) -> None:
    now = clock.now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)


def test_time_never_goes_back(clock: Clock) -> None:
    readings = [clock.now() for _ in range(1000)]
    assert readings == sorted(readings)


def test_now_is_near_the_real_time_when_not_moved(clock: Clock) -> None:
    # certificates, CRLs and cookies made at the clock's time are checked by libraries
    # against the real time, so a fake starts there too
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(minutes=1)


# What only the fake can do: be set and moved by the test.

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_fake_stands_still_until_moved() -> None:
    clock = FakeClock(T0)
    assert clock.now() == clock.now() == T0
    clock.advance(timedelta(minutes=9, seconds=1))
    assert clock.now() == T0 + timedelta(minutes=9, seconds=1)


def test_fake_can_be_set_backwards_but_not_advanced_backwards() -> None:
    clock = FakeClock(T0)
    clock.set(T0 - timedelta(days=2))
    assert clock.now() == T0 - timedelta(days=2)
    with pytest.raises(ValueError, match="forward only"):
        clock.advance(timedelta(seconds=-1))
    assert clock.now() == T0 - timedelta(days=2)


def test_fake_answers_in_utc_and_refuses_naive_times() -> None:
    beijing = timezone(timedelta(hours=8))
    clock = FakeClock(datetime(2026, 11, 23, 16, 0, tzinfo=beijing))
    assert clock.now() == T0 and clock.now().utcoffset() == timedelta(0)
    for naive in (datetime(2026, 11, 23, 8, 0), datetime.now()):
        with pytest.raises(ValueError, match="timezone-aware"):
            FakeClock(naive)
        with pytest.raises(ValueError, match="timezone-aware"):
            clock.set(naive)
    assert clock.now() == T0
