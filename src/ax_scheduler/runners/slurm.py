"""SlurmRunner: trials as tasks of Slurm job arrays, reached over SSH or run locally.

How a trial travels:

1. ``run()``/``run_batch()`` queue the trial; trials queued within
   ``submit_window`` (a whole ``batch_trial_context``) go out as ONE job array
   (split at the cluster's MaxArraySize): one ``mkdir``, the manifest and job
   script written over SFTP, one ``sbatch --parsable``.
2. One poll loop per runner asks ``sacct`` about ALL unfinished arrays in one
   call per tick, backing off (1, 2, 4 ... s up to ``monitoring_interval``) while
   nothing changes. A task sacct does not list yet (it lags for seconds after a
   submission) is simply still pending; a failed poll is retried next tick.
3. A terminal state resolves the trial through :data:`~ax_scheduler._slurm.STATE_OUTCOMES`:
   COMPLETED reads ``result.json`` (the result file is the truth), FAILED/TIMEOUT
   fail it with the state, exit code and stderr tail, NODE_FAIL/PREEMPTED/BOOT_FAIL
   resubmit it (up to ``max_resubmits``).
4. Cancelling the awaiting task ``scancel``s the job; cancellations that arrive
   together share one ``scancel``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from .. import _jobworker
from .._aio import Coalesced, shielded
from .._config import SchedulerConfig, SlurmConfig, SSHOptions
from .._container import APPTAINER_ENGINES, apptainer_exec_argv
from .._exceptions import (
    ConfigError,
    InfrastructureError,
    ObjectiveError,
    RunnerError,
    TrialError,
    TrialTimeoutError,
)
from .._jobs import ContainerObjective, FunctionObjective, Job, Objective, ScriptObjective
from .._remote import ConnectionDropped, Transport, make_transport
from .._slurm import (
    MEMORY,
    SACCT_FORMAT,
    TIME_LIMIT,
    Backoff,
    Outcome,
    TaskState,
    chunks,
    job_prelude,
    job_script,
    parse_max_array_size,
    parse_sacct,
    program_check_argv,
    sbatch_argv,
    sbatch_option_args,
    script_task,
)
from .._uploads import Payloads
from .._workerfiles import STDERR_TAIL_BYTES, removable_folder, reported_error, stderr_summary
from ._base import Runner

logger = logging.getLogger("ax_scheduler")

#: Prints each of its arguments that is not an existing path (paths are data: "$p").
_LIST_MISSING = 'for p; do [ -e "$p" ] || printf "%s\\n" "$p"; done'

#: sbatch attempts (1, 2, 4 s apart) before a submission counts as failed.
SBATCH_ATTEMPTS = 4


@dataclass(eq=False)
class _Task:
    """One trial's journey through Slurm (possibly several jobs, if resubmitted)."""

    job: Job
    future: asyncio.Future[Any]
    state: str = "QUEUED"
    slurm_id: str | None = None  # "123_4"
    workdir: str = ""
    resubmits: int = 0
    submitted: asyncio.Event = field(default_factory=asyncio.Event)


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
        transport: Injected instead of ``ssh`` by tests (a fake cluster).
        sleep: Injected by tests to run the polling back-off without waiting.

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
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.partition = partition
        self.time_limit = _checked(
            time_limit, "time_limit", TIME_LIMIT, "'HH:MM:SS', 'D-HH:MM' or minutes"
        )
        self.memory = None if memory is None else _checked(memory, "memory", MEMORY, "'4G', '500M'")
        if (
            isinstance(cpus_per_task, bool)
            or not isinstance(cpus_per_task, int)
            or cpus_per_task < 1
        ):
            raise ConfigError(f"cpus_per_task must be a positive int, got {cpus_per_task!r}")
        self.cpus_per_task = cpus_per_task
        self.config = SlurmConfig.from_user(config)
        self.ssh = None if ssh is None else SSHOptions.from_user(ssh)
        self.transport = transport or make_transport(self.ssh)
        self._sleep = sleep
        self._monitoring_interval = self.config.monitoring_interval or 10.0
        self._started = False
        self._start_lock = asyncio.Lock()
        self._session = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self._root = ""  # absolute job directory on the cluster, known after start()
        self._max_array_size = self.config.max_array_size or 1001
        self._payloads = Payloads()
        self._uploaded: set[str] = set()  # payload names in the session directory
        self._queue: list[_Task] = []
        self._flush: asyncio.Task[None] | None = None
        self._arrays: dict[str, dict[int, _Task]] = {}  # array job id -> task id -> task
        self._poller: asyncio.Task[None] | None = None
        self._backoff = Backoff(self.config.min_poll_interval, self._monitoring_interval)
        self._cancels = Coalesced(self._scancel_now)  # one scancel for those of a moment
        self._removals = Coalesced(self._remove_now)  # one rm for the folders of a moment
        self._submissions = itertools.count()
        #: Counters for tests and the scale bench.
        self.stats = {"sbatch": 0, "sacct": 0, "scancel": 0}

    @property
    def capacity(self) -> int:
        """Trials queued or running in Slurm at once (``config['max_parallel']``)."""
        return self.config.max_parallel

    def __repr__(self) -> str:
        return f"SlurmRunner(partition={self.partition!r}, on {self.transport.description})"

    def use_config(self, config: SchedulerConfig) -> None:
        """Take ``monitoring_interval`` and ``max_retries``, unless this runner's config says."""
        if self.config.monitoring_interval is None:
            self._monitoring_interval = config.monitoring_interval
            self._backoff = Backoff(self.config.min_poll_interval, config.monitoring_interval)
        if "max_resubmits" not in self.config.model_fields_set:
            self.config = self.config.model_copy(update={"max_resubmits": config.max_retries})

    # -- start ----------------------------------------------------------------------
    def resource_args(self) -> list[str]:
        """sbatch options for partition, time, memory, CPUs and ``sbatch_options``."""
        args = [f"--time={self.time_limit}", f"--cpus-per-task={self.cpus_per_task}"]
        if self.partition:
            args.insert(0, f"--partition={self.partition}")
        if self.memory:
            args.append(f"--mem={self.memory}")
        return args + sbatch_option_args(self.config.sbatch_options)

    async def start(self) -> None:
        """Connect, create the job directory, learn MaxArraySize, check the job options.

        Raises:
            RunnerError: The cluster cannot be reached, or sbatch refuses the options
                (an unknown partition, account or option), before any trial exists.
        """
        async with self._start_lock:
            if self._started:
                return
            self._root = await self._make_root()
            await self._check_options()
            if self.config.max_array_size is None:
                found = await self.transport.run(["scontrol", "show", "config"])
                self._max_array_size = parse_max_array_size(found.stdout) or 1001
            worker = await anyio.Path(_jobworker.__file__).read_bytes()
            await self.transport.write_file(self._worker_path, worker)
            self._started = True
            logger.info("%r ready: jobs under %s", self, self._session_dir)

    @property
    def _session_dir(self) -> str:
        return f"{self._root}/{self._session}"

    @property
    def _worker_path(self) -> str:
        return f"{self._session_dir}/axs_worker.py"

    async def _make_root(self) -> str:
        # The path is $1 of a fixed script: never parsed as shell code.
        script = 'mkdir -p -- "$1/$2" && cd -- "$1" && pwd -P'
        argv = ["sh", "-c", script, "sh", self.config.job_dir, self._session]
        result = await self.transport.run(argv)
        if not result.ok:
            raise RunnerError(
                f"cannot create job_dir {self.config.job_dir!r} on {self.transport.description}:"
                f" {result.describe()}"
            )
        return result.stdout.strip().splitlines()[-1]

    async def _check_options(self) -> None:
        argv = ["sbatch", "--test-only", *self.resource_args(), "--wrap=true"]
        result = await self.transport.run(argv)
        if result.returncode == 127:
            raise RunnerError(f"sbatch is not installed on {self.transport.description}")
        if not result.ok:
            raise RunnerError(
                f"sbatch refused the job options {self.resource_args()}: {result.describe()}"
            )

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
        if isinstance(objective, FunctionObjective):
            await self._objective_path(objective)
        elif isinstance(objective, ScriptObjective):
            await self._script_path(objective)
            if objective.interpreter is not None:
                await self._check_program(objective.interpreter, "the script's interpreter")
        elif isinstance(objective, ContainerObjective):
            if objective.engine not in APPTAINER_ENGINES:
                raise RunnerError(
                    f"{self!r} runs containers with apptainer or singularity, not"
                    f" {objective.engine!r}: pass container_options={{'engine': 'apptainer'}}"
                    " (or 'singularity')"
                )
            await self._check_program(objective.engine, "container engine")
            await self._check_volumes(objective)

    async def _upload(self, objective: FunctionObjective | ScriptObjective) -> str:
        """The path on the cluster of the objective's pickle or script, uploaded once."""
        payload = await self._payloads.of(objective)
        path = f"{self._session_dir}/{payload.name}"
        if payload.name not in self._uploaded:
            await self.transport.write_file(path, payload.data, mode=payload.mode)
            self._uploaded.add(payload.name)
        return path

    async def _objective_path(self, objective: FunctionObjective) -> str:
        return await self._upload(objective)

    async def _script_path(self, objective: ScriptObjective) -> str:
        """Where the script is on the cluster: uploaded over SSH, as it is locally."""
        if self.ssh is None:
            return str(objective.script)
        return await self._upload(objective)

    async def _check_volumes(self, objective: ContainerObjective) -> None:
        """Every volume's host path must exist on the cluster, where it is bound."""
        paths = [host for host, _ in objective.volumes]
        if not paths:
            return
        listed = await self.transport.run(["sh", "-c", _LIST_MISSING, "sh", *paths])
        missing = listed.stdout.splitlines()
        if missing or not listed.ok:
            raise RunnerError(
                f"container volume host paths do not exist on {self.transport.description}:"
                f" {missing or listed.describe()}; the jobs bind them there"
            )

    async def _check_program(self, program: str, what: str) -> None:
        """``program`` must be found by the job's own shell, after modules and setup."""
        found = await self.transport.run(
            program_check_argv(
                program, job_prelude(self.config.modules, self.config.setup), shell="bash"
            )
        )
        if not found.ok:
            raise RunnerError(
                f"{what} {program!r} is not found on {self.transport.description} in the"
                " jobs' environment (bash, after the job script's `module load` and setup"
                f" lines): {found.describe()}. Make it available with config={{'modules':"
                " [...]} or config={'setup': [...]}, or give its full path on the cluster"
            )

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

    def _enqueue(self, job: Job) -> _Task:
        task = _Task(job, asyncio.get_running_loop().create_future())
        self._queue.append(task)
        if self._flush is None:
            self._flush = asyncio.create_task(self._flush_queue(), name="ax-scheduler-sbatch")
        return task

    async def _outcome(self, task: _Task) -> Any:
        try:
            return await task.future
        except asyncio.CancelledError:
            await shielded(self._cancel(task))
            raise

    async def _flush_queue(self) -> None:
        try:
            await asyncio.sleep(self.config.submit_window)
            await self.start()
        except BaseException as exc:
            self._flush = None
            # A TrialError, so each trial's failure reason is the cause itself. Not
            # retried: the connection already was, and a bad option stays bad.
            why = str(exc) if isinstance(exc, Exception) else "cancelled"
            error = InfrastructureError(why, retryable=False)
            for task in self._take_queue():
                _settle(task, error=error)
            raise
        self._flush = None
        by_objective: dict[int, list[_Task]] = {}
        for task in self._take_queue():  # one array runs one objective
            by_objective.setdefault(id(task.job.objective), []).append(task)
        for tasks in by_objective.values():
            for part in chunks(len(tasks), self._max_array_size):
                await self._submit([tasks[i] for i in part])

    def _take_queue(self) -> list[_Task]:
        tasks, self._queue = self._queue, []
        return [task for task in tasks if not task.future.done()]

    async def _submit(self, tasks: list[_Task]) -> None:
        """Submit ``tasks`` as one array; on failure, fail them with the reason."""
        number = next(self._submissions)
        directory = f"{self._session_dir}/a{number}"
        name = f"axs-{self._session}-a{number}"
        for index, task in enumerate(tasks):
            task.workdir, task.state = f"{directory}/{index}", "SUBMITTING"
            task.job.info.pop("slurm_job_id", None)
            task.job.info.update(slurm_job_name=name, slurm_array_task=index, job_dir=task.workdir)
        try:
            # In the checkpoint before sbatch: a driver killed right after it can
            # still find the array by its name instead of leaving it orphaned.
            await _record_info(tasks)
            job_id = await self._sbatch(directory, name, tasks)
        except Exception as exc:  # noqa: BLE001 - any failure to submit fails these trials
            error = exc if isinstance(exc, TrialError) else InfrastructureError(str(exc))
            for task in tasks:
                _settle(task, error=error)
                task.submitted.set()
            return
        self._arrays[job_id] = {}
        for index, task in enumerate(tasks):
            task.slurm_id, task.state = f"{job_id}_{index}", "PENDING"
            task.job.info.update(
                slurm_job_id=task.slurm_id,
                job_dir=task.workdir,
                stdout=f"{task.workdir}/stdout.log",
                stderr=f"{task.workdir}/stderr.log",
            )
            self._arrays[job_id][index] = task
            task.submitted.set()
        logger.info("submitted %d trials as Slurm array %s", len(tasks), job_id)
        self._track()
        await _record_info(tasks)

    def _track(self) -> None:
        """Poll soon, starting the poll loop if it is not running."""
        self._backoff.reset()
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name="ax-scheduler-sacct")
            self._poller.add_done_callback(self._poller_ended)

    async def reattach(self, job: Job) -> Awaitable[Any] | None:
        """Follow a job a previous driver submitted, by its id or its array's name.

        A job that was never submitted (the driver died first) is submitted now.
        """
        slurm_id = job.info.get("slurm_job_id")
        name, number = job.info.get("slurm_job_name"), job.info.get("slurm_array_task")
        if slurm_id is None and name is not None and number is not None:
            array = await self._array_named(str(name))
            slurm_id = None if array is None else f"{array}_{number}"
        if slurm_id is None or not job.info.get("job_dir"):
            logger.info("trial %d never reached Slurm; submitting it now", job.trial_index)
            return asyncio.ensure_future(self.run(job))
        task = _Task(job, asyncio.get_running_loop().create_future())
        task.slurm_id, task.workdir, task.state = str(slurm_id), str(job.info["job_dir"]), "SEEN"
        task.job.info["slurm_job_id"] = task.slurm_id
        task.submitted.set()
        array_id, _, task_number = task.slurm_id.partition("_")
        self._arrays.setdefault(array_id, {})[int(task_number)] = task
        self._track()
        return asyncio.ensure_future(self._outcome(task))

    async def _array_named(self, name: str) -> str | None:
        """The id of the job array named ``name``, running or finished, if any."""
        result = await self.transport.run(
            ["sacct", "-n", "-P", "-X", f"--name={name}", "--starttime=now-30days", "-o", "JobID"]
        )
        ids = [line.split("_")[0] for line in result.stdout.split() if line.strip()]
        return ids[0] if result.ok and ids else None

    async def _sbatch(self, directory: str, name: str, tasks: list[_Task]) -> str:
        manifest = await self._manifest(tasks)
        trials = ", ".join(str(task.job.trial_index) for task in tasks)
        script = job_script(
            python=self.config.python,
            worker=self._worker_path,
            manifest=f"{directory}/manifest.json",
            modules=self.config.modules,
            setup=self.config.setup,
            header=f"ax-scheduler job array {name}: trials {trials}",
        )
        mkdir = await self.transport.run(["mkdir", "-p", "--", *(task.workdir for task in tasks)])
        if not mkdir.ok:
            raise InfrastructureError(f"cannot create the trial directories: {mkdir.describe()}")
        await self.transport.write_file(f"{directory}/manifest.json", json.dumps(manifest).encode())
        await self.transport.write_file(f"{directory}/job.sh", script.encode(), mode=0o755)
        argv = sbatch_argv(
            script=f"{directory}/job.sh",
            job_name=name,
            tasks=len(tasks),
            array_parallelism=self.config.array_parallelism,
            log_dir=directory,
            resources=self.resource_args(),
        )
        return await self._run_sbatch(argv, name)

    async def _manifest(self, tasks: list[_Task]) -> dict[str, Any]:
        """What the worker of each array task needs (paths as on the cluster)."""
        objective = tasks[0].job.objective
        entries = [
            {
                "trial_index": task.job.trial_index,
                "workdir": task.workdir,
                "parameters": task.job.parameters,
            }
            for task in tasks
        ]
        if isinstance(objective, FunctionObjective):
            return {
                "kind": "function",
                "objective": await self._objective_path(objective),
                "tasks": entries,
            }
        for entry, task in zip(entries, tasks, strict=True):
            entry.update(await self._command(objective, task))
        return {"kind": "command", "tasks": entries}

    async def _command(self, objective: Objective, task: _Task) -> dict[str, Any]:
        index = task.job.trial_index
        if isinstance(objective, ScriptObjective):
            return script_task(
                objective,
                script=await self._script_path(objective),
                interpreter=objective.interpreter,
                workdir=task.workdir,
                trial_index=index,
            )
        assert isinstance(objective, ContainerObjective)
        argv = apptainer_exec_argv(objective, task.workdir, index)
        return {"argv": argv, "env": {}, "timeout": objective.timeout}

    async def _run_sbatch(self, argv: list[str], name: str) -> str:
        delay = 1.0
        for attempt in range(SBATCH_ATTEMPTS):
            self.stats["sbatch"] += 1
            try:
                result = await self.transport.run(argv, idempotent=False)
            except ConnectionDropped:
                # sbatch may have gone through: find the job by its unique name
                # before submitting again, or the array would run twice.
                found = await self._job_named(name)
                if found is not None:
                    return found
                continue
            if result.ok:
                return result.stdout.strip().split(";")[0]
            if attempt == SBATCH_ATTEMPTS - 1:
                raise InfrastructureError(f"sbatch failed: {result.describe()}")
            logger.warning("sbatch failed (%s); retrying in %g s", result.describe(), delay)
            await self._sleep(delay)
            delay *= 2
        raise InfrastructureError(f"sbatch of {name} did not go through")

    async def _job_named(self, name: str) -> str | None:
        result = await self.transport.run(["squeue", "-h", f"--name={name}", "-o", "%F"])
        ids = result.stdout.split()
        return ids[0] if result.ok and ids else None

    # -- polling --------------------------------------------------------------------
    async def _poll(self) -> None:
        while self._arrays:
            await self._sleep(self._backoff.current)
            if not self._arrays:
                return
            states = await self._query()
            if states is None:
                self._backoff.grow()
                continue
            changed = await self._apply(states)
            if changed:
                self._backoff.reset()
            else:
                self._backoff.grow()

    def _poller_ended(self, poller: asyncio.Task[None]) -> None:
        """A crashed poll loop must not leave trials waiting forever: fail them loudly."""
        if poller.cancelled() or poller.exception() is None:
            return
        error = poller.exception()
        logger.error("Slurm status polling stopped: %r", error, exc_info=error)
        for array in self._arrays.values():
            for task in array.values():
                failure = InfrastructureError(f"status polling stopped: {error!r}", retryable=False)
                _settle(task, error=failure)
        self._arrays.clear()

    async def _query(self) -> list[TaskState] | None:
        """ONE sacct call about every unfinished array; None if the poll failed."""
        ids = ",".join(self._arrays)
        self.stats["sacct"] += 1
        try:
            result = await self.transport.run(
                ["sacct", "-n", "-P", "-X", "-j", ids, "-o", SACCT_FORMAT]
            )
        except RunnerError as exc:
            logger.warning("Slurm status poll failed (%s); trying again", exc)
            return None
        if not result.ok:
            logger.warning("sacct failed (%s); trying again", result.describe())
            return None
        return parse_sacct(result.stdout)

    async def _apply(self, states: list[TaskState]) -> bool:
        """Update tasks from sacct; settle the finished ones. True if anything changed."""
        changed, finished = False, []
        for line in states:
            array = self._arrays.get(line.job_id, {})
            for number in line.tasks:
                task = array.get(number)
                if task is None or task.state == line.state:
                    continue
                changed = True
                task.state = line.state
                if line.state == "RUNNING":
                    task.job.info["started_at"] = time.time()
                    logger.info(
                        "trial %d running as Slurm job %s", task.job.trial_index, task.slurm_id
                    )
                if line.outcome is not None:
                    del array[number]
                    finished.append((task, line))
        for job_id in [job_id for job_id, array in self._arrays.items() if not array]:
            del self._arrays[job_id]
        if finished:
            await asyncio.gather(*(self._finish(task, line) for task, line in finished))
        return changed

    async def _finish(self, task: _Task, line: TaskState) -> None:
        outcome = line.outcome
        where = f"Slurm job {task.slurm_id} ended {line.state} (exit code {line.exit_code})"
        try:
            if outcome is Outcome.RESULT:
                _settle(task, value=await self._read_result(task, where))
            elif outcome is Outcome.INFRASTRUCTURE:
                await self._resubmit_or_fail(task, where)
            elif outcome is Outcome.CANCELLED:
                _settle(task, error=TrialError(f"{where}: cancelled outside ax-scheduler"))
            else:
                raise await self._failure(task, where, timeout=outcome is Outcome.TIMEOUT)
        except TrialError as exc:
            _settle(task, error=exc)
        except RunnerError as exc:
            # The job is over but its files cannot be read now (the connection is
            # down): keep it, so the next tick tries again instead of losing a result.
            logger.warning("%s, but its files cannot be read yet (%s); will retry", where, exc)
            self._track_again(task)

    def _track_again(self, task: _Task) -> None:
        assert task.slurm_id is not None
        job_id, _, number = task.slurm_id.partition("_")
        task.state = "UNREAD"  # differs from sacct's state: the next tick finishes it again
        self._arrays.setdefault(job_id, {})[int(number)] = task

    async def _read_result(self, task: _Task, where: str) -> Any:
        data = await self.transport.read_file(f"{task.workdir}/result.json")
        if data is None:
            raise await self._failure(task, f"{where} but wrote no result.json")
        try:
            return json.loads(data)
        except json.JSONDecodeError as exc:
            raise await self._failure(
                task, f"{where} but result.json is not JSON ({exc})"
            ) from None

    async def _failure(self, task: _Task, where: str, *, timeout: bool = False) -> TrialError:
        reported = reported_error(await self.transport.read_file(f"{task.workdir}/error.json"))
        if reported is not None:
            return reported
        path = f"{task.workdir}/stderr.log"
        last, text = stderr_summary(await self.transport.read_file(path, tail=STDERR_TAIL_BYTES))
        if timeout:
            return TrialTimeoutError(
                f"{where}: time limit {self.time_limit} reached; stderr ends: {last}", details=text
            )
        return ObjectiveError(f"{where}; stderr ends: {last}", details=text)

    async def _resubmit_or_fail(self, task: _Task, where: str) -> None:
        if task.resubmits >= self.config.max_resubmits:
            raise InfrastructureError(
                f"{where}; gave up after {task.resubmits} resubmissions", retryable=False
            )
        assert task.slurm_id is not None
        await self._scancel([task.slurm_id])  # a PREEMPTED job may requeue itself
        task.resubmits += 1
        task.job.info.update(resubmits=task.resubmits)
        logger.warning(
            "%s: resubmitting trial %d (%d of %d)",
            where,
            task.job.trial_index,
            task.resubmits,
            self.config.max_resubmits,
        )
        task.state, task.slurm_id = "QUEUED", None
        task.submitted = asyncio.Event()
        self._queue.append(task)
        if self._flush is None:
            self._flush = asyncio.create_task(self._flush_queue(), name="ax-scheduler-sbatch")

    # -- cancelling -----------------------------------------------------------------
    async def _cancel(self, task: _Task) -> None:
        """Take the task out of the queue, or scancel its job."""
        if task in self._queue:
            self._queue.remove(task)
            return
        if task.state == "DONE":
            return
        if task.state == "SUBMITTING":
            await task.submitted.wait()
        if task.slurm_id is None:
            return
        job_id, _, number = task.slurm_id.partition("_")
        self._arrays.get(job_id, {}).pop(int(number), None)
        await self._scancel([task.slurm_id])

    async def _scancel(self, ids: list[str]) -> None:
        """scancel ``ids``; cancellations that arrive together share one call."""
        await self._cancels.add(ids)

    async def _scancel_now(self, ids: list[str]) -> None:
        self.stats["scancel"] += 1
        try:
            result = await self.transport.run(["scancel", *ids])
        except RunnerError as exc:
            logger.error("scancel %s failed: %s; the jobs may still run", " ".join(ids), exc)
            return
        if not result.ok:
            logger.error("scancel %s failed: %s", " ".join(ids), result.describe())

    async def remove_files(self, job: Job) -> None:
        """Delete a completed trial's folder on the cluster; those of a moment share one ``rm``.

        Raises:
            RunnerError: ``rm`` failed, or the folder is not under ``job_dir``.
        """
        path = job.info.get("job_dir")
        if path:
            await self._removals.add([removable_folder(str(path), self._root)])

    async def _remove_now(self, paths: list[str]) -> None:
        result = await self.transport.run(["rm", "-rf", "--", *paths])
        if not result.ok:
            raise RunnerError(f"cannot remove trial folders on the cluster: {result.describe()}")

    def load(self) -> dict[str, int] | None:
        """Trials by Slurm state: ``queued`` (not yet submitted), ``pending``, ``running``."""
        states = [
            task.state for array in list(self._arrays.values()) for task in list(array.values())
        ]
        return {
            "queued": len(self._queue),
            "pending": sum(state in ("PENDING", "SUBMITTING", "SEEN") for state in states),
            "running": states.count("RUNNING"),
        }

    async def aclose(self) -> None:
        """scancel every job still queued or running, stop polling, disconnect."""
        for task in self._take_queue():
            _settle(task, error=RunnerError("the runner was closed"))
        if self._flush is not None:
            self._flush.cancel()
        live = [task for array in self._arrays.values() for task in array.values()]
        self._arrays.clear()
        if live:
            await shielded(self._scancel([task.slurm_id for task in live if task.slurm_id]))
        for task in live:
            closed = InfrastructureError(
                "the runner was closed; its job was cancelled", retryable=False
            )
            _settle(task, error=closed)
        if self._poller is not None:
            self._poller.cancel()
            # A poller that crashed was reported by _poller_ended already.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._poller
        await self.transport.aclose()
        self._started = False


async def _record_info(tasks: list[_Task]) -> None:
    """Record the jobs' handles together (one checkpoint write for the whole array)."""
    recorded = [task.job.record_info() for task in tasks if task.job.on_info is not None]
    if recorded:
        await asyncio.gather(*recorded)


def _settle(task: _Task, *, value: Any = None, error: BaseException | None = None) -> None:
    task.state = "DONE"
    if task.future.done():
        return
    if error is not None:
        task.future.set_exception(error)
    else:
        task.future.set_result(value)


def _checked(value: Any, name: str, pattern: Any, examples: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ConfigError(f"{name} {value!r} is not a Slurm value like {examples}")
    return value
