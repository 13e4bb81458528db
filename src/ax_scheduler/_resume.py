"""Resuming from a checkpoint: the trials a dead driver left RUNNING.

Each such trial's job handle (in its run metadata) goes back to a runner of the
same kind: a job that still runs is waited for, a finished one has its result
collected. A trial whose job died with the driver is marked FAILED
("driver restarted") and, with ``requeue_lost_trials``, runs again as a new trial.
The first ``run_optimization`` adopts the re-attached trials as its own.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ._ax import Parameters
from ._context import Context
from ._outcomes import DRIVER_RESTARTED
from ._record import Recorder
from ._runmetadata import RUN_METADATA_KEY, where
from ._trial import Trials

logger = logging.getLogger("ax_scheduler")

Attach = Callable[[list[Parameters]], Awaitable[list[tuple[int, Parameters]]]]


class Resumer:
    """Finds the lost trials and re-attaches, fails or re-queues each.

    Args:
        ctx: The scheduler's shared parts.
        trials: Launches the re-attached trials.
        recorder: Fails the trials that cannot be re-attached.
        attach: Attaches parameterizations to Ax (for ``requeue_lost_trials``).

    Attributes:
        lost: Trials still to re-attach when the run starts.
    """

    def __init__(self, ctx: Context, trials: Trials, recorder: Recorder, attach: Attach) -> None:
        self._ctx = ctx
        self._trials = trials
        self._recorder = recorder
        self._attach = attach
        self.lost: list[int] = []
        self._reattached: set[asyncio.Task[None]] = set()  # not yet adopted by a run

    def adopt_lost_trials(self) -> list[int]:
        """Take the trials a dead driver left RUNNING, to re-attach when the run starts.

        Called while the scheduler is built, before the Ax thread has anything to
        do, so it reads the experiment directly.

        Returns:
            Their indices.
        """
        self.lost = self._ctx.ax.stale_dispatched_trials()
        return list(self.lost)

    def take_reattached(self) -> set[asyncio.Task[None]]:
        """The re-attached trials' tasks, which from now on belong to the caller's run."""
        taken, self._reattached = self._reattached, set()
        return taken

    async def reattach_lost(self) -> None:
        """Re-attach each lost trial's job, or fail (and maybe re-queue) the trial."""
        lost, self.lost = self.lost, []
        runner = self._ctx.runner
        # A re-attached trial's progress file is read again from its start: what
        # Ax already has of its curve (the checkpoint's) is not recorded twice.
        self._trials.resume_progress(await self._ctx.call_ax(self._ctx.ax.progress_steps))
        for index, handle, parameters in await self._ctx.call_ax(self._handles, lost):
            job = self._trials.job(index, parameters)
            # dispatched_at stays: a runner tells files this trial wrote from older ones.
            job.info.update({k: v for k, v in handle.items() if k != "runner"})
            work = None
            if handle.get("runner") == runner.kind:
                work = await runner.reattach(job)
            if work is not None:
                logger.info("trial %d: re-attached to its job %s", index, where(job.info))
                self._reattached.add(self._trials.launch(job, work))
                continue
            self._trials.jobs.pop(index, None)
            await self._fail_lost(index, handle.get("runner"), parameters)
        self._ctx.changed()

    def _handles(self, indices: list[int]) -> list[tuple[int, dict[str, Any], Parameters]]:
        """On the Ax thread: each trial's recorded job handle and parameters."""
        found = []
        for index in indices:
            trial = self._ctx.ax.trial(index)
            handle = dict(trial.run_metadata.get(RUN_METADATA_KEY, {}))
            found.append((index, handle, dict(trial.arms[0].parameters)))
        return found

    async def _fail_lost(self, index: int, runner: Any, parameters: Parameters) -> None:
        ours = self._ctx.runner
        if runner == ours.kind:
            reason = (
                f"{DRIVER_RESTARTED}: its job was in the previous driver's own {runner}"
                " workers, which ended with it"
            )
        else:
            reason = (
                f"{DRIVER_RESTARTED}: the trial ran on a {runner!r} runner and cannot be"
                f" re-attached by {ours!r}"
            )
        fail = self._recorder.fail
        lost = functools.partial(fail, index, reason, "infrastructure", lost_with_driver=True)
        await self._ctx.call_ax(lost, urgent=True)
        logger.warning("trial %d FAILED: %s", index, reason)
        if self._ctx.config.requeue_lost_trials:
            await self._requeue(index, parameters)

    async def _requeue(self, index: int, parameters: Parameters) -> None:
        (requeued, _), *_ = await self._attach([parameters])
        job = self._trials.job(requeued, parameters)
        self._reattached.add(self._trials.launch(job, self._trials.work(job)))
        logger.info("trial %d re-queued as trial %d (requeue_lost_trials)", index, requeued)
