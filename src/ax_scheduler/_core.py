"""The async scheduler: the one place that drives Ax.

:class:`Scheduler` is the facade's one core object. It wires small
collaborators, each owning one idea, around a shared :class:`~._context.Context`:

* ``_trial.Trials``: one trial's life (a slot, its job under ``trial_timeout``
  and retries, its outcome recorded, or abandoned);
* ``_record.Recorder``: recording outcomes in Ax, on the Ax thread;
* ``_runloop.RunLoop``: ``run_optimization`` (slots kept full, prefetch, the
  failure rate, the run's timeout);
* ``_batch.Batches``: ``batch_trial_context`` and attaching given trials;
* ``_resume.Resumer``: re-attaching the trials of a resumed run;
* ``_outputs``: the results table, the report and the saved snapshot.

All Ax calls run on one dedicated thread (``_axthread``), so Ax objects are
touched by one thread at a time and a 0.3 s+ BoTorch fit never blocks the event
loop; recording a finished trial overtakes queued generation. Each trial is an
asyncio task; completions are event-driven. Every timeout and back-off waits on
one injected clock (``_clock``).
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from pathlib import Path
from typing import Any

from . import _outputs
from ._ax import AxAdapter
from ._axthread import AxThread
from ._batch import Batch, Batches
from ._checkpoint import Checkpointer, Save, file_save, results_table, take_snapshot
from ._clock import REAL_CLOCK, Clock
from ._config import SchedulerConfig
from ._context import Context
from ._earlystop import Progressions
from ._events import Events
from ._exceptions import ObjectiveNotSetError
from ._files import write_atomically
from ._jobs import Objective
from ._outcomes import CANCELLED_BY_USER, DRIVER_RESTARTED, Best, Progress, RunSummary
from ._record import Recorder
from ._resume import Resumer
from ._runloop import RunLoop, StopWhen, check_run_arguments
from ._sqlstore import SqlStore, redacted
from ._trial import Trials
from .runners._base import Runner

# Imported from here by the facade, the CLI and tests.
__all__ = [
    "CANCELLED_BY_USER",
    "DRIVER_RESTARTED",
    "Best",
    "Progress",
    "RunSummary",
    "Scheduler",
    "write_atomically",
]


class Scheduler:
    """Runs Ax trials on a runner. Async API; see ``AxScheduler`` for the facade.

    Args:
        adapter: The Ax client, wrapped.
        runner: Where trials run.
        config: Validated options.
        clock: Times every timeout and retry back-off; tests pass a
            ``testing.FakeClock``.
    """

    def __init__(
        self,
        adapter: AxAdapter,
        runner: Runner,
        config: SchedulerConfig,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self.ax = adapter
        self.runner = runner
        self.config = config
        # Read once, here: after this only the Ax thread touches the experiment.
        self.experiment_name = adapter.experiment_name
        self.progress = Progress()
        self._ctx = Context(
            adapter, runner, config, clock, self.progress, AxThread("ax-scheduler-ax")
        )
        #: Saved in the checkpoint's header as ``"spec"`` when set: the CLI keeps the
        #: experiment file there, so ``ax-scheduler resume run.json`` can rebuild the run.
        self.spec: dict[str, Any] | None = None
        self.checkpoint = self._ctx.checkpoint = self._checkpointer()
        recorder = Recorder(adapter, runner.kind, self.progress)
        # Absolute now: trials must not depend on a later os.chdir(), and resolving
        # a path touches the filesystem, which the event loop must not do.
        output_dir = config.job_output_dir.expanduser().absolute()
        self._progressions = Progressions(self._ctx)
        self._progressions.check_strategies()
        self._trials = Trials(
            self._ctx, recorder, self.experiment_name, output_dir, self._progressions
        )
        self._run_loop = RunLoop(self._ctx, self._trials, recorder)
        self._batches = Batches(self._ctx, self._trials, self._prepare)
        self._resumer = Resumer(self._ctx, self._trials, recorder, self._batches.attach)
        runner.use_config(config)

    def _checkpointer(self) -> Checkpointer | None:
        target = self.config.checkpoint_path
        if target is None:
            return None
        if isinstance(target, str):  # a database URL
            save = self._database_save(target)
            return Checkpointer(redacted(target), self._checkpoint_header, save)
        path = target.expanduser().absolute()
        snapshot = functools.partial(take_snapshot, self.ax)
        save = file_save(path, lambda: self._ctx.call_ax(snapshot), write_atomically)
        return Checkpointer(path, self._checkpoint_header, save)

    def _database_save(self, url: str) -> Save:
        """Writes to Ax's SQL store what changed, with our row (on the Ax thread)."""
        store = SqlStore(url, self.ax)

        def write(header: dict[str, Any]) -> None:
            store.write(header, results_table(self.ax))

        async def save(header: dict[str, Any]) -> None:
            await self._ctx.call_ax(functools.partial(write, header))

        return save

    def _checkpoint_header(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment_name,
            "runner": self.runner.kind,
            "written_at": time.time(),
            "config": self.config.model_dump(mode="json"),
            "client_type": self.ax.client_type,
            **({"spec": self.spec} if self.spec is not None else {}),
        }

    # -- state the facade reads ----------------------------------------------------------
    @property
    def objective(self) -> Objective | None:
        """What every trial runs; set by the facade before trials run."""
        return self._trials.objective

    @objective.setter
    def objective(self, objective: Objective | None) -> None:
        self._trials.objective = objective

    @property
    def capacity(self) -> int:
        """How many trials run at once."""
        return self._trials.capacity

    @property
    def running_trials(self) -> list[int]:
        """Indices of trials dispatched and not yet recorded."""
        return self._trials.running

    @property
    def last_run(self) -> RunSummary | None:
        """What the last finished ``run_optimization`` did."""
        return self._run_loop.last_run

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop trials run on, once one ran a trial."""
        return self._trials.loop

    @property
    def interrupt_reason(self) -> str | None:
        """Set by the facade on Ctrl-C: the reason the trials it cancels get."""
        return self._trials.interrupt_reason

    @interrupt_reason.setter
    def interrupt_reason(self, reason: str | None) -> None:
        self._trials.interrupt_reason = reason

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` ran (the Ax thread is gone)."""
        return self._ctx.closed

    # -- running ---------------------------------------------------------------------------
    async def _prepare(self) -> None:
        """Start the runner and check the objective on it, before any trial exists."""
        self._trials.bind_loop()
        objective = self.objective
        if objective is None:
            raise ObjectiveNotSetError(
                "no objective: call set_objective_function(fn) before running trials"
            )
        if not objective.is_async:  # async objectives run on the loop itself
            await self.runner.start()
            await self.runner.check_objective(objective)
        if self._resumer.lost:
            await self._resumer.reattach_lost()

    async def run_optimization(
        self,
        max_trials: int = 10,
        timeout: float | None = None,
        on_timeout: str = "cancel",
        stop_when: StopWhen | None = None,
    ) -> Best:
        """Run ``max_trials`` new trials, keeping every slot busy; return the best.

        See ``AxScheduler.run_optimization`` for the full contract.
        """
        check_run_arguments(max_trials, timeout, on_timeout)
        if stop_when is not None and not callable(stop_when):
            raise TypeError(
                f"stop_when must be a callable taking the run's Progress, got {stop_when!r}"
            )
        self.progress.begin(max_trials)
        await self._prepare()
        adopted = self._resumer.take_reattached()
        return await self._run_loop.run(max_trials, timeout, on_timeout, adopted, stop_when)

    def new_batch(self) -> Batch:
        """Open a batch; parameters added to it are validated at once."""
        return self._batches.open()

    def discard_batch(self, batch: Batch) -> None:
        """Drop a batch whose ``with`` body raised: nothing runs."""
        self._batches.discard(batch)

    async def submit_batch(self, batch: Batch) -> list[int]:
        """Attach the batch's trials in add order and run them.

        Waits for all of them when ``synchronous`` is set. Returns the trial indices.
        """
        return await self._batches.submit(batch)

    async def wait_for_completed_trials(self, timeout: float | None = None) -> list[int]:
        """Wait until every dispatched trial is finished and recorded.

        Returns:
            Indices of the trials that were outstanding when the wait began.

        Raises:
            TimeoutError: ``timeout`` seconds passed first; the trials keep running.
        """
        if self._resumer.lost:
            await self._prepare()
        self._trials.bind_loop()
        self._resumer.take_reattached()  # waited for here: no run adopts them
        return await self._trials.wait_all(timeout)

    def adopt_lost_trials(self) -> list[int]:
        """Take the trials a dead driver left RUNNING, to re-attach when the run starts.

        Returns:
            Their indices.
        """
        return self._resumer.adopt_lost_trials()

    # -- results -------------------------------------------------------------------------
    async def results(self) -> Any:
        """The results table (see ``_table.results_frame``), running trials included."""
        return await _outputs.results(self._ctx, self._trials.jobs)

    async def report(self, path: str | os.PathLike[str], title: str | None = None) -> Path:
        """Write the HTML report (see ``_report.write_report``); returns its path."""
        return await _outputs.report(self._ctx, self._trials.jobs, path, title)

    async def save(self, path: str | os.PathLike[str]) -> Path:
        """Write Ax's JSON snapshot of client, experiment and generation strategy."""
        return await _outputs.save(self._ctx, path)

    # -- lifecycle -------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Cancel running trials (recorded as abandoned) and stop the runner."""
        if self._ctx.closed:
            return
        self._ctx.closed = True
        await self._trials.aclose(self.interrupt_reason or "cancelled: the scheduler was closed")
        await self.runner.aclose()
        self._ctx.ax_thread.shutdown()
        self._ctx.events.close()

    def close_unused(self) -> None:
        """Close a scheduler that never ran anything (no loop, no workers)."""
        self._ctx.closed = True
        self._ctx.ax_thread.shutdown()
        self._ctx.events.close()

    @property
    def events(self) -> Events:
        """The run's events (see ``_events``)."""
        return self._ctx.events
