"""Cancelling Slurm jobs and removing their folders: those of one moment in ONE command."""

from __future__ import annotations

import logging

from ._aio import Coalesced
from ._exceptions import RunnerError
from ._remote import Transport

logger = logging.getLogger("ax_scheduler")


class ClusterCleanup:
    """``scancel`` and ``rm -rf`` on the cluster, coalesced across the trials of a moment.

    Args:
        transport: Where the commands run.
    """

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._cancels = Coalesced(self._scancel)
        self._removals = Coalesced(self._remove)
        #: ``scancel`` commands run, for tests and the scale bench.
        self.scancels = 0

    async def cancel(self, ids: list[str]) -> None:
        """``scancel`` the jobs ``ids``; a failure is logged (the jobs may still run)."""
        await self._cancels.add(ids)

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

    async def _remove(self, folders: list[str]) -> None:
        result = await self._transport.run(["rm", "-rf", "--", *folders])
        if not result.ok:
            raise RunnerError(f"cannot remove trial folders on the cluster: {result.describe()}")
