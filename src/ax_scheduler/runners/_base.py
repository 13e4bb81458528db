"""The runner protocol: how the scheduler hands a job to a backend.

A runner runs jobs and reports each job's raw result. It knows nothing about Ax:
the scheduler generates trials, hands jobs to :meth:`Runner.run`, and records what
comes back. The local pool, SSH hosts, Slurm and container engines all implement
this one small interface.
"""

from __future__ import annotations

import abc
import contextlib
import shutil
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

import anyio

from .._config import SchedulerConfig
from .._jobs import Job, Objective


class Runner(abc.ABC):
    """Base class of every runner.

    Contract:

    * :attr:`capacity` is how many jobs may run at once; the scheduler never has
      more than that many :meth:`run` calls in flight.
    * :meth:`run` returns the objective's raw return value, or raises a
      :class:`~ax_scheduler.TrialError` subclass for a failure of that one job.
      Any other exception is treated as a bug and fails the trial too.
    * Cancelling the task awaiting :meth:`run` must stop the job (kill the
      process, ``scancel``, ``docker stop``) before the cancellation propagates;
      the cleanup is shielded and time-bounded inside the runner.
    * :meth:`start` prepares resources (warm workers, connections) and is
      idempotent; :meth:`aclose` releases them and stops whatever still runs.
    """

    #: Short name recorded with each trial (``"joblib"``, ``"slurm"`` ...).
    kind: str = "runner"

    #: The objective kinds this runner can run; set_*_objective refuses others.
    objective_types: tuple[type, ...] = ()

    #: True if objectives run on this machine, in the driver's environment: a
    #: script's interpreter is looked up on the driver's PATH and a container's
    #: volumes on its filesystem when the objective is set. Runners that start
    #: jobs elsewhere (a cluster, SSH hosts) check those there, in ``check_objective``.
    objectives_run_here: bool = True

    #: True if objectives travel to other processes (checked with cloudpickle
    #: when the objective is set, not discovered at the first trial).
    needs_pickling: bool = False

    @property
    @abc.abstractmethod
    def capacity(self) -> int:
        """How many jobs this runner runs at the same time."""

    def use_config(self, config: SchedulerConfig) -> None:  # noqa: B027 - optional hook
        """Take the scheduler's options that concern runners (``monitoring_interval``)."""

    async def start(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Prepare the runner. Called once before the first job; idempotent."""

    async def check_objective(self, objective: Objective) -> None:  # noqa: B027 - optional
        """Check, once before trials run, that this runner can run ``objective``.

        Raises:
            RunnerError: It cannot (a missing container image, say).
        """

    @abc.abstractmethod
    async def run(self, job: Job) -> Any:
        """Run one job to completion and return the objective's raw result.

        Raises:
            TrialError: The job failed (objective raised, worker died, ...).
        """

    async def run_batch(self, jobs: Sequence[Job]) -> list[Awaitable[Any]]:
        """Submit several jobs together; return one awaitable result per job.

        Backends with native batches (Slurm job arrays) override this to submit
        them in one call. The default submits nothing up front: each awaitable is
        a plain :meth:`run` that starts when the scheduler awaits it.
        """
        return [self.run(job) for job in jobs]

    async def reattach(self, job: Job) -> Awaitable[Any] | None:
        """Pick up a job a previous driver started, from the handle in ``job.info``.

        Called when a run resumes from its checkpoint (the runner is started).
        Returns an awaitable of the job's raw result, like :meth:`run` (a job
        still running is waited for; a finished one has its result read), or
        None if this runner's jobs do not outlive the driver: the trial is then
        marked FAILED ("driver restarted").
        """
        return None

    async def remove_files(self, job: Job) -> None:
        """Delete a completed trial's folder (``cleanup_after_completion``).

        Called once the trial's result is in Ax and in the checkpoint. The default
        removes ``job.workdir`` on this machine; runners whose trial folders live
        elsewhere (a cluster, an SSH host) override it.

        Raises:
            OSError: The folder could not be removed.
            RunnerError: The same, on another machine.
        """
        if job.workdir is not None:
            await anyio.to_thread.run_sync(_remove_tree, job.workdir)

    def load(self) -> dict[str, int] | None:
        """How many of this runner's jobs are in each backend state, for the progress display.

        E.g. ``{"pending": 3, "running": 5}`` for a batch system; None (the default)
        when the runner has no states beyond the scheduler's own running/queued.
        Called from the display's thread: read, never modify.
        """
        return None

    async def aclose(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Stop whatever still runs and release resources. Idempotent."""


def _remove_tree(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):  # never made (a threads-only trial)
        shutil.rmtree(path)
