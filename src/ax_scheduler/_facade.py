"""AxScheduler: the tutorial's sync API and its async twins over one async core."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import cloudpickle
import pandas as pd

from . import _shutdown
from ._ax import AxAdapter, client_from_snapshot
from ._batch import Batch, batch_context_async, batch_context_sync
from ._checkpoint import check_overwrite, read_checkpoint
from ._clock import REAL_CLOCK, Clock
from ._config import ContainerOptions, SchedulerConfig, ScriptOptions
from ._container import make_container_objective
from ._core import Scheduler
from ._exceptions import CheckpointError, UsageError
from ._jobs import FunctionObjective, Objective
from ._outcomes import CANCELLED_BY_USER, Best, Progress, RunSummary
from ._portal import Portal
from ._progress import progress_display
from ._script import make_script_objective
from ._table import results_frame
from .runners._base import Runner

logger = logging.getLogger("ax_scheduler")
T = TypeVar("T")

__all__ = ["AxScheduler", "Progress", "RunSummary"]


class AxScheduler:
    """Runs an Ax experiment's trials on a runner, in parallel.

    Every method has a sync form (for scripts and notebooks) and an ``*_async`` form
    that runs on the caller's event loop (for asyncio applications). Use one form
    per scheduler: the sync methods drive the scheduler on its own loop thread.

    Args:
        ax_client: An ``ax.service.ax_client.AxClient`` or ``ax.api.client.Client``
            whose experiment is already created.
        runner: Where trials run, e.g. ``JobLibRunner(n_jobs=4)``.
        config: Options, see :class:`~ax_scheduler.SchedulerConfig`, e.g.
            ``{"synchronous": False, "trial_timeout": 3600}``.
        clock: For tests: the clock every timeout and retry back-off waits on,
            e.g. :class:`ax_scheduler.testing.FakeClock` (with
            :class:`~ax_scheduler.testing.FakeRunner`) to run a whole campaign
            in virtual time. The real clock by default.

    Raises:
        TypeError: ``ax_client`` or ``runner`` is of the wrong type.
        ConfigError: A config key is unknown or a value invalid.
        CheckpointError: ``checkpoint_path`` holds another run's checkpoint.
    """

    def __init__(
        self,
        ax_client: Any,
        runner: Runner,
        config: SchedulerConfig | Mapping[str, Any] | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(runner, Runner):
            raise TypeError(
                "runner must be an ax_scheduler runner such as JobLibRunner(n_jobs=4),"
                f" got {type(runner).__name__}"
            )
        adapter = AxAdapter.wrap(ax_client)
        checked = SchedulerConfig.from_user(config)
        if checked.checkpoint_path is not None:
            check_overwrite(
                checked.checkpoint_path, adapter.experiment_name, len(adapter.experiment.trials)
            )
        self._ax_client = ax_client
        self._core = Scheduler(adapter, runner, checked, clock or REAL_CLOCK)
        self._portal: Portal | None = None
        self._portal_lock = threading.Lock()
        _open_schedulers.add(self)

    # -- what it runs ---------------------------------------------------------------
    @property
    def ax_client(self) -> Any:
        """The Ax client this scheduler drives."""
        return self._ax_client

    @property
    def experiment(self) -> Any:
        """The Ax experiment."""
        return self._core.ax.experiment

    @property
    def runner(self) -> Runner:
        """The runner trials run on."""
        return self._core.runner

    @property
    def config(self) -> SchedulerConfig:
        """The validated options."""
        return self._core.config

    @property
    def running_trials(self) -> list[int]:
        """Indices of trials dispatched and not yet recorded in Ax."""
        return self._core.running_trials

    @property
    def progress(self) -> Progress:
        """Live counters of the current run: what the progress display shows.

        For applications that show progress their own way (a web page, a
        notebook cell): ``total``, ``queued``, ``running``, ``completed``,
        ``failed``, ``abandoned``, ``ended`` and ``best`` (objective -> best value
        so far). Read them; the scheduler updates them.
        """
        return self._core.progress

    @property
    def last_run(self) -> RunSummary | None:
        """What the last finished ``run_optimization`` did: its trials and outcomes,
        and whether its timeout was reached and what happened to running trials."""
        return self._core.last_run

    def set_objective_function(self, objective_fn: Callable[[dict[str, Any]], Any]) -> None:
        """Set the function every trial evaluates.

        Args:
            objective_fn: ``fn(parameterization) -> result`` where result is
                ``{"metric": value}``, ``{"metric": (mean, sem)}`` or, for a
                single-metric experiment, a bare number. ``async def`` functions
                run on the event loop itself (for I/O-bound objectives); plain
                functions run on the runner.

        Raises:
            TypeError: ``objective_fn`` is not callable, or cannot be pickled for a
                runner that sends it to worker processes.
        """
        if not callable(objective_fn):
            raise TypeError(f"objective_fn must be callable, got {objective_fn!r}")
        objective = FunctionObjective(objective_fn)
        if self.runner.needs_pickling and not objective.is_async:
            _check_picklable(objective_fn, self.runner)
        self._set_objective(objective)

    def set_script_objective(
        self,
        script_path: str | os.PathLike[str],
        script_options: Mapping[str, Any] | None = None,
    ) -> None:
        """Evaluate every trial by running a script (any executable) as a subprocess.

        Each trial gets a directory ``job_output_dir/<experiment>-trial-<index>``
        with ``params.json``; the script must write ``result.json`` there
        (``{"metric": value}`` or ``{"metric": [mean, sem]}``). Its environment has
        ``JOB_PARAMS_FILE``, ``JOB_OUTPUT_FILE``, ``JOB_TRIAL_INDEX`` and
        ``JOB_WORKDIR``; its stdout and stderr go to ``stdout.log`` and
        ``stderr.log``. The script runs from an argv list, never through a shell.

        Args:
            script_path: The script.
            script_options: ``{"interpreter": "python3", "args": ["{params_file}"],
                "env": {...}, "timeout": 1200}``; see
                :class:`~ax_scheduler.ScriptOptions`.

        Raises:
            FileNotFoundError: The script does not exist, or its interpreter is not
                on PATH (for runners that run scripts on this machine; SSH and
                Slurm runners look the interpreter up on their hosts, in the jobs'
                environment, before the first trial, and raise RunnerError).
            PermissionError: The script is not executable and no interpreter is set.
            ConfigError: An option is unknown or invalid.
            ValueError: ``args`` use an unknown ``{placeholder}``.
        """
        options = ScriptOptions.from_user(script_options)
        here = self.runner.objectives_run_here  # else the runner looks where its jobs run
        self._set_objective(make_script_objective(script_path, options, find_interpreter=here))

    def set_container_objective(
        self,
        container_image: str,
        container_command: str | list[str] | None = None,
        container_options: Mapping[str, Any] | None = None,
    ) -> None:
        """Evaluate every trial by running a container.

        ``DockerRunner`` runs it with ``docker run``; ``SlurmRunner`` with
        ``apptainer exec`` (``container_options={"engine": "apptainer"}``).

        The trial directory (``params.json`` in, ``result.json`` out, as for
        :meth:`set_script_objective`) is mounted at ``/job``; ``{params_file}``,
        ``{output_file}``, ``{trial_index}`` and ``{workdir}`` in the command are
        the paths inside the container. The container runs as your uid, with
        ``--rm``, named after the experiment and trial.

        Args:
            container_image: An image the engine has, e.g. ``"sim:latest"``.
            container_command: The command, e.g. ``"python /app/simulate.py
                {params_file} {output_file}"``; split like a shell would, but never
                run through one. None runs the image's default command.
            container_options: ``{"volumes": {"./data": "/app/data"}, "env_vars":
                {...}, "cpus": 2, "memory": "4g", "gpus": None, "network": "none",
                "timeout": 3600}``; see :class:`~ax_scheduler.ContainerOptions`.

        Raises:
            ConfigError: An option is unknown or invalid.
            FileNotFoundError: A volume's host path does not exist (on this
                machine, for DockerRunner; SlurmRunner checks them on the cluster
                before the first trial, and raises RunnerError).
            ValueError: An empty image name, an unknown ``{placeholder}``, or a
                relative volume path for a runner on another machine.
            TypeError: The runner does not run containers.
        """
        options = ContainerOptions.from_user(container_options)
        here = self.runner.objectives_run_here  # else the runner checks volumes where jobs run
        objective = make_container_objective(
            container_image, container_command, options, check_volumes=here
        )
        self._set_objective(objective)

    def _set_objective(self, objective: Objective) -> None:
        accepted = self.runner.objective_types
        if accepted and not isinstance(objective, accepted):
            kinds = ", ".join(kind.__name__ for kind in accepted)
            raise TypeError(
                f"{self.runner!r} cannot run a {type(objective).__name__}; it runs: {kinds}"
            )
        self._core.objective = objective

    # -- sync API -------------------------------------------------------------------
    def batch_trial_context(self) -> AbstractContextManager[Batch]:
        """Collect trials with ``batch.add_trial(params)``; they run when the block ends.

        On normal exit the trials are attached to Ax in add order and run in
        parallel up to the runner's capacity. With ``synchronous=True`` (default)
        the exit returns once all are finished and recorded; otherwise it returns
        once they are submitted. If the block raises, nothing runs.

        Example:
            >>> with scheduler.batch_trial_context() as batch:  # doctest: +SKIP
            ...     batch.add_trial({"x": 0.5, "y": 0.5})
        """
        return batch_context_sync(self._core, self._call)

    def run_optimization(
        self, max_trials: int = 10, timeout: float | None = None, on_timeout: str = "cancel"
    ) -> Best:
        """Run ``max_trials`` new trials generated by Ax, keeping the runner full.

        A freed slot gets the next candidate at once (asynchronous Bayesian
        optimization); when several slots are free, Ax is asked for several
        candidates in one call. When Ax refuses a candidate until more data
        arrives (parallelism limit, data required), the scheduler waits for a
        running trial to finish and asks again. Failed trials are marked FAILED in
        Ax and the run goes on.

        Args:
            max_trials: How many new trials to run. Fewer run if Ax's generation
                strategy completes first.
            timeout: Seconds the whole call may take. On timeout no new trial is
                started and the best so far is returned; ``on_timeout`` says what
                happens to running trials.
            on_timeout: ``"cancel"`` (default): running trials are cancelled and
                marked ABANDONED. ``"finish"``: the call waits for them to end and
                records their results. :attr:`last_run` tells which happened.

        Returns:
            Single objective: the best parameterization of the experiment so far
            (a dict, Ax's best point). Multi-objective: the list of Pareto-optimal
            parameterizations (dicts; ``best[0]`` picks one). None when no trial of
            the experiment has data, e.g. because every trial failed. A run none of
            whose own trials completed logs a warning naming each failed or
            abandoned trial and its reason, whatever it returns; :attr:`last_run`
            lists them too.

        Raises:
            ObjectiveNotSetError: No objective was set.
            OptimizationStalledError: Ax refuses candidates and nothing is running.
            FailureRateExceededError: More than ``tolerated_failure_rate`` of the
                trials failed; running trials were cancelled.
            KeyboardInterrupt: Ctrl-C. Running trials were cancelled (ABANDONED,
                "cancelled by user") and the checkpoint written first; a second
                Ctrl-C skips that wait.
        """
        core = self._core
        with progress_display(
            core.progress, core.runner.load, core.runner.kind, enabled=core.config.progress
        ):
            return self._call(core.run_optimization, max_trials, timeout, on_timeout)

    def wait_for_completed_trials(self, timeout: float | None = None) -> list[int]:
        """Block until every outstanding trial is finished and recorded in Ax.

        Returns:
            Indices of the trials that were outstanding.

        Raises:
            TimeoutError: ``timeout`` seconds passed first; trials keep running.
        """
        return self._call(self._core.wait_for_completed_trials, timeout)

    def save_experiment(self, path: str | os.PathLike[str]) -> Path:
        """Save client, experiment and generation strategy as Ax JSON, atomically.

        Trials still running are saved as RUNNING; :meth:`load_experiment` marks
        them FAILED, because their jobs did not survive the driver.

        Returns:
            The path written.
        """
        return self._call(self._core.save, path)

    def results(self) -> pd.DataFrame:
        """A table of every trial of the experiment, one row each (a ``pandas.DataFrame``).

        Columns: ``trial_index``, ``status`` (Ax's: ``COMPLETED``, ``FAILED``,
        ``ABANDONED``, ``RUNNING`` ...), one per parameter, ``<metric>`` and
        ``<metric>_sem`` per metric, ``failure_reason``, ``runner``, ``job_id``
        (Slurm job id, container name or process id), ``host``,
        ``queued_at``/``started_at``/``finished_at`` (UTC), ``duration_s``, and the
        trial's folder ``workdir`` with its ``stdout``/``stderr`` log paths (on
        ``host`` for remote runners). ``df.attrs`` names the ``parameters``,
        ``metrics`` and ``objectives``. Works during a run (running trials
        included) and after :meth:`close`.
        """
        if self._reads_directly():
            return results_frame(self.experiment)
        return self._call(self._core.results)

    def report(
        self, path: str | os.PathLike[str] = "report.html", title: str | None = None
    ) -> Path:
        """Write a self-contained HTML report of the experiment (opens offline).

        It shows the optimization trace (best so far against trials and against
        time), the parameters' effect, the Pareto front (multi-objective), a
        timeline of trials per worker and the results table (:meth:`results`).

        Args:
            path: The HTML file to write (replaced atomically).
            title: The page title; the experiment's name by default.

        Returns:
            The path written.
        """
        if self._reads_directly():
            return _write_report(self.experiment, path, title)
        return self._call(self._core.report, path, title)

    @classmethod
    def load_experiment(
        cls,
        path: str | os.PathLike[str],
        runner: Runner,
        config: SchedulerConfig | Mapping[str, Any] | None = None,
    ) -> AxScheduler:
        """Rebuild a scheduler from :meth:`save_experiment`'s file, ready to continue.

        Set the objective again before running trials (functions are not saved).

        Args:
            path: A file written by :meth:`save_experiment`, by ``AxClient.
                save_to_json_file`` / ``Client.save_to_json_file``, or an experiment
                saved by Ax's ``json_store.save_experiment``.
            runner: Where the continued run's trials run.
            config: Options for the new scheduler.
        """
        snapshot = json.loads(Path(path).read_text(encoding="utf-8"))
        scheduler = cls(client_from_snapshot(snapshot), runner, config)
        for index in scheduler._core.ax.stale_dispatched_trials():
            scheduler._core.ax.fail(
                index, "the scheduler running this trial stopped before it finished"
            )
            logger.warning(
                "trial %d was still running when %s was saved: marked FAILED", index, path
            )
        return scheduler

    @classmethod
    def resume(
        cls,
        checkpoint_path: str | os.PathLike[str],
        runner: Runner,
        config: Mapping[str, Any] | None = None,
    ) -> AxScheduler:
        """Continue a run from its checkpoint after the driver died (crash, SIGKILL, reboot).

        Trials the checkpoint shows RUNNING are re-attached when the run starts
        (the first ``run_optimization`` or ``wait_for_completed_trials``): a Slurm,
        SSH or Docker job that still runs is waited for, one that finished has its
        result collected; nothing is run twice. The local pool's scripts are
        followed by their pid the same way, and its function trials' results are
        read from their trial folders; a function trial cut short died with its
        worker process: it is marked FAILED ("driver restarted") and, with
        ``requeue_lost_trials``, run again as a new trial with the same parameters.
        A trial that had not started yet runs now.

        Set the objective again before running (functions are not saved). The
        re-attached trials' ``trial_timeout`` counts from the resume.

        Args:
            checkpoint_path: The ``checkpoint_path`` of the run; the resumed run
                keeps writing it.
            runner: Where the run continues: the same kind of runner as before, so
                its jobs can be re-attached (e.g. ``SlurmRunner`` on the same
                cluster).
            config: Options to change; the others are the checkpoint's.

        Raises:
            CheckpointError: The file is missing, corrupt, or not a checkpoint.
            ConfigError: An option in ``config`` is unknown or invalid.
        """
        checkpoint = read_checkpoint(checkpoint_path)
        options = {**checkpoint.config, "checkpoint_path": str(checkpoint.path)}
        options.update(config or {})
        try:
            client = client_from_snapshot(checkpoint.client)
        except Exception as exc:  # noqa: BLE001 - whatever Ax's decoder raises
            raise CheckpointError(
                f"checkpoint {str(checkpoint_path)!r} is corrupt: Ax cannot load its"
                f" experiment ({type(exc).__name__}: {exc})"
            ) from None
        scheduler = cls(client, runner, options)
        lost = scheduler._core.adopt_lost_trials()
        logger.info(
            "resumed %s from %s: %d trials, %d to re-attach: %s",
            checkpoint.experiment,
            checkpoint_path,
            len(scheduler.experiment.trials),
            len(lost),
            lost,
        )
        return scheduler

    def close(self) -> None:
        """Cancel running trials (recorded as ABANDONED), stop workers and the loop thread."""
        _open_schedulers.discard(self)
        core_loop = self._core.loop
        if self._portal is None and core_loop is not None and core_loop.is_running():
            raise UsageError(
                "this scheduler runs on an asyncio loop: use `await scheduler.aclose()`"
            )
        if self._portal is None and core_loop is None:
            # Never ran a trial: nothing to cancel, and the runner's workers (if a
            # shared runner has any) belong to whoever started them.
            self._core.close_unused()
            return
        # Used through the sync API, or through an async loop that has ended: the
        # clean-up runs on the scheduler's own loop thread.
        portal = self._get_portal()
        try:
            portal.call(self._core.aclose)
        finally:
            portal.stop()
            self._portal = None

    def __enter__(self) -> AxScheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- async API ------------------------------------------------------------------
    def batch_trial_context_async(self) -> AbstractAsyncContextManager[Batch]:
        """Async form of :meth:`batch_trial_context` (``async with``)."""
        return batch_context_async(self._core)

    async def run_optimization_async(
        self, max_trials: int = 10, timeout: float | None = None, on_timeout: str = "cancel"
    ) -> Best:
        """Async form of :meth:`run_optimization`.

        Cancelling the awaiting task cancels the running trials, records them in
        Ax as ABANDONED and writes the checkpoint before the cancellation propagates.
        """
        return await self._core.run_optimization(max_trials, timeout, on_timeout)

    async def wait_for_completed_trials_async(self, timeout: float | None = None) -> list[int]:
        """Async form of :meth:`wait_for_completed_trials`."""
        return await self._core.wait_for_completed_trials(timeout)

    async def save_experiment_async(self, path: str | os.PathLike[str]) -> Path:
        """Async form of :meth:`save_experiment`."""
        return await self._core.save(path)

    async def results_async(self) -> pd.DataFrame:
        """Async form of :meth:`results`."""
        if self._reads_directly():  # in a thread: a large table must not stall the loop
            return await asyncio.to_thread(results_frame, self.experiment)
        return await self._core.results()

    async def report_async(
        self, path: str | os.PathLike[str] = "report.html", title: str | None = None
    ) -> Path:
        """Async form of :meth:`report` (the page is built on a worker thread)."""
        if self._reads_directly():
            return await asyncio.to_thread(_write_report, self.experiment, path, title)
        return await self._core.report(path, title)

    async def aclose(self) -> None:
        """Async form of :meth:`close`."""
        _open_schedulers.discard(self)
        await self._core.aclose()

    async def __aenter__(self) -> AxScheduler:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- plumbing -------------------------------------------------------------------
    def _reads_directly(self) -> bool:
        """No trial is being recorded (closed, or never ran): read the experiment
        without the Ax thread (and, for the sync API, without starting a loop)."""
        return self._core.closed or self._core.loop is None

    def _get_portal(self) -> Portal:
        with self._portal_lock:
            if self._portal is None:
                self._portal = Portal()
            return self._portal

    def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        self._core.interrupt_reason = None
        try:
            return self._get_portal().call(fn, *args, on_interrupt=self._interrupted_by_user)
        finally:
            _shutdown.arm()

    def _interrupted_by_user(self) -> None:
        """Called on Ctrl-C, before the call is cancelled: the reason its trials get."""
        self._core.interrupt_reason = f"{CANCELLED_BY_USER} (Ctrl-C)"

    def __repr__(self) -> str:
        return f"AxScheduler(experiment={self._core.ax.experiment_name!r}, runner={self.runner!r})"


def _write_report(experiment: Any, path: str | os.PathLike[str], title: str | None) -> Path:
    from ._report import write_report  # plotly is imported only for a report

    return Path(write_report(experiment, path, title=title))


def _check_picklable(fn: Callable[..., Any], runner: Runner) -> None:
    try:
        cloudpickle.dumps(fn)
    except Exception as exc:
        raise TypeError(
            f"objective {getattr(fn, '__qualname__', fn)!r} cannot be pickled to send to"
            f" {runner!r}'s worker processes ({type(exc).__name__}: {exc}); define it at"
            " module level without unpicklable captured state"
        ) from exc


#: Strong references: a scheduler whose variable went out of scope may still run
#: background trials, and must still be closed (trials recorded, workers stopped).
_open_schedulers: set[AxScheduler] = set()


def _close_open_schedulers() -> None:
    """A script that never calls close() still exits promptly, leaving no workers."""
    for scheduler in list(_open_schedulers):
        try:
            scheduler.close()
        except Exception:
            logger.exception("closing %r at exit failed", scheduler)


_shutdown.on_exit(_close_open_schedulers)
