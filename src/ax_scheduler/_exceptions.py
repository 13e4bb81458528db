"""The errors ax-scheduler raises.

Every error derives from :class:`AxSchedulerError`, so ``except AxSchedulerError``
catches all of them:

    AxSchedulerError
    ├── ConfigError (also ValueError)              a bad option or argument value, an unknown key
    ├── UsageError (also RuntimeError)             the API used in a way it does not support
    │   └── EventLoopMismatchError                 async API used from a second event loop
    ├── InvalidParametersError (also ValueError)   parameters outside the search space
    ├── ObjectiveNotSetError                       run before set_objective_function()
    ├── SchedulerClosedError                       used after close()/aclose()
    ├── OptimizationStalledError                   Ax refuses candidates and nothing can unblock it
    ├── FailureRateExceededError                   too many of a run's trials failed
    ├── CheckpointError (also ValueError)          a checkpoint is missing, corrupt, or another run's
    ├── SpecError                                  an ax-scheduler experiment file is invalid
    ├── TrialStoppedEarly                          raised by report() in a trial the strategy stopped
    ├── RunnerError                                a backend cannot run trials (engine down, no image)
    │   └── CommandTimeout                         a cluster or engine command hung and was killed
    └── TrialError                                 one trial failed; the run goes on
        ├── ObjectiveError                         the objective raised
        ├── ResultError (also ValueError)          the objective returned something unusable
        ├── InfrastructureError                    the trial could not run (retried)
        │   └── WorkerDiedError                    the process running the trial died
        └── TrialTimeoutError                      the trial ran longer than trial_timeout

One rule for what is raised where: a bad value (an option, an argument) is a
``ConfigError``, an argument of the wrong kind a ``TypeError``, a call the API does
not support (nesting batches, closing from the wrong place) a ``UsageError``.

A :class:`TrialError` is not raised to the caller: the scheduler catches it, marks
the trial FAILED in Ax with ``str(error)`` as the reason, logs it, and continues.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence


class AxSchedulerError(Exception):
    """Base class of every error raised by ax-scheduler."""


class ConfigError(AxSchedulerError, ValueError):
    """An option's or an argument's value is invalid, or a config key is unknown."""


class UsageError(AxSchedulerError, RuntimeError):
    """The API was used in a way it does not support (a nested batch, say)."""


class InvalidParametersError(AxSchedulerError, ValueError):
    """A parameterization does not belong to the experiment's search space."""


class ObjectiveNotSetError(AxSchedulerError):
    """Trials were requested before an objective was set."""


class SchedulerClosedError(AxSchedulerError):
    """The scheduler was used after it was closed."""


class EventLoopMismatchError(UsageError):
    """The scheduler's async API was used from a different event loop."""


class OptimizationStalledError(AxSchedulerError):
    """Ax refuses to generate a candidate and no running trial can change that."""


class FailureRateExceededError(AxSchedulerError):
    """Too many of a run's trials failed (``tolerated_failure_rate``); the run stopped.

    Attributes:
        failures: Trial index -> failure reason, for every failed trial of the run.
    """

    def __init__(self, message: str, failures: dict[int, str]) -> None:
        super().__init__(message)
        self.failures = failures


class RunnerError(AxSchedulerError):
    """A runner cannot run trials at all: its engine is down, an image is missing."""


class CommandTimeout(RunnerError):
    """A command (``sbatch``, ``sacct``, ``docker version`` ...) ran longer than its
    timeout, so it was killed: the controller or the engine hangs.

    Attributes:
        command: The command line, cut short for messages (an sacct of many job
            ids is long).
        timeout: The seconds it was given.
    """

    def __init__(self, argv: Sequence[str], timeout: float, where: str) -> None:
        command = shlex.join(argv)
        self.command = command if len(command) <= 200 else f"{command[:197]}..."
        self.timeout = timeout
        super().__init__(
            f"`{self.command}` did not finish within {timeout:g} s on {where}, so it was killed"
        )


class TrialError(AxSchedulerError):
    """A single trial failed. Its message becomes the trial's failure reason.

    Attributes:
        details: Longer diagnostic text (a traceback, a stderr tail) for the logs.
    """

    def __init__(self, message: str, *, details: str | None = None) -> None:
        super().__init__(message)
        self.details = details


class ObjectiveError(TrialError):
    """The objective function raised an exception."""


class ResultError(TrialError, ValueError):
    """The objective's return value is missing a metric, not a number, or NaN."""


class InfrastructureError(TrialError):
    """The trial could not run for a reason outside the objective.

    A lost SSH host, a node failure, a preemption, a refused ``sbatch``, a dead
    worker process. The scheduler runs such a trial again on a fresh job, up to
    ``max_retries`` times with back-off, before it counts as failed.

    Attributes:
        retryable: False when the runner already resubmitted the job as often as
            allowed: the scheduler does not retry it once more.
    """

    def __init__(self, message: str, *, details: str | None = None, retryable: bool = True) -> None:
        super().__init__(message, details=details)
        self.retryable = retryable


class WorkerDiedError(InfrastructureError):
    """The worker process running the trial died (segfault, os._exit, OOM kill)."""


class TrialTimeoutError(TrialError):
    """The trial ran longer than the configured ``trial_timeout``."""


class TrialStoppedEarly(AxSchedulerError):
    """Raised inside an objective by :func:`~ax_scheduler.report` once the
    early-stopping strategy stopped its trial.

    An objective that does not catch it ends there; the trial is recorded
    EARLY_STOPPED with the data it reported. One that catches it may clean up
    and return (its result then completes the trial) within ``early_stopping_grace``
    seconds, after which its process is stopped.
    """


class CheckpointError(AxSchedulerError, ValueError):
    """A checkpoint file cannot be resumed: missing, corrupt, or not a checkpoint."""


class SpecError(AxSchedulerError):
    """An experiment file of the ``ax-scheduler`` command is invalid.

    ``str()`` is one ``file:line: key: message`` line per problem.

    Attributes:
        problems: Those lines, one per problem.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
