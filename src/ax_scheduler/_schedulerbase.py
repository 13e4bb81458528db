"""What AxScheduler's sync and async forms share: what it runs, and the async methods.

:class:`~ax_scheduler.AxScheduler` (``_facade``) adds the sync form, which drives
the same core on one event-loop thread of its own.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pandas as pd

from . import _shutdown
from ._batch import Batch, batch_context_async
from ._config import SchedulerConfig
from ._core import Scheduler
from ._events import Event
from ._objective import container_objective, function_objective, script_objective
from ._outcomes import Best, Progress, RunSummary
from ._runloop import StopWhen
from ._table import results_frame
from .runners._base import Runner


class SchedulerBase:
    """The scheduler's state and its async API (see :class:`~ax_scheduler.AxScheduler`)."""

    _core: Scheduler
    _ax_client: Any

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
        self._core.objective = function_objective(objective_fn, self.runner)

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
            ConfigError: ``args`` use an unknown ``{placeholder}``.
        """
        self._core.objective = script_objective(script_path, script_options, self.runner)

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
            ConfigError: An empty image name, an unknown ``{placeholder}``, or a
                relative volume path for a runner on another machine.
            TypeError: The runner does not run containers.
        """
        self._core.objective = container_objective(
            container_image, container_command, container_options, self.runner
        )

    # -- async API ------------------------------------------------------------------
    def batch_trial_context_async(self) -> AbstractAsyncContextManager[Batch]:
        """Async form of :meth:`batch_trial_context` (``async with``)."""
        return batch_context_async(self._core)

    async def run_optimization_async(
        self,
        max_trials: int = 10,
        timeout: float | None = None,
        on_timeout: str = "cancel",
        stop_when: StopWhen | None = None,
    ) -> Best:
        """Async form of :meth:`run_optimization`.

        Cancelling the awaiting task cancels the running trials, records them in
        Ax as ABANDONED and writes the checkpoint before the cancellation propagates.
        """
        return await self._core.run_optimization(max_trials, timeout, on_timeout, stop_when)

    async def wait_for_completed_trials_async(self, timeout: float | None = None) -> list[int]:
        """Async form of :meth:`wait_for_completed_trials`."""
        return await self._core.wait_for_completed_trials(timeout)

    async def save_experiment_async(self, path: str | os.PathLike[str]) -> Path:
        """Async form of :meth:`save_experiment`."""
        return await self._core.save(path)

    def events(self) -> AsyncIterator[Event]:
        """Every event of the runs from now on, until the scheduler closes.

        ``async for event in scheduler.events(): ...`` on the event loop that
        runs the trials (the ``*_async`` methods'): a trial queued, started,
        reported (``step``, ``metrics``), completed, failed, stopped early or
        abandoned, and each run's start and end. ``event.to_json()`` is ready to
        stream to a web page. A reader that falls 10,000 events behind loses the
        oldest (counted in ``event.dropped``). The sync API's counterpart is
        :meth:`on_event`.
        """
        return self._core.events.subscribe()

    def on_event(self, callback: Callable[[Event], Any]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event (see :meth:`events`).

        It runs on the scheduler's event loop (the sync API's loop thread) and
        must return quickly; one that raises is logged and removed.

        Returns:
            A function that unregisters the callback.

        Raises:
            TypeError: ``callback`` is not callable.
        """
        return self._core.events.on_event(callback)

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
        _shutdown.forget(self)
        await self._core.aclose()

    async def __aenter__(self) -> Self:
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

    def __repr__(self) -> str:
        return f"AxScheduler(experiment={self._core.ax.experiment_name!r}, runner={self.runner!r})"


def _write_report(experiment: Any, path: str | os.PathLike[str], title: str | None) -> Path:
    from ._report import write_report  # plotly is imported only for a report

    return Path(write_report(experiment, path, title=title))
