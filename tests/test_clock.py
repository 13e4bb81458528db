"""The injected clock and the shared retry policy, exactly, in virtual time."""

from __future__ import annotations

import asyncio

import pytest

from ax_scheduler._retry import Backoff
from ax_scheduler.testing import FakeClock


async def test_fake_sleeps_move_time_and_are_recorded() -> None:
    clock = FakeClock(start=100.0)
    await clock.sleep(2.5)
    await clock.sleep(0.5)
    assert clock.now() == 103.0
    assert clock.sleeps == [2.5, 0.5]


async def test_a_fake_timeout_fires_when_virtual_time_passes_it() -> None:
    clock = FakeClock()
    with pytest.raises(TimeoutError):
        async with clock.timeout(10) as deadline:
            await clock.sleep(4)
            await clock.sleep(7)  # passes the deadline: the block is cancelled here
            await asyncio.sleep(3600)  # never reached
    assert deadline.expired()
    assert clock.now() == 11


async def test_a_fake_timeout_that_is_not_reached_changes_nothing() -> None:
    clock = FakeClock()
    async with clock.timeout(10) as deadline:
        await clock.sleep(9)
    async with clock.timeout(None):
        await clock.sleep(1000)
    assert not deadline.expired()


async def test_someone_elses_cancellation_is_not_taken_for_a_timeout() -> None:
    clock = FakeClock()

    async def body() -> None:
        async with clock.timeout(10):
            await asyncio.sleep(3600)

    task = asyncio.create_task(body())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_backoff_waits_grow_to_the_cap_on_the_injected_clock() -> None:
    clock = FakeClock()
    seen = [a async for a in Backoff(retries=5, first=1.0, cap=5.0).attempts(clock)]
    assert [a.number for a in seen] == [0, 1, 2, 3, 4, 5]
    assert [a.is_last for a in seen] == [False] * 5 + [True]
    assert clock.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0]


async def test_backoff_stops_when_the_caller_succeeds() -> None:
    clock = FakeClock()
    async for attempt in Backoff(retries=3, first=0.5).attempts(clock):
        if attempt.number == 1:
            break
    assert clock.sleeps == [0.5]
    assert Backoff(retries=0).delay(1) == 1.0
