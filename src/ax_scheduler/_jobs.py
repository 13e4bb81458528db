"""What a trial runs, independent of where it runs."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FunctionObjective:
    """A Python callable ``fn(parameterization) -> result``.

    Attributes:
        fn: The objective. Must be picklable by cloudpickle to run in a process
            pool (functions defined in ``__main__``, closures and lambdas are).
    """

    fn: Callable[[dict[str, Any]], Any]

    @property
    def is_async(self) -> bool:
        """True for ``async def`` objectives, which run on the event loop itself."""
        return inspect.iscoroutinefunction(self.fn)

    @property
    def name(self) -> str:
        return getattr(self.fn, "__qualname__", repr(self.fn))


Objective = FunctionObjective


@dataclass(frozen=True)
class Job:
    """One trial's work, handed to a runner.

    Attributes:
        trial_index: The Ax trial this job evaluates.
        parameters: The trial's parameterization.
        objective: What to run.
        name: A readable, unique name (``<experiment>-trial-<index>``) for
            process titles, queue entries and container names.
        info: Runner-specific facts to record with the trial (job id, host ...);
            a runner may fill it in while the job runs.
    """

    trial_index: int
    parameters: dict[str, Any]
    objective: Objective
    name: str
    info: dict[str, Any] = field(default_factory=dict)
