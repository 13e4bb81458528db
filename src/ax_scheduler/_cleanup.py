"""cleanup_after_completion: a completed trial's folder goes once its result is safe.

Safe means in Ax and, with a checkpoint, in the checkpoint on disk: a driver
that dies a moment later must not have lost both the folder and the result.
Removals run in the background (they hold no slot); runs wait for them before
they return, and before the runner's connections close.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from ._aio import shielded
from ._context import Context
from ._exceptions import RunnerError
from ._jobs import Job

logger = logging.getLogger("ax_scheduler")


class Cleanups:
    """The folder removals under way.

    Args:
        ctx: The scheduler's shared parts.
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, job: Job, change: int) -> None:
        """Remove ``job``'s folder once the checkpoint includes change ``change``."""
        task = asyncio.create_task(self._remove_files(job, change), name="ax-scheduler-cleanup")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def finish(self) -> None:
        """Wait for the removals under way (each is bounded by its runner)."""
        if self._tasks:
            await shielded(asyncio.wait(set(self._tasks)))

    async def _remove_files(self, job: Job, change: int) -> None:
        index = job.trial_index
        checkpoint = self._ctx.checkpoint
        if checkpoint is not None and not await checkpoint.includes(change):
            logger.warning("trial %d: folder kept, the checkpoint lacks its result", index)
            return
        try:
            await self._ctx.runner.remove_files(job)
        except (OSError, RunnerError) as exc:
            logger.warning("trial %d: could not remove its folder: %s", index, exc)
            return
        await self._ctx.call_ax(functools.partial(self._ctx.ax.note, index, files_removed=True))
        self._ctx.changed()
