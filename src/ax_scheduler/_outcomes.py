"""The values the core hands out: a trial's outcome, a run's summary, live progress.

Plain data, with no Ax and no asyncio in them, so the progress display, the
report and users' code can use them without importing the core.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ._savings import early_stopping_savings

#: What ``run_optimization`` returns: the best parameterization, the Pareto set, or None.
Best = dict[str, Any] | list[dict[str, Any]] | None

#: Why trials were cancelled when the user pressed Ctrl-C or cancelled the task.
CANCELLED_BY_USER = "cancelled by user"
#: How the reason starts for a trial whose job could not outlive the driver (resume).
DRIVER_RESTARTED = "driver restarted"


@dataclass(frozen=True)
class Completed:
    """A trial's job returned.

    Attributes:
        value: The objective's raw result, not yet checked against the metrics
            (a result Ax cannot take still fails the trial when it is recorded).
    """

    value: Any


@dataclass(frozen=True)
class Failed:
    """A trial's job failed.

    Attributes:
        error: Why: a :class:`~ax_scheduler.TrialError` (its subclass says whether
            the objective, the infrastructure or a timeout was to blame).
    """

    error: Exception


@dataclass(frozen=True)
class Stopped:
    """A trial's job ended after the early-stopping strategy stopped it.

    Attributes:
        reason: The strategy's reason.
    """

    reason: str


#: How a trial that ran to its end ended (a cancelled one has no outcome: it is abandoned).
Outcome = Completed | Failed | Stopped


@dataclass
class Progress:
    """Live counters of the current run, for the progress display.

    The event loop updates ``queued`` and ``running``; the Ax thread updates the
    outcomes and ``best``; each field has one writer, so readers on other threads
    (the display's refresh thread) see whole values.

    Attributes:
        total: Trials the current ``run_optimization`` call runs (0 outside one).
        started: ``time.monotonic()`` when it began.
        queued: Trials generated and waiting for a free slot.
        running: Trials handed to the runner and not yet recorded.
        completed: Trials of the current run recorded COMPLETED.
        failed: Trials of the current run recorded FAILED.
        abandoned: Trials of the current run recorded ABANDONED (cancelled).
        early_stopped: Trials of the current run recorded EARLY_STOPPED.
        last_steps: ``(status, last step)`` of every trial recorded COMPLETED or
            EARLY_STOPPED after reporting (any run): what ``compute_saved`` is
            estimated from.
        best: Objective metric -> the best value observed so far (any run).
    """

    total: int = 0
    started: float = field(default_factory=time.monotonic)
    queued: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    abandoned: int = 0
    early_stopped: int = 0
    last_steps: list[tuple[str, float]] = field(default_factory=list)
    best: dict[str, float] = field(default_factory=dict)

    @property
    def compute_saved(self) -> float | None:
        """The share of compute early stopping saved, as Ax estimates it, or None
        before a trial was stopped and a completed one reported."""
        savings = early_stopping_savings(list(self.last_steps))  # appended to by the Ax thread
        return None if savings is None else savings.share

    @property
    def ended(self) -> int:
        """Trials of the current run that have an outcome."""
        return self.completed + self.failed + self.abandoned + self.early_stopped

    def begin(self, total: int) -> None:
        """A new run of ``total`` trials starts; trials still running carry over."""
        self.total, self.started = total, time.monotonic()
        self.completed = self.failed = self.abandoned = self.early_stopped = 0


@dataclass(frozen=True)
class RunSummary:
    """What one ``run_optimization`` call did.

    Attributes:
        trials: The trials it ran (re-attached ones included), in start order.
        completed: Those COMPLETED in Ax.
        failed: Those FAILED, with their reasons.
        abandoned: Those ABANDONED (cancelled), with their reasons.
        timed_out: Whether the call's ``timeout`` was reached.
        on_timeout: What happened to running trials at the timeout:
            ``"cancel"`` or ``"finish"`` (None if it was not reached).
        early_stopped: Those EARLY_STOPPED, with the strategy's reasons.
        stopped_because: Why the run ended before ``max_trials`` trials, or None:
            Ax's generation strategy was exhausted, the global-stopping strategy or
            ``stop_when`` ended it (the message says which, and why).
    """

    trials: list[int]
    completed: list[int]
    failed: dict[int, str]
    abandoned: dict[int, str]
    timed_out: bool = False
    on_timeout: str | None = None
    early_stopped: dict[int, str] = field(default_factory=dict)
    stopped_because: str | None = None
