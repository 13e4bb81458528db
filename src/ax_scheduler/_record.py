"""Recording what became of each trial in Ax, on the Ax thread.

Every method of :class:`Recorder` runs on the scheduler's Ax thread (the event
loop hands them over with ``Context.call_ax``): they call Ax, keep the tally the
run loop reads (which trials ended, failed, were abandoned), count the progress
display's outcomes and best values, and log each outcome.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ._ax import AxAdapter
from ._exceptions import InfrastructureError, ResultError, TrialError, TrialTimeoutError
from ._outcomes import Failed, Outcome, Progress, Stopped
from ._results import describe_metrics, parse_result
from ._runmetadata import describe_job
from ._table import objective_directions

logger = logging.getLogger("ax_scheduler")


class Recorder:
    """Completes, fails and abandons trials in Ax, and keeps the tally.

    Args:
        ax: The Ax client, wrapped.
        runner: The runner's kind, for log lines.
        progress: The live counters to update.

    Attributes:
        ended: Trials recorded COMPLETED, FAILED or EARLY_STOPPED.
        failed: Trial index -> failure reason.
        abandoned: Trial index -> why it was cancelled.
        early_stopped: Trial index -> the early-stopping strategy's reason.
        values: Trial index -> its recorded metric means, for completed trials.
    """

    def __init__(self, ax: AxAdapter, runner: str, progress: Progress) -> None:
        self._ax = ax
        self._runner = runner
        self._progress = progress
        self.ended: set[int] = set()
        self.failed: dict[int, str] = {}
        self.abandoned: dict[int, str] = {}
        self.early_stopped: dict[int, str] = {}
        self.values: dict[int, dict[str, float]] = {}
        self._ignored_metrics: set[str] = set()  # warned about once
        self._directions: dict[str, str] | None = None  # objective -> "minimize"/"maximize"

    def record(
        self,
        index: int,
        outcome: Outcome,
        seconds: float,
        info: dict[str, Any],
        progression: float | None = None,
    ) -> bool:
        """Complete, fail or early-stop the trial in Ax with its job's ``info``, and log it.

        Args:
            progression: The trial's last reported step, if it reported: its final
                result is recorded at that step of its curve.

        Returns:
            Whether the trial is COMPLETED (a result Ax cannot take fails it).
        """
        self._ax.note(index, **{"finished_at": time.time(), **info})
        if isinstance(outcome, Stopped):
            if self._early_stop(index, outcome.reason, seconds, info) and progression is not None:
                self._progress.last_steps.append(("EARLY_STOPPED", progression))
            return False
        if isinstance(outcome, Failed):
            error: Exception | None = outcome.error
        else:
            error = self._complete(index, outcome.value, seconds, info, progression)
        if error is None:
            return True
        self._fail_and_log(index, error, seconds, info)
        return False

    def abandon(self, index: int, reason: str, info: dict[str, Any]) -> None:
        """Mark the trial ABANDONED, keeping where its job ran."""
        self._ax.note(index, **{"finished_at": time.time(), **info})
        self._ax.abandon(index, reason)
        self.abandoned[index] = reason
        self._progress.abandoned += 1

    def fail(self, index: int, reason: str, kind: str, **facts: Any) -> None:
        """Mark the trial FAILED with its reason, kind and other facts."""
        self._ax.note(index, failure_kind=kind, **facts)
        self._ax.fail(index, reason)
        self.failed[index] = reason
        self.ended.add(index)

    def _early_stop(self, index: int, reason: str, seconds: float, info: dict[str, Any]) -> bool:
        """EARLY_STOPPED with the data it reported; ABANDONED if it has none (Ax refuses).

        Returns:
            Whether it is EARLY_STOPPED.
        """
        where = describe_job(self._runner, info)
        if not self._ax.has_data(index):
            why = f"stopped early before it reported any data: {reason}"
            self._ax.abandon(index, why)
            self.abandoned[index] = why
            self._progress.abandoned += 1
            logger.warning("trial %d abandoned: %s (%s)", index, why, where)
            return False
        self._ax.early_stop(index, reason)
        self.early_stopped[index] = reason
        self.ended.add(index)
        self._progress.early_stopped += 1
        logger.info("trial %d stopped early after %.2f s (%s): %s", index, seconds, where, reason)
        return True

    def _complete(
        self,
        index: int,
        value: Any,
        seconds: float,
        info: dict[str, Any],
        progression: float | None = None,
    ) -> Exception | None:
        """Give Ax the trial's metrics. Returns: None, or why the result was refused."""
        try:
            metrics, unknown = parse_result(value, self._ax.metric_spec())
            self._warn_ignored(index, unknown)
            self._ax.complete(index, metrics, progression)
        except ResultError as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 - Ax refused the data
            return TrialError(f"Ax rejected the result {value!r}: {type(exc).__name__}: {exc}")
        self.ended.add(index)
        self.values[index] = {name: mean for name, (mean, _) in metrics.items()}
        if progression is not None:
            self._progress.last_steps.append(("COMPLETED", progression))
        self._progress.completed += 1
        self._track_best(metrics)
        logger.info(
            "trial %d completed in %.2f s (%s): %s",
            index,
            seconds,
            describe_job(self._runner, info),
            ", ".join(f"{name}={mean:.6g}" for name, (mean, _) in metrics.items()),
        )
        return None

    def _fail_and_log(
        self, index: int, error: Exception, seconds: float, info: dict[str, Any]
    ) -> None:
        self.fail(index, str(error), _failure_kind(error))
        self._progress.failed += 1
        details = getattr(error, "details", None)  # a worker's traceback, say
        logger.error(
            "trial %d failed after %.2f s (%s): %s%s",
            index,
            seconds,
            describe_job(self._runner, info),
            error,
            f"\n{details}" if details else "",
        )

    def _warn_ignored(self, index: int, unknown: Any) -> None:
        """Metrics the experiment does not track are dropped: say so once per metric."""
        if unknown and not self._ignored_metrics.issuperset(unknown):
            self._ignored_metrics.update(unknown)
            logger.warning(
                "trial %d returned metrics the experiment does not track, ignored"
                " (add them as tracking metrics to keep them): %s",
                index,
                describe_metrics(unknown),
            )

    def _track_best(self, metrics: dict[str, tuple[float, float | None]]) -> None:
        """Update the best observed value of each objective."""
        if self._directions is None:
            self._directions = objective_directions(self._ax.experiment)
        for name, direction in self._directions.items():
            if name not in metrics:
                continue
            value, best = metrics[name][0], self._progress.best.get(name)
            if best is None or (value < best if direction == "minimize" else value > best):
                self._progress.best[name] = value

    def outcome_of(self, index: int) -> tuple[str, dict[str, Any]]:
        """The event kind and data of the trial's recorded outcome."""
        if index in self.values:
            return "trial_completed", {"metrics": self.values[index]}
        if index in self.early_stopped:
            return "trial_early_stopped", {"reason": self.early_stopped[index]}
        if index in self.failed:
            return "trial_failed", {"reason": self.failed[index]}
        return "trial_abandoned", {"reason": self.abandoned.get(index, "")}


def _failure_kind(error: Exception) -> str:
    """How a failure is classified in the trial's run metadata."""
    if isinstance(error, TrialTimeoutError):
        return "timeout"
    if isinstance(error, InfrastructureError):
        return "infrastructure"
    return "objective"
