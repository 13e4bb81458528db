"""SlurmRunner: trials as tasks of Slurm job arrays, reached over SSH or run locally.

How a trial travels:

1. ``run()``/``run_batch()`` queue the trial; trials queued within
   ``submit_window`` (a whole ``batch_trial_context``) go out as ONE job array
   (split at the cluster's MaxArraySize): one ``mkdir``, the manifest and job
   script written over SFTP, one ``sbatch --parsable``.
2. One :class:`~ax_scheduler._sacct.SacctWatcher` per runner asks ``sacct`` about
   ALL unfinished arrays in one call per tick, backing off (1, 2, 4 ... s up to
   ``monitoring_interval``) while nothing changes. A task sacct does not list yet
   (it lags for seconds after a submission) is simply still pending; a failed
   poll is retried next tick.
3. A terminal state resolves the trial through its
   :attr:`~ax_scheduler._sacct.SlurmState.outcome`: COMPLETED reads ``result.json``
   (the result file is the truth), FAILED/TIMEOUT fail it with the state, exit
   code and stderr tail, NODE_FAIL/PREEMPTED/BOOT_FAIL resubmit it (up to
   ``max_resubmits``).
4. Cancelling the awaiting task ``scancel``s the job; cancellations that arrive
   together share one ``scancel``.
5. Reports: on every tick, right after sacct, ONE more command reads the new
   bytes of every watched task's ``progress.jsonl`` (offsets kept per task,
   :mod:`ax_scheduler._remoteprogress`) and delivers its whole lines; new
   reports keep the ticks short, like a change of state. An early stop is
   ``scancel --signal=USR2 --batch`` (coalesced): the job's worker makes the
   objective's next ``report()`` raise, or sends a script SIGTERM; what has not
   ended after the scheduler's grace is cancelled like any other job.

What SSH hosts do the same way (the session directory, uploads, manifests,
reading a trial's files) is :mod:`ax_scheduler._remotejob`'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

from .._aio import shielded
from .._clock import REAL_CLOCK, Clock
from .._config import SchedulerConfig, SlurmConfig, SSHOptions
from .._exceptions import InfrastructureError, RunnerError, TrialError
from .._jobs import ContainerObjective, FunctionObjective, Job, Objective, ScriptObjective
from .._remote import Transport
from .._remotejob import (
    RemoteSession,
    TrialFolder,
    Uploadable,
    session_name,
    trial_folder,
    with_scheduler_retries,
)
from .._sacct import Change, Outcome, SacctWatcher, SlurmState, TaskState
from .._sbatch import ArraySubmitter
from .._slurm import (
    checked_cpus,
    checked_memory,
    checked_time_limit,
    job_prelude,
    resource_args,
)
from .._slurmchecks import SlurmChecks
from .._slurmcleanup import ClusterCleanup
from .._slurmprogress import SlurmProgress
from .._slurmtask import Phase, SlurmTask, arrays, job_outcome, record_info, settle
from .._sshtransport import make_transport
from .._uploads import Payloads
from ._base import Runner

logger = logging.getLogger("ax_scheduler")


class SlurmRunner(Runner):
    """Runs each trial as a task of a Slurm job array.

    Args:
        partition: Partition (``--partition``); None uses the cluster's default.
        time_limit: Wall time per trial (``--time``: ``"MM"``, ``"HH:MM:SS"``,
            ``"D-HH:MM"`` ...).
        memory: Memory per trial (``--mem``: ``"4G"``, ``"500M"``); None uses the
            cluster's default.
        cpus_per_task: CPUs per trial (``--cpus-per-task``).
        config: Job options, see :class:`~ax_scheduler.SlurmConfig`: ``modules``,
            ``setup``, ``sbatch_options``, ``python``, ``job_dir``, ``max_parallel``,
            ``array_parallelism``, ``max_resubmits``, ``monitoring_interval``.
        ssh: How to reach the login node, see :class:`~ax_scheduler.SSHOptions`
            (``host``, ``port``, ``username``, ``client_keys``, ``known_hosts``
            ...). None runs ``sbatch``/``sacct`` on this machine (the driver runs on
            a login node).
        transport: For tests, instead of ``ssh``: a fake cluster such as
            :class:`ax_scheduler.testing.FakeTransport`.
        clock: For tests: the clock polling, back-off and the submit window wait
            on (:class:`ax_scheduler.testing.FakeClock` runs them in virtual time).

    Raises:
        ConfigError: An option is invalid; the message names it.
    """

    kind = "slurm"
    objective_types = (FunctionObjective, ScriptObjective, ContainerObjective)
    needs_pickling = True
    objectives_run_here = False

    def __init__(
        self,
        partition: str | None = None,
        time_limit: str = "01:00:00",
        memory: str | None = None,
        cpus_per_task: int = 1,
        config: Mapping[str, Any] | None = None,
        ssh: Mapping[str, Any] | None = None,
        *,
        transport: Transport | None = None,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self.partition = partition
        self.time_limit = checked_time_limit(time_limit)
        self.memory = None if memory is None else checked_memory(memory)
        self.cpus_per_task = checked_cpus(cpus_per_task)
        self.config = SlurmConfig.from_user(config)
        self.ssh = None if ssh is None else SSHOptions.from_user(ssh)
        self.transport = transport or make_transport(self.ssh, clock)
        self._clock = clock
        self._session = RemoteSession(
            self.transport, self.config.job_dir, session_name(), Payloads()
        )
        self._checks = SlurmChecks(
            self.transport, job_prelude(self.config.modules, self.config.setup)
        )
        self._submitter = ArraySubmitter(
            self.transport, self._session, self.config, self.resource_args, clock=clock
        )
        self._started = False
        self._start_lock = asyncio.Lock()
        self._max_array_size = self.config.max_array_size or 1001
        self._queue: list[SlurmTask] = []
        self._flush: asyncio.Task[None] | None = None
        self._watcher: SacctWatcher[SlurmTask] = SacctWatcher(
            self.transport,
            self._on_change,
            self._on_crash,
            on_tick=lambda changes: self._progress.read(self._watcher.items(), changes),
            clock=clock,
            min_interval=self.config.min_poll_interval,
            max_interval=self.config.monitoring_interval or 10.0,
        )
        self._cleanup = ClusterCleanup(self.transport)
        self._progress = SlurmProgress(self.transport, self._cleanup)

    @property
    def capacity(self) -> int:
        """Trials queued or running in Slurm at once (``config['max_parallel']``)."""
        return self.config.max_parallel

    @property
    def stats(self) -> dict[str, int]:
        """Commands sent so far, for tests and benches: ``sbatch``, ``sacct``,
        ``scancel``, ``progress`` (reads of the progress files, one per tick with
        jobs) and ``stop`` (``scancel --signal`` of early stops)."""
        return {
            "sbatch": self._submitter.sbatches,
            "sacct": self._watcher.polls,
            "scancel": self._cleanup.scancels,
            "progress": self._progress.commands,
            "stop": self._cleanup.stop_signals,
        }

    def __repr__(self) -> str:
        return f"SlurmRunner(partition={self.partition!r}, on {self.transport.description})"

    def use_config(self, config: SchedulerConfig) -> None:
        """Take ``monitoring_interval`` and ``max_retries``, unless this runner's config says."""
        if self.config.monitoring_interval is None:
            self._watcher.set_intervals(self.config.min_poll_interval, config.monitoring_interval)
        self.config = with_scheduler_retries(self.config, config)

    # -- start ----------------------------------------------------------------------
    def resource_args(self) -> list[str]:
        """sbatch options for partition, time, memory, CPUs and ``sbatch_options``."""
        return resource_args(
            self.partition,
            self.time_limit,
            self.memory,
            self.cpus_per_task,
            self.config.sbatch_options,
        )

    async def start(self) -> None:
        """Connect, create the job directory, learn MaxArraySize, check the job options.

        Raises:
            RunnerError: The cluster cannot be reached, or sbatch refuses the options
                (an unknown partition, account or option), before any trial exists.
        """
        async with self._start_lock:
            if self._started:
                return
            await self._session.open()
            await self._checks.job_options(self.resource_args())
            if self.config.max_array_size is None:
                self._max_array_size = await self._checks.max_array_size() or 1001
            self._started = True
            logger.info("%r ready: jobs under %s", self, self._session.directory)

    async def check_objective(self, objective: Objective) -> None:
        """Put what the objective needs on the cluster, once, and check it there.

        A function is cloudpickled and uploaded; over SSH a script is uploaded
        (locally it is used where it is). A script's interpreter and a container's
        engine (apptainer or singularity) must be found where the jobs start:
        they are looked up on the cluster after the job's ``modules`` and
        ``setup`` lines, as the job script runs them.

        Raises:
            RunnerError: A container engine Slurm cannot use, or an interpreter or
                engine the cluster does not have.
        """
        if isinstance(objective, FunctionObjective | ScriptObjective):
            await self._place(objective)
        await self._checks.objective(objective, f"{self!r}")

    async def _place(self, objective: Uploadable) -> str:
        """Where the objective's file is on the cluster: uploaded, or a script used
        where it is when the driver runs on the cluster itself."""
        if isinstance(objective, ScriptObjective) and self.ssh is None:
            return str(objective.script)
        return await self._session.upload(objective)

    # -- running --------------------------------------------------------------------
    async def run(self, job: Job) -> Any:
        """Run one trial as a Slurm job and return what its objective returned.

        Raises:
            ObjectiveError: The objective raised, or the job FAILED (exit code and
                stderr tail in the message).
            TrialTimeoutError: The job hit its time limit.
            InfrastructureError: The cluster failed it more than ``max_resubmits`` times.
        """
        return await self._outcome(self._enqueue(job))

    async def run_batch(self, jobs: Sequence[Job]) -> list[Awaitable[Any]]:
        """Queue all ``jobs`` at once, so they go out as one job array."""
        tasks = [self._enqueue(job) for job in jobs]
        return [asyncio.ensure_future(self._outcome(task)) for task in tasks]

    def _enqueue(self, job: Job) -> SlurmTask:
        return self._requeue(SlurmTask(job, asyncio.get_running_loop().create_future()))

    def _requeue(self, task: SlurmTask) -> SlurmTask:
        task.requeue()
        self._queue.append(task)
        if self._flush is None:
            self._flush = asyncio.create_task(self._flush_queue(), name="ax-scheduler-sbatch")
        return task

    async def _outcome(self, task: SlurmTask) -> Any:
        unfollow = self._progress.follow(task)
        try:
            return await task.future
        except asyncio.CancelledError:
            await shielded(self._cancel(task))
            raise
        finally:
            unfollow()

    async def _flush_queue(self) -> None:
        try:
            await self._clock.sleep(self.config.submit_window)
            await self.start()
        except BaseException as exc:
            self._flush = None
            # A TrialError, so each trial's failure reason is the cause itself. Not
            # retried: the connection already was, and a bad option stays bad.
            why = str(exc) if isinstance(exc, Exception) else "cancelled"
            error = InfrastructureError(why, retryable=False)
            for task in self._take_queue():
                settle(task, error=error)
            raise
        self._flush = None
        for array in arrays(self._take_queue(), self._max_array_size):
            await self._submit(array)

    def _take_queue(self) -> list[SlurmTask]:
        tasks, self._queue = self._queue, []
        return [task for task in tasks if not task.future.done()]

    async def _submit(self, tasks: list[SlurmTask]) -> None:
        """Submit ``tasks`` as one array and watch them; on failure they are settled."""
        job_id = await self._submitter.submit_tasks(tasks, self._place)
        if job_id is None:
            return
        for task in tasks:
            assert task.slurm_id is not None
            self._watcher.watch(task.slurm_id, task, SlurmState.PENDING, alone=len(tasks) == 1)
            task.submitted.set()
        logger.info("submitted %d trials as Slurm array %s", len(tasks), job_id)
        await record_info(tasks)

    async def reattach(self, job: Job) -> Awaitable[Any] | None:
        """Follow a job a previous driver submitted, by its id or its array's name.

        A job that was never submitted (the driver died first) is submitted now.
        """
        slurm_id = job.info.get("slurm_job_id")
        name, number = job.info.get("slurm_job_name"), job.info.get("slurm_array_task")
        if slurm_id is None and name is not None and number is not None:
            array = await self._submitter.array_named(str(name))
            slurm_id = None if array is None else f"{array}_{number}"
        if slurm_id is None or not job.info.get("job_dir"):
            logger.info("trial %d never reached Slurm; submitting it now", job.trial_index)
            return asyncio.ensure_future(self.run(job))
        task = SlurmTask(job, asyncio.get_running_loop().create_future(), Phase.SUBMITTED)
        task.slurm_id, task.workdir = str(slurm_id), str(job.info["job_dir"])
        task.job.info["slurm_job_id"] = task.slurm_id
        task.submitted.set()
        self._watcher.watch(task.slurm_id, task)  # its state is news, whatever it is
        return asyncio.ensure_future(self._outcome(task))

    # -- outcomes -------------------------------------------------------------------
    async def _on_change(self, changes: list[Change[SlurmTask]]) -> None:
        """The watcher's news: log starts, settle the tasks whose job is over."""
        finished = []
        for change in changes:
            task, line = change.item, change.line
            if line.state is SlurmState.RUNNING:
                task.job.info["started_at"] = time.time()
                logger.info("trial %d running as Slurm job %s", task.job.trial_index, task.slurm_id)
            if line.state.is_terminal:
                finished.append(self._finish(task, line))
        await asyncio.gather(*finished)

    def _on_crash(self, error: BaseException, tasks: list[SlurmTask]) -> None:
        for task in tasks:
            failure = InfrastructureError(f"status polling stopped: {error!r}", retryable=False)
            settle(task, error=failure)

    async def _finish(self, task: SlurmTask, line: TaskState) -> None:
        where = f"Slurm job {task.slurm_id} ended {line.state.value} (exit code {line.exit_code})"
        folder = TrialFolder(task.workdir, self.transport.read_file)
        try:
            if line.state.outcome is Outcome.INFRASTRUCTURE:
                await self._resubmit_or_fail(task, where)
            else:
                settle(task, value=await job_outcome(line.state, where, folder, self.time_limit))
        except TrialError as exc:
            settle(task, error=exc)
        except RunnerError as exc:
            # The job is over but its files cannot be read now (the connection is
            # down): watch it again, so the next tick retries instead of losing a result.
            logger.warning("%s, but its files cannot be read yet (%s); will retry", where, exc)
            assert task.slurm_id is not None
            self._watcher.watch(task.slurm_id, task)

    async def _resubmit_or_fail(self, task: SlurmTask, where: str) -> None:
        if task.resubmits >= self.config.max_resubmits:
            raise InfrastructureError(
                f"{where}; gave up after {task.resubmits} resubmissions", retryable=False
            )
        assert task.slurm_id is not None
        await self._cleanup.cancel([task.slurm_id])  # a PREEMPTED job may requeue itself
        task.resubmits += 1
        task.job.info.update(resubmits=task.resubmits)
        logger.warning(
            "%s: resubmitting trial %d (%d of %d)",
            where,
            task.job.trial_index,
            task.resubmits,
            self.config.max_resubmits,
        )
        self._requeue(task)

    # -- cancelling -----------------------------------------------------------------
    async def _cancel(self, task: SlurmTask) -> None:
        """Take the task out of the queue, or scancel its job."""
        if task in self._queue:
            self._queue.remove(task)
            return
        if task.phase is Phase.DONE:
            return
        if task.phase is Phase.SUBMITTING:
            await task.submitted.wait()
        if task.slurm_id is None:
            return
        self._watcher.forget(task.slurm_id)
        await self._cleanup.cancel([task.slurm_id])

    async def remove_files(self, job: Job) -> None:
        """Delete a completed trial's folder on the cluster; those of a moment share one ``rm``.

        Raises:
            RunnerError: ``rm`` failed, or the folder is not under ``job_dir``.
        """
        folder = trial_folder(job, self._session.root)
        if folder is not None:
            await self._cleanup.remove(folder)

    def load(self) -> dict[str, int] | None:
        """Trials by Slurm state: ``queued`` (not yet submitted), ``pending``, ``running``."""
        return {"queued": len(self._queue), **self._watcher.load()}

    async def aclose(self) -> None:
        """scancel every job still queued or running, stop polling, disconnect."""
        for task in self._take_queue():
            settle(task, error=RunnerError("the runner was closed"))
        if self._flush is not None:
            self._flush.cancel()
        live = self._watcher.clear()
        if live:
            await shielded(self._cleanup.cancel([task.slurm_id for task in live if task.slurm_id]))
        for task in live:
            closed = InfrastructureError(
                "the runner was closed; its job was cancelled", retryable=False
            )
            settle(task, error=closed)
        await self._watcher.aclose()
        await self._progress.aclose()
        await self.transport.aclose()
        self._started = False
