"""Retrying with exponential back-off: the one loop the core and the runners share.

Each retrying place (a trial's infrastructure failures, an SSH reconnect, an
``sbatch`` that failed) states its policy as a :class:`Backoff` and iterates its
attempts; the waits between them go through the injected clock::

    async for attempt in policy.attempts(clock):
        try:
            return await connect()
        except Unreachable:
            if attempt.is_last:
                raise
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ._clock import REAL_CLOCK, Clock


@dataclass(frozen=True)
class Attempt:
    """One attempt of a retried operation.

    Attributes:
        number: 0 for the first try, 1 for the first retry, ...
        is_last: No attempt follows this one.
        delay: Seconds waited before it (0 for the first).
    """

    number: int
    is_last: bool
    delay: float


@dataclass(frozen=True)
class Backoff:
    """``retries`` retries after the first try, waiting ``first``, ``first * factor``,
    ... seconds (at most ``cap``) before each.

    Attributes:
        retries: Retries after the first try (0: try once).
        first: Seconds before the first retry.
        factor: Growth of the wait from one retry to the next.
        cap: The longest wait.
    """

    retries: int
    first: float = 1.0
    factor: float = 2.0
    cap: float = math.inf

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        return float(min(self.first * self.factor ** (retry - 1), self.cap))

    async def attempts(self, clock: Clock = REAL_CLOCK) -> AsyncIterator[Attempt]:
        """Yield each attempt, having waited its delay; the caller stops when it succeeds."""
        for number in range(self.retries + 1):
            delay = self.delay(number) if number else 0.0
            if delay:
                await clock.sleep(delay)
            yield Attempt(number, number == self.retries, delay)
