"""FakeRunner: a runner whose trials end as a table or a function says, in virtual time."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._clock import REAL_CLOCK, Clock
from ._exceptions import ConfigError, ObjectiveError, TrialError
from ._jobs import Job
from .runners._base import Runner

#: How one run ends: after ``delay`` seconds, with a result or an exception.
Script = Callable[[dict[str, Any]], tuple[float, Any]]
Row = tuple[Mapping[str, Any], float, Any]


class FakeRunner(Runner):
    """A runner that runs nothing: each trial ends the way a table or a function says.

    For unit tests of campaign code and of the scheduler's own logic: with a
    :class:`FakeClock` shared with the scheduler, a run of fifty 10-second trials
    takes milliseconds, retries and timeouts included. The objective set on the
    scheduler is not called (``async def`` objectives excepted: the scheduler
    runs those on its loop itself, not on a runner).

    An outcome is what the objective returned (``{"metric": value}``, a bare
    number ...) or an exception instance to raise: a
    :class:`~ax_scheduler.TrialError` as is (``InfrastructureError`` to exercise
    retries), any other exception the way a real runner reports a failing
    objective (``ValueError("diverged")`` fails the trial with
    ``"ValueError: diverged"``).

    Args:
        outcomes: Either rows ``(parameters, delay, outcome)``: a run of a
            parameterization takes its next row (the last one repeats), so
            ``[(p, 0, InfrastructureError("node lost")), (p, 0, {"y": 1.0})]``
            fails once and then succeeds; or a function ``parameters -> (delay,
            outcome)``, for trials whose parameters Ax generates.
        capacity: How many trials run at once.
        clock: What delays are waited on: the scheduler's clock.

    Attributes:
        calls: The parameters of every run, in start order (a retry is a run).
        cancelled: The parameters of the runs that were cancelled.
        running: Runs under way now.
        max_concurrency: The most runs that were under way at once.

    Raises:
        LookupError: From a run whose parameters no row has (the trial fails
            with an internal error that names them).

    Example:
        A campaign of fifty 10-second trials, tested in milliseconds::

            from ax_scheduler import AxScheduler, InfrastructureError
            from ax_scheduler.testing import FakeClock, FakeRunner

            def outcome(parameters):
                if parameters["x"] > 1.9:
                    return 10.0, InfrastructureError("node lost")  # retried
                return 10.0, {"objective": parameters["x"] ** 2}

            clock = FakeClock()
            runner = FakeRunner(outcome, capacity=4, clock=clock)
            config = {"trial_timeout": 60, "progress": False}
            with AxScheduler(ax_client, runner, config, clock=clock) as scheduler:
                scheduler.set_objective_function(my_objective)  # not called
                best = scheduler.run_optimization(max_trials=50)
            assert runner.max_concurrency <= 4

        With :class:`FakeClock`, every sleep moves the one virtual time forward,
        so the delays of trials that run side by side add up: use delays to
        order events and to reach timeouts, not to measure parallel speed-ups.
    """

    kind = "fake"

    def __init__(
        self, outcomes: Sequence[Row] | Script, *, capacity: int = 1, clock: Clock = REAL_CLOCK
    ) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ConfigError(f"capacity must be an int >= 1, got {capacity!r}")
        self._script = outcomes if callable(outcomes) else _table(outcomes)
        self._capacity = capacity
        self._clock = clock
        self.calls: list[dict[str, Any]] = []
        self.cancelled: list[dict[str, Any]] = []
        self.running = 0
        self.max_concurrency = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    async def run(self, job: Job) -> Any:
        """Wait the parameterization's delay on the clock, then return or raise its outcome."""
        parameters = dict(job.parameters)
        self.calls.append(parameters)
        delay, outcome = self._script(parameters)
        self.running += 1
        self.max_concurrency = max(self.max_concurrency, self.running)
        try:
            if delay:
                await self._clock.sleep(delay)
        except asyncio.CancelledError:
            self.cancelled.append(parameters)
            raise
        finally:
            self.running -= 1
        if isinstance(outcome, BaseException):
            raise _as_trial_error(outcome)
        return outcome

    def __repr__(self) -> str:
        return f"FakeRunner(capacity={self._capacity})"


def _table(rows: Sequence[Row]) -> Script:
    """A script that plays each parameterization's rows in order, the last one repeating."""
    plays: dict[tuple[Any, ...], list[tuple[float, Any]]] = {}
    for parameters, delay, outcome in rows:
        plays.setdefault(_key(parameters), []).append((delay, outcome))
    runs: dict[tuple[Any, ...], int] = {}

    def play(parameters: dict[str, Any]) -> tuple[float, Any]:
        key = _key(parameters)
        if key not in plays:
            raise LookupError(f"FakeRunner has no row for the parameters {parameters!r}")
        done = runs[key] = runs.get(key, 0) + 1
        return plays[key][min(done, len(plays[key])) - 1]

    return play


def _key(parameters: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted(parameters.items()))


def _as_trial_error(outcome: BaseException) -> BaseException:
    """What to raise for an exception outcome.

    A TrialError is copied (the scheduler adds to a final error's message, and a
    row may be played many times); any other exception is the objective's
    failure, reported as the real runners report it.
    """
    if isinstance(outcome, TrialError):
        try:
            return copy.copy(outcome)
        except Exception:  # noqa: BLE001 - one that cannot be rebuilt from its args
            return outcome
    if isinstance(outcome, Exception):
        return ObjectiveError(f"{type(outcome).__name__}: {outcome}")
    return outcome  # KeyboardInterrupt and the like, as they are
