"""SlurmRunner's side of reports and early stops: progress on the sacct tick, stop signals.

* :meth:`SlurmProgress.read` is the watcher's ``on_tick``: ONE command, right
  after sacct, reads the new bytes of every watched task's ``progress.jsonl``
  and of the tasks that ended on this tick (their last lines), and delivers
  their whole lines before the outcomes are settled. sacct lists a task RUNNING
  seconds after it started (a pending array as one range until then), so every
  watched task is read, pending or not: a file that does not exist yet costs the
  remote shell a builtin test.
* :meth:`SlurmProgress.follow` registers how the trial is told to stop: ``scancel
  --signal=USR2 --batch`` (coalesced, :class:`~ax_scheduler._slurmcleanup.ClusterCleanup`),
  sent from a task of its own so the loop never waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ._aio import shielded
from ._exceptions import RunnerError
from ._remote import Transport
from ._remoteprogress import RemoteProgressFiles
from ._reporting import PROGRESS_FILE_NAME
from ._sacct import Change
from ._slurmcleanup import ClusterCleanup
from ._slurmtask import Phase, SlurmTask

logger = logging.getLogger("ax_scheduler")


class SlurmProgress:
    """The reports of a SlurmRunner's tasks, and their early stops.

    Args:
        transport: Where the progress files are read.
        cleanup: The runner's coalesced ``scancel``.
    """

    def __init__(self, transport: Transport, cleanup: ClusterCleanup) -> None:
        self._files: RemoteProgressFiles[SlurmTask] = RemoteProgressFiles(
            lambda argv: transport.run_binary(argv), transport.description
        )
        self._cleanup = cleanup
        self._stops: set[asyncio.Task[None]] = set()  # stop signals on their way

    @property
    def commands(self) -> int:
        """Progress reads sent so far."""
        return self._files.commands

    async def read(self, watched: list[SlurmTask], changes: list[Change[SlurmTask]]) -> bool:
        """Read the progress of the ``watched`` tasks and of those that ended in
        ``changes``, in ONE command; whether any had new lines."""
        ended = [change.item for change in changes if change.line.state.is_terminal]
        files = [
            (task, task.job, f"{task.workdir}/{PROGRESS_FILE_NAME}")
            for task in dict.fromkeys([*watched, *ended])
            if task.workdir
        ]
        try:
            return await self._files.read(files)
        except RunnerError as exc:
            logger.warning("reading the trials' progress files failed: %s; next tick", exc)
            return False

    def follow(self, task: SlurmTask) -> Callable[[], None]:
        """Stop ``task`` when its trial is to stop, until the returned function is
        called (which also forgets its file's offset)."""
        unstop = task.job.channel.on_stop(lambda reason: self._ask_to_stop(task))

        def unfollow() -> None:
            unstop()
            self._files.forget(task)

        return unfollow

    def _ask_to_stop(self, task: SlurmTask) -> None:
        if task.slurm_id is None or task.phase is not Phase.SUBMITTED:
            return  # not in Slurm now: the scheduler's grace ends in a cancel
        logger.debug(
            "trial %d: signalling Slurm job %s to stop", task.job.trial_index, task.slurm_id
        )
        stop = asyncio.create_task(self._cleanup.ask_to_stop([task.slurm_id]))
        self._stops.add(stop)
        stop.add_done_callback(self._stops.discard)

    async def aclose(self) -> None:
        """Let the stop signals on their way finish; forget every file."""
        if self._stops:
            await shielded(asyncio.gather(*self._stops, return_exceptions=True))
        self._files.clear()
