"""What a trial awaits: its job under ``trial_timeout``, run again after infrastructure failures.

Both wait on the injected clock (``Context.clock``), so the retry back-off and
the timeout are tested exactly, in virtual time, with ``testing.FakeClock``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable
from typing import Any, cast

from ._clock import Clock
from ._config import SchedulerConfig
from ._exceptions import InfrastructureError, TrialTimeoutError
from ._jobs import Job
from ._retry import Attempt, Backoff
from .runners._base import Runner

logger = logging.getLogger("ax_scheduler")


async def with_trial_timeout(
    index: int, work: Awaitable[Any], limit: float | None, clock: Clock
) -> Any:
    """Await ``work`` for at most ``limit`` seconds (None: no limit).

    Raises:
        TrialTimeoutError: The limit was reached; ``work`` was cancelled.
    """
    deadline = clock.timeout(limit)
    try:
        async with deadline:
            return await work
    except TimeoutError:
        if not deadline.expired():
            raise
        raise TrialTimeoutError(
            f"timeout: trial {index} ran longer than trial_timeout={limit:g} s"
        ) from None


async def with_retries(
    job: Job, work: Awaitable[Any], runner: Runner, config: SchedulerConfig, clock: Clock
) -> Any:
    """Await the trial's work; after infrastructure failures, run it again on fresh jobs.

    ``max_retries`` times, ``retry_delay`` seconds after the first failure and
    twice as long after each next one. The first try is awaited here, outside
    the retry loop: a trial that does not fail pays for nothing more.

    Raises:
        InfrastructureError: It failed ``max_retries`` + 1 times (or the runner
            already resubmitted it as often as allowed).
    """
    try:
        return await work
    except InfrastructureError as exc:
        failure = exc
    return await _run_again(job, failure, runner, config, clock)


async def _run_again(
    job: Job, failure: InfrastructureError, runner: Runner, config: SchedulerConfig, clock: Clock
) -> Any:
    policy = Backoff(config.max_retries, first=config.retry_delay, factor=2.0)
    # Closed on the way out, not left to the garbage collector (which costs a task).
    attempts = cast("AsyncGenerator[Attempt, None]", policy.attempts(clock))
    async with contextlib.aclosing(attempts):
        async for attempt in attempts:
            if attempt.number:  # attempt 0 is the first try, which failed
                await job.record_info()  # the fresh job's handle replaces the old one
                try:
                    return await runner.run(job)
                except InfrastructureError as exc:
                    failure = exc
            if not failure.retryable or attempt.is_last:
                if attempt.number:
                    failure.args = (
                        f"{failure} (after {attempt.number} retries)",
                        *failure.args[1:],
                    )
                raise failure
            _note_retry(job, failure, attempt.number + 1, policy)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _note_retry(job: Job, failure: InfrastructureError, retry: int, policy: Backoff) -> None:
    """Record and log why the trial runs again, before the back-off wait."""
    job.info.update(retries=retry, last_retry_reason=str(failure))
    logger.warning(
        "trial %d: %s; running it again on a fresh job in %g s (retry %d of %d)",
        job.trial_index,
        failure,
        policy.delay(retry),
        retry,
        policy.retries,
    )
