"""A virtual clock for tests: sleeps return at once, timeouts fire in virtual time."""

from __future__ import annotations

import asyncio
from types import TracebackType

from ._clock import Clock, Deadline


class FakeClock(Clock):
    """Time that moves only when something sleeps (or a test calls :meth:`advance`).

    ``await clock.sleep(s)`` moves the clock ``s`` seconds forward and returns at
    once, after letting other tasks run; a :meth:`timeout` whose deadline the
    clock passes cancels its block, which then raises ``TimeoutError`` as
    ``asyncio.timeout`` would. Back-off, polling and timeouts are thus tested
    exactly: ``clock.sleeps`` lists every wait asked for, in order.

    Args:
        start: The clock's first reading.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._deadlines: set[_FakeDeadline] = set()
        #: Every ``sleep`` asked for, in seconds, in order.
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)  # a real yield: other tasks run, as in a real wait

    def advance(self, seconds: float) -> None:
        """Move the clock forward; deadlines it passes cancel their blocks."""
        self._now += max(0.0, seconds)
        for deadline in [d for d in self._deadlines if d.due <= self._now]:
            deadline.fire()

    def timeout(self, seconds: float | None) -> Deadline:
        return _FakeDeadline(self, seconds)


class _FakeDeadline:
    def __init__(self, clock: FakeClock, seconds: float | None) -> None:
        self._clock = clock
        self.due = float("inf") if seconds is None else clock.now() + seconds
        self._task: asyncio.Task[object] | None = None
        self._fired = False

    async def __aenter__(self) -> _FakeDeadline:
        self._task = asyncio.current_task()
        self._clock._deadlines.add(self)
        if self.due <= self._clock.now():
            self.fire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._clock._deadlines.discard(self)
        ours = self._fired and exc_type is asyncio.CancelledError and self._task is not None
        if ours and self._task is not None and self._task.uncancel() == 0:
            raise TimeoutError  # our cancellation alone, not someone else's too
        return None

    def fire(self) -> None:
        self._clock._deadlines.discard(self)
        if not self._fired and self._task is not None:
            self._fired = True
            self._task.cancel()

    def expired(self) -> bool:
        return self._fired
