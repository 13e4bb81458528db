"""JobLibRunner: a local pool of worker processes built on joblib's loky executor.

Each slot owns a one-process loky executor. That costs a thread per slot, and buys
what a shared pool cannot: when a worker dies (segfault, ``os._exit``, OOM kill)
only the trial on that worker fails, and cancelling one trial kills exactly its
process. Completion is event-driven: loky resolves a future, asyncio wakes us.

After the driver died, :meth:`JobLibRunner.reattach` reads each lost trial's
folder: scripts outlive the driver and are followed; function trials died with
their workers, unless their outcome was already on disk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import threading
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

import anyio
from joblib import cpu_count
from loky import ProcessPoolExecutor
from loky.process_executor import BrokenProcessPool

from .. import _shutdown
from .._aio import shielded
from .._exceptions import ConfigError, ObjectiveError, RunnerError, TrialError, WorkerDiedError
from .._jobs import FunctionObjective, Job, ScriptObjective
from .._pidfile import signal_group
from .._progressfile import LocalProgressFiles, local_progress_file
from .._reporting import CallbackReporter
from .._reportserver import ReportServer
from .._script import TrialFiles, rejoin_script, run_script
from .._worker import call_objective, init_worker, noop
from .._workerfiles import reported_error
from ._base import Runner

logger = logging.getLogger("ax_scheduler")

BACKENDS = ("loky", "threading")


#: The older ``scheduler`` package's ``JobLibRunner(config=...)`` keys, and what to write here.
OLDER_CONFIG_KEYS = {
    "tmp_dir": (
        "trial folders go under the scheduler's job_output_dir here (a failed trial keeps"
        " its folder): write AxScheduler(client, runner, config={'job_output_dir': <tmp_dir>})"
    ),
    "container_engine": (
        "JobLibRunner runs function and script objectives; containers run on"
        " DockerRunner() (docker) or SlurmRunner(config={'container_options':"
        " {'engine': 'singularity'}}) (singularity, apptainer): drop the key"
    ),
}


def check_config(config: Mapping[str, Any] | None) -> None:
    """``JobLibRunner(config=...)``: the older package's shape, with no key that means
    anything for a local pool here; each key it knew gets what to write instead.

    Raises:
        ConfigError: ``config`` is not a dict, or has a key.
    """
    if config is None:
        return
    if not isinstance(config, Mapping):
        raise ConfigError(f"config must be a dict, got {type(config).__name__}: {config!r}")
    problems = [
        f"config key {key!r}: {OLDER_CONFIG_KEYS[key]}"
        if key in OLDER_CONFIG_KEYS
        else f"unknown config key {key!r}: JobLibRunner takes n_jobs and backend, no config keys"
        for key in config
    ]
    if problems:
        raise ConfigError("; ".join(problems))


def resolve_n_jobs(n_jobs: int) -> int:
    """joblib's convention: ``-1`` is all cores, ``-2`` all but one, and so on."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise ConfigError(f"n_jobs must be a positive int or -1 for all cores, got {n_jobs!r}")
    if n_jobs > 0:
        return n_jobs
    cores = int(cpu_count())  # reads cgroup files: only when asked for "all cores"
    resolved = cores + 1 + n_jobs
    if resolved < 1:
        raise ConfigError(f"n_jobs={n_jobs} leaves no worker on this machine's {cores} cores")
    return resolved


class _Slot:
    """One worker: a single-process loky executor, replaced when its process dies."""

    def __init__(self) -> None:
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()  # warm-up and a first submit may race

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        # Blocking (a new pool starts its process here): call from a thread.
        with self._lock:
            fresh = self._executor is None
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=1, initializer=init_worker, initargs=(os.getpid(),)
                )
            future: Future[Any] = self._executor.submit(fn, *args)
        if fresh:
            _shutdown.arm()  # loky just registered its exit hook; ours must run first
        return future

    @property
    def is_running(self) -> bool:
        return self._executor is not None

    def warm(self) -> None:
        self.submit(noop).result()

    def kill(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, kill_workers=True)


class JobLibRunner(Runner):
    """Runs function objectives in a pool of local worker processes.

    Args:
        n_jobs: Number of trials to run at once; ``-1`` means all cores, ``-2``
            all but one (joblib's convention).
        backend: ``"loky"`` (default) runs each trial in a worker process: the
            objective and parameters travel by cloudpickle, so functions from
            ``__main__``, closures and lambdas work. ``"threading"`` runs trials
            in threads of the driver, for objectives that release the GIL or
            wait on I/O; a cancelled thread cannot be killed and runs to its end.
        config: Accepted for the older ``scheduler`` package's shape; it has no
            keys here. Its ``tmp_dir`` and ``container_engine`` raise a
            ConfigError that says what to write instead.

    Raises:
        ConfigError: ``n_jobs``, ``backend`` or ``config`` is invalid.
    """

    kind = "joblib"
    objective_types = (FunctionObjective, ScriptObjective)

    def __init__(
        self, n_jobs: int = 1, backend: str = "loky", *, config: Mapping[str, Any] | None = None
    ) -> None:
        check_config(config)
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self.n_jobs = resolve_n_jobs(n_jobs)
        self.backend = backend
        self.needs_pickling = backend == "loky"
        self._slots = [_Slot() for _ in range(self.n_jobs)] if backend == "loky" else []
        self._idle: list[_Slot] = list(self._slots)
        self._threads: Executor | None = None
        self._ready: anyio.Event | None = None
        self._reports = ReportServer()
        self._progress_files = LocalProgressFiles()

    @property
    def capacity(self) -> int:
        """How many trials run at once (``n_jobs``, resolved)."""
        return self.n_jobs

    def __repr__(self) -> str:
        return f"JobLibRunner(n_jobs={self.n_jobs}, backend={self.backend!r})"

    async def start(self) -> None:
        """Start the worker processes so the first trials do not pay for it."""
        if self._ready is not None:
            await self._ready.wait()  # no job may queue behind a warm-up
            return
        self._ready = anyio.Event()
        try:
            if self.backend == "threading":
                self._threads = ThreadPoolExecutor(
                    self.n_jobs, thread_name_prefix="ax-scheduler-trial"
                )
                return
            async with anyio.create_task_group() as group:
                for slot in self._slots:
                    group.start_soon(anyio.to_thread.run_sync, slot.warm)
        finally:
            self._ready.set()

    async def run(self, job: Job) -> Any:
        """Run ``job`` on a free worker and return the objective's result.

        Raises:
            ObjectiveError: The objective raised; the message is its exception.
            WorkerDiedError: The worker process died while running the job.
        """
        if isinstance(job.objective, ScriptObjective):
            job.info["job_dir"] = str(job.workdir)
            # a subprocess of its own, no pool worker
            return await self._followed(job, run_script(job))
        if not isinstance(job.objective, FunctionObjective):
            raise RunnerError(f"{self!r} cannot run a {type(job.objective).__name__}")
        fn = job.objective.fn
        await self.start()
        if self.backend == "threading":
            return self._unwrap(await self._run_in_thread(fn, job))
        slot = self._take_slot()
        try:
            outcome = await self._run_on(slot, fn, job)
        finally:
            self._idle.append(slot)
        return self._unwrap(outcome)

    async def reattach(self, job: Job) -> Awaitable[Any] | None:
        """Pick up a trial a previous driver started, from what its folder holds.

        * A script runs in a session of its own and outlives the driver: it is
          waited for by the pid its folder's ``pid.json`` records, then judged by
          its files (its exit code is unknown). One that never started runs now.
        * A function ran in a pool worker, which died with the driver. A trial
          whose ``result.json`` or ``error.json`` is in its folder had ended (the
          checkpoint lagged): that is its outcome. One that had only written
          ``params.json`` was cut short: None, the trial is FAILED ("driver
          restarted"). One with no files of its own never started and runs now.
        * The threading backend leaves no files: None, as nothing tells whether
          the trial had started.

        Files older than the trial's ``dispatched_at`` (from ``job.info``) or with
        other parameters are an earlier run's and do not count.
        """
        if job.workdir is None:
            return None
        since = job.info.get("dispatched_at")
        if isinstance(job.objective, ScriptObjective):
            job.info["job_dir"] = str(job.workdir)
            return self._followed(job, rejoin_script(job, since))
        if self.backend == "threading" or not isinstance(job.objective, FunctionObjective):
            return None
        files = TrialFiles(job.workdir)
        left = await anyio.to_thread.run_sync(_left_by_worker, files, job.parameters, since)
        if left is _NOT_STARTED:
            logger.info(
                "trial %d never reached a worker (the driver died first); starting it",
                job.trial_index,
            )
            return self.run(job)
        if left is _CUT_SHORT:
            return None
        job.info["job_dir"] = str(job.workdir)
        logger.info(
            "trial %d had ended before the driver died; its outcome is read from %s",
            job.trial_index,
            job.workdir,
        )
        return _settled(left)

    async def _followed(self, job: Job, work: Awaitable[Any]) -> Any:
        """Await a script's ``work``, reading its progress file meanwhile; the stop
        is SIGTERM to its process group."""
        path = local_progress_file(job)
        unwatch = self._progress_files.watch(job, path) if path is not None else None

        def terminate(reason: str) -> None:
            pid = job.info.get("pid")
            if isinstance(pid, int):
                signal_group(pid, signal.SIGTERM)

        unstop = job.channel.on_stop(terminate)
        try:
            return await work
        finally:
            unstop()
            if unwatch is not None:
                await shielded(unwatch())

    def _take_slot(self) -> _Slot:
        if not self._idle:  # the scheduler never exceeds capacity
            raise RuntimeError(f"{self!r}: more concurrent run() calls than n_jobs")
        return self._idle.pop()

    async def _run_on(
        self, slot: _Slot, fn: Callable[[dict[str, Any]], Any], job: Job
    ) -> tuple[str, Any, str]:
        workdir = None
        if job.workdir is not None:
            workdir = str(job.workdir)
            job.info["job_dir"] = workdir  # the worker leaves params, logs and result there
        # Here, not in start(): on the loop that runs the trials (a runner may be
        # warmed up on another, e.g. asyncio.run(runner.start())).
        await self._reports.start()
        reports, unregister = self._reports.register(job)
        try:
            return await self._await_worker(slot, job, (fn, job.parameters, workdir, reports))
        finally:
            unregister()

    async def _await_worker(
        self, slot: _Slot, job: Job, args: tuple[Any, ...]
    ) -> tuple[str, Any, str]:
        future = await self._submit(slot, (call_objective, *args))
        try:
            if _cancelled_while_submitting():
                raise asyncio.CancelledError
            return await asyncio.wrap_future(future)
        except BrokenProcessPool as exc:
            await anyio.to_thread.run_sync(slot.kill)
            raise WorkerDiedError(
                f"worker process died while running trial {job.trial_index} ({_exit_detail(exc)})",
                details=str(exc),
            ) from None
        except asyncio.CancelledError:
            # Trial timeout, run cancelled, Ctrl-C: a job the worker has not taken
            # yet is withdrawn; otherwise kill exactly this trial's process (the
            # slot gets a fresh one on its next use).
            if not future.cancel():
                await shielded(anyio.to_thread.run_sync(slot.kill))
            raise
        except Exception as exc:  # e.g. the objective could not be pickled
            raise ObjectiveError(
                f"could not run objective {job.objective.name} in a worker process:"
                f" {type(exc).__name__}: {exc}"
            ) from exc

    @staticmethod
    async def _submit(slot: _Slot, args: tuple[Any, ...]) -> Future[Any]:
        """Hand the job to the slot's worker; the future of its outcome.

        A running pool takes a job without blocking (a queue put and a 1-byte
        wake-up write). A fresh pool starts a process, in a thread, and that is
        never abandoned half-way: a cancellation meanwhile waits for the job to be
        submitted, so the caller can withdraw it or kill its process.
        """
        if slot.is_running:
            return slot.submit(*args)
        return await shielded(anyio.to_thread.run_sync(slot.submit, *args))

    async def _run_in_thread(
        self, fn: Callable[[dict[str, Any]], Any], job: Job
    ) -> tuple[str, Any, str]:
        loop = asyncio.get_running_loop()

        def deliver(step: float, metrics: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(job.channel.deliver, step, metrics)

        reporter = CallbackReporter(deliver)
        unstop = job.channel.on_stop(lambda reason: setattr(reporter, "reason", reason))
        try:
            return await loop.run_in_executor(
                self._threads, call_objective, fn, job.parameters, None, reporter
            )
        finally:
            unstop()

    @staticmethod
    def _unwrap(outcome: tuple[str, Any, str]) -> Any:
        status, value, details = outcome
        if status == "error":
            raise ObjectiveError(value, details=details)
        return value

    async def aclose(self) -> None:
        """Kill every worker process and stop the threads."""
        for slot in self._slots:
            await shielded(anyio.to_thread.run_sync(slot.kill))
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None
        await self._progress_files.aclose()
        await self._reports.aclose()
        self._ready = None


#: What :func:`_left_by_worker` finds besides an outcome.
_NOT_STARTED, _CUT_SHORT = object(), object()


def _left_by_worker(files: TrialFiles, parameters: Mapping[str, Any], since: float | None) -> Any:
    """What a function trial's worker left in its folder (blocking: call in a thread).

    The objective's result, its TrialError (``error.json``), ``_CUT_SHORT`` (only
    ``params.json``: its worker died with the driver) or ``_NOT_STARTED``.
    """
    if not files.holds_trial(parameters, since):
        return _NOT_STARTED
    if files.written_since(files.result, since):
        try:
            return json.loads(files.result.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return _CUT_SHORT  # written whole or not at all: a file of someone else's
    if files.written_since(files.error, since):
        try:
            error = reported_error(files.error.read_bytes())
        except OSError:
            error = None
        if error is not None:
            return error
    return _CUT_SHORT


async def _settled(outcome: Any) -> Any:
    """An outcome already known, as the awaitable a re-attached trial needs."""
    if isinstance(outcome, TrialError):
        raise outcome
    return outcome


def _cancelled_while_submitting() -> bool:
    """Whether this task was cancelled during a shielded submit (its error was held back)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _exit_detail(exc: BaseException) -> str:
    match = re.search(r"exit codes? of the workers? (?:is|are) \{?([^}\n]*)\}?", str(exc))
    return f"exit code {match.group(1)}" if match else type(exc).__name__
