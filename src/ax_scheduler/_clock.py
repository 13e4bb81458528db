"""Time, as the scheduler and the runners see it: one clock, injected.

Everything that waits or measures time for its logic (trial timeouts, retry
back-off, reconnects, Slurm's polling) asks a :class:`Clock`, never ``asyncio``
or ``time`` directly, so tests run that logic exactly and in milliseconds with
:class:`~ax_scheduler.testing.FakeClock`. Time stamps recorded with trials
(``started_at``, ``finished_at``) are wall-clock facts, not logic, and stay
``time.time()``.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Protocol


class Deadline(Protocol):
    """What :meth:`Clock.timeout` returns: an async context manager that cancels
    its block when the time is up, and says whether it did."""

    async def __aenter__(self) -> Deadline: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...

    def expired(self) -> bool:
        """Whether the time ran out (the block was cancelled by this deadline)."""
        ...


class Clock:
    """The real clock: the event loop's time and sleeps."""

    def now(self) -> float:
        """Seconds on a monotonic clock (only differences mean anything)."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        await asyncio.sleep(seconds)

    def timeout(self, seconds: float | None) -> Deadline:
        """A block that raises ``TimeoutError`` after ``seconds`` (None: never)."""
        return asyncio.timeout(seconds)


#: The clock everything uses unless a test injects another.
REAL_CLOCK = Clock()
