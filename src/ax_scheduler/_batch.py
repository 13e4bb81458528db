"""batch_trial_context: collect parameterizations, then run them together.

:class:`Batch` collects (and validates at once); :class:`Batches` attaches a
closed batch's trials to Ax in add order, hands them to the runner together
(a Slurm job array, for a runner with native batches) and, with
``synchronous``, waits for them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

from ._exceptions import UsageError
from ._runmetadata import dispatch_info

if TYPE_CHECKING:  # Batch alone is light: importing it does not import Ax
    from ._context import Context
    from ._core import Scheduler
    from ._trial import Trials

logger = logging.getLogger("ax_scheduler")

Parameters = dict[str, Any]
Attached = list[tuple[int, Parameters]]


class Batch:
    """Trials added inside ``batch_trial_context()``.

    Attributes:
        parameters: The validated parameterizations, in add order.
        trial_indices: Their Ax trial indices, set when the batch is submitted.
    """

    def __init__(self, validate: Callable[[Any], dict[str, Any]]) -> None:
        self._validate = validate
        self.parameters: list[dict[str, Any]] = []
        self.trial_indices: list[int] = []

    def add_trial(self, parameters: dict[str, Any]) -> None:
        """Queue a trial with these parameters; it runs when the ``with`` block ends.

        If a trial with exactly these parameters was created by the Ax client's
        ``get_next_trial()`` and has not run, that trial is run instead of
        attaching a duplicate.

        Raises:
            InvalidParametersError: A ``ValueError`` naming the parameter that is
                unknown, missing, of the wrong type or out of bounds. Nothing is
                attached.
        """
        self.parameters.append(self._validate(parameters))

    def __len__(self) -> int:
        return len(self.parameters)


class Batches:
    """Opens, drops and runs batches; attaches given parameterizations to Ax.

    Args:
        ctx: The scheduler's shared parts.
        trials: Starts the batch's trials.
        prepare: Starts the runner (and re-attaches lost trials) before any
            trial of a batch exists.
    """

    def __init__(
        self, ctx: Context, trials: Trials, prepare: Callable[[], Awaitable[None]]
    ) -> None:
        self._ctx = ctx
        self._trials = trials
        self._prepare = prepare
        self._open = False

    def open(self) -> Batch:
        """Open a batch; parameters added to it are validated at once.

        Raises:
            SchedulerClosedError: The scheduler is closed.
            RuntimeError: A batch is already open.
        """
        self._ctx.check_open()
        if self._open:
            raise UsageError("batch_trial_context() cannot be nested: close the open batch first")
        self._open = True
        return Batch(self._ctx.ax.validate_parameters)

    def discard(self, batch: Batch) -> None:
        """Drop a batch whose ``with`` body raised: nothing runs."""
        self._open = False
        logger.info("batch of %d trials dropped: its with-block raised", len(batch.parameters))

    async def submit(self, batch: Batch) -> list[int]:
        """Attach the batch's trials in add order and run them.

        Waits for all of them when ``synchronous`` is set. Returns the trial indices.
        """
        self._open = False
        if not batch.parameters:
            return []
        await self._prepare()  # synchronous or not: a bad setup raises before any trial
        trials = await self.attach(batch.parameters)
        self._ctx.changed()
        batch.trial_indices = [index for index, _ in trials]
        jobs = self._trials.jobs_for(trials)
        objective = self._trials.objective
        works = None
        if not objective or not objective.is_async:
            works = await self._ctx.runner.run_batch(jobs)
        tasks = self._trials.start(jobs, works)
        logger.info("batch of %d trials submitted: %s", len(tasks), batch.trial_indices)
        if self._ctx.config.synchronous:
            await self._wait(set(tasks))
        return batch.trial_indices

    async def _wait(self, tasks: set[asyncio.Task[None]]) -> None:
        try:
            await asyncio.wait(tasks)
        except BaseException as exc:
            reason = self._trials.interrupted("the batch", exc)
            await self._trials.cancel_on_exit(tasks, reason)
            raise
        await self._trials.settle()

    # -- attaching (on the Ax thread) ----------------------------------------------------
    async def attach(self, batch: list[Parameters]) -> Attached:
        """Create (or reuse) a dispatched trial per parameterization, in order.

        Returns:
            ``(trial index, parameters)`` of each.
        """
        future = self._ctx.ax_thread.submit(self._attach_sync, batch)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.add_done_callback(
                functools.partial(self._ctx.ax_thread.call_soon, self._abandon_attached)
            )
            raise

    def _attach_sync(self, batch: list[Parameters]) -> Attached:
        """Reuse undispatched trials with equal parameters, else attach."""
        ax = self._ctx.ax
        trials: Attached = []
        try:
            for params in batch:
                index = ax.find_undispatched_trial(params)
                if index is None:
                    index = ax.attach(params)
                ax.mark_dispatched(index, dispatch_info(self._ctx.runner.kind))
                trials.append((index, params))
        except BaseException:
            for index, _ in trials:
                ax.abandon(index, "the rest of its batch could not be attached")
            raise
        return trials

    def _abandon_attached(self, future: Future[Attached]) -> None:
        if not future.cancelled() and future.exception() is None:
            for index, _ in future.result():
                self._ctx.ax.abandon(index, "attached while the batch was being cancelled")


@asynccontextmanager
async def batch_context_async(core: Scheduler) -> AsyncIterator[Batch]:
    """Async batch: submitted (and with ``synchronous``, awaited) on normal exit."""
    batch = core.new_batch()
    try:
        yield batch
    except BaseException:
        core.discard_batch(batch)
        raise
    await core.submit_batch(batch)


@contextmanager
def batch_context_sync(core: Scheduler, call: Callable[..., Any]) -> Iterator[Batch]:
    """Sync twin of :func:`batch_context_async`; ``call`` runs a coroutine function
    on the scheduler's loop thread and blocks for its result."""
    batch = core.new_batch()
    try:
        yield batch
    except BaseException:
        core.discard_batch(batch)
        raise
    call(core.submit_batch, batch)
