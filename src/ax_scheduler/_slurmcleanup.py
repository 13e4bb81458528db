"""Cancelling Slurm jobs, asking them to stop, removing their folders: those of one
moment in ONE command."""

from __future__ import annotations

import logging

from ._aio import Coalesced
from ._exceptions import RunnerError
from ._jobworker import STOP_SIGNAL
from ._remote import Transport

logger = logging.getLogger("ax_scheduler")


#: ``scancel``'s name of the signal that asks a job's worker to stop its trial early.
STOP_SIGNAL_NAME = STOP_SIGNAL.name.removeprefix("SIG")


class ClusterCleanup:
    """``scancel`` and ``rm -rf`` on the cluster, coalesced across the trials of a moment.

    Args:
        transport: Where the commands run.
    """

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._cancels = Coalesced(self._scancel)
        self._stops = Coalesced(self._signal_stop)
        self._removals = Coalesced(self._remove)
        #: ``scancel`` commands run, for tests and the scale bench.
        self.scancels = 0
        #: ``scancel --signal`` commands run (early stops).
        self.stop_signals = 0

    async def cancel(self, ids: list[str]) -> None:
        """``scancel`` the jobs ``ids``; a failure is logged (the jobs may still run)."""
        await self._cancels.add(ids)

    async def ask_to_stop(self, ids: list[str]) -> None:
        """Ask the jobs ``ids`` to stop their trials early; never raises (logged).

        ``scancel --signal=USR2 --batch``: the signal reaches the batch step's own
        process only, which is the worker (the job script ``exec``s it). A function
        trial's worker sets ``$JOB_STOP_REQUESTED``, so the objective's next
        ``report()`` raises; a script's sends SIGTERM to the script's process group.
        SIGTERM itself is not used: Slurm sends it to every process of a job it
        cancels, and that must still end a job at once.
        """
        await self._stops.add(ids)

    async def remove(self, folder: str) -> None:
        """Delete a trial folder (checked to be below job_dir by the caller).

        Raises:
            RunnerError: ``rm`` failed.
        """
        await self._removals.add([folder])

    async def _scancel(self, ids: list[str]) -> None:
        self.scancels += 1
        try:
            result = await self._transport.run(["scancel", *ids])
        except RunnerError as exc:
            logger.error("scancel %s failed: %s; the jobs may still run", " ".join(ids), exc)
            return
        if not result.ok:
            logger.error("scancel %s failed: %s", " ".join(ids), result.describe())

    async def _signal_stop(self, ids: list[str]) -> None:
        self.stop_signals += 1
        argv = ["scancel", f"--signal={STOP_SIGNAL_NAME}", "--batch", *ids]
        try:
            result = await self._transport.run(argv)
        except RunnerError as exc:
            logger.error("%s failed: %s; the trials run on until their grace ends", argv, exc)
            return
        if not result.ok:  # a job that ended meanwhile, say
            logger.warning("scancel --signal %s: %s", " ".join(ids), result.describe())

    async def _remove(self, folders: list[str]) -> None:
        result = await self._transport.run(["rm", "-rf", "--", *folders])
        if not result.ok:
            raise RunnerError(f"cannot remove trial folders on the cluster: {result.describe()}")
