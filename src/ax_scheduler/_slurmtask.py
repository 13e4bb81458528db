"""One trial's journey through SlurmRunner: its phase, its job, its outcome.

The runner's own phases (:class:`Phase`) are kept apart from Slurm's states
(:class:`~ax_scheduler._sacct.SlurmState`), which only the watcher records:
once a task is submitted, what Slurm says about it is sacct's word, and what a
terminal state means for the trial is :func:`job_outcome`'s.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from typing import Any

from ._exceptions import TrialError, TrialTimeoutError
from ._jobs import Job
from ._remotejob import TrialFolder
from ._sacct import Outcome, SlurmState
from ._slurm import chunks


class Phase(enum.Enum):
    """Where a trial is in the runner's hands."""

    QUEUED = "waiting to go out with the next array"
    SUBMITTING = "its array is being submitted"
    SUBMITTED = "Slurm has it: the watcher follows it"
    DONE = "its outcome is settled"


@dataclass(eq=False)
class SlurmTask:
    """One trial's journey through Slurm (possibly several jobs, if resubmitted).

    Attributes:
        job: The trial's job.
        future: Its outcome, settled once (:func:`settle`).
        phase: Where it is.
        slurm_id: Its array task (``"123_4"``), once submitted.
        workdir: Its trial directory on the cluster, once its array has one.
        resubmits: How often the cluster failed it and it went out again.
        submitted: Set once its array's sbatch is over, either way.
    """

    job: Job
    future: asyncio.Future[Any]
    phase: Phase = Phase.QUEUED
    slurm_id: str | None = None
    workdir: str = ""
    resubmits: int = 0
    submitted: asyncio.Event = field(default_factory=asyncio.Event)

    def requeue(self) -> None:
        """Back to the queue, as a new job: no Slurm id, a new submission to wait for."""
        self.phase, self.slurm_id, self.submitted = Phase.QUEUED, None, asyncio.Event()


def settle(task: SlurmTask, *, value: Any = None, error: BaseException | None = None) -> None:
    """The task's outcome: its value or its error (the first one settled stays)."""
    task.phase = Phase.DONE
    if task.future.done():
        return
    if error is not None:
        task.future.set_exception(error)
    else:
        task.future.set_result(value)


def arrays(tasks: list[SlurmTask], max_size: int) -> list[list[SlurmTask]]:
    """``tasks`` as job arrays: one objective per array, at most ``max_size`` tasks each."""
    by_objective: dict[int, list[SlurmTask]] = {}
    for task in tasks:
        by_objective.setdefault(id(task.job.objective), []).append(task)
    return [
        [same[i] for i in part]
        for same in by_objective.values()
        for part in chunks(len(same), max_size)
    ]


async def record_info(tasks: list[SlurmTask]) -> None:
    """Record the jobs' handles together (one checkpoint write for the whole array)."""
    recorded = [task.job.record_info() for task in tasks if task.job.on_info is not None]
    if recorded:
        await asyncio.gather(*recorded)


async def job_outcome(state: SlurmState, where: str, folder: TrialFolder, time_limit: str) -> Any:
    """What a job that ended in ``state`` (not a cluster failure: those are
    resubmitted) means for its trial.

    Args:
        state: The job's terminal state.
        where: Which job ended how, for the failure's reason.
        folder: The trial's directory on the cluster.
        time_limit: The jobs' ``--time``, for a timeout's reason.

    Returns:
        The trial's result: COMPLETED's ``result.json``.

    Raises:
        TrialError: The trial failed (its ``error.json``, or the state and the
            stderr tail; TrialTimeoutError at the time limit), or was cancelled
            by someone else.
        RunnerError: Its files cannot be read now.
    """
    if state.outcome is Outcome.RESULT:
        return await folder.result(where)
    if state.outcome is Outcome.CANCELLED:
        raise TrialError(f"{where}: cancelled outside ax-scheduler")
    if state.outcome is Outcome.TIMEOUT:
        raise await folder.failure(f"{where}: time limit {time_limit} reached", TrialTimeoutError)
    raise await folder.failure(where)
