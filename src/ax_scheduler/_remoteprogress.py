"""Remote trials' progress files, read on a tick the runner already has: ONE command.

A job on a Slurm node or an SSH host appends its reports to ``progress.jsonl`` in
its trial directory (``ax_scheduler.report`` in a function objective, a script's
JSON lines in ``$JOB_PROGRESS_FILE``). The driver reads them where the runner
already talks to the machine: :meth:`RemoteProgressFiles.read` sends one command
(:func:`~ax_scheduler._progressfile.tail_commands`) that prints the new bytes of
every file it is given, each from the offset its :class:`ProgressLines` keeps, and
hands each whole new line to its trial's channel. Reads of one machine never
overlap, so no line is delivered twice.

Where the tick comes from is the runner's: Slurm's sacct watcher
(:mod:`ax_scheduler.runners.slurm`), a host's own (:mod:`ax_scheduler._hostprogress`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

from ._jobs import Job
from ._progressfile import ProgressLines, split_tail_output, tail_commands
from ._remote import BinaryCompleted

logger = logging.getLogger("ax_scheduler")
K = TypeVar("K", bound=Hashable)

#: A trial to read: its key (the runner's task or process), its job, its file's path there.
Followed = tuple[K, Job, str]


class RemoteProgressFiles(Generic[K]):
    """The progress files of one machine's trials and how far each has been read.

    Args:
        run: Runs a command there, its output as bytes (a transport's
            ``run_binary``, through whatever handles a host going down).
        where: The machine, for messages.

    Attributes:
        commands: Commands answered, for tests and benches (one per read, unless
            the files are thousands: see :func:`~ax_scheduler._progressfile.tail_commands`).
    """

    def __init__(self, run: Callable[[list[str]], Awaitable[BinaryCompleted]], where: str) -> None:
        self._run = run
        self._where = where
        self._lines: dict[K, ProgressLines] = {}
        self._lock = asyncio.Lock()
        self._failing = False  # the last read failed: say so once, not every tick
        self.commands = 0

    async def read(self, files: Sequence[Followed[K]]) -> bool:
        """Read the new bytes of every file of ``files`` and deliver their whole lines.

        A file is read from offset 0 the first time its key comes, or when its path
        changed (a resubmitted job has a new directory). A failed read is logged
        and moves no offset: the next one reads the same bytes.

        Returns:
            Whether any file had new whole lines (a report, or a malformed line).

        Raises:
            RunnerError: The machine cannot be reached (what ``run`` raises).
        """
        if not files:
            return False
        async with self._lock:  # two reads of one offset would deliver its lines twice
            lines = [self._lines_of(key, job, path) for key, job, path in files]
            news = False
            start = 0
            for argv, count in tail_commands([(line.path, line.offset) for line in lines]):
                news |= await self._read_part(argv, lines[start : start + count])
                start += count
            return news

    async def _read_part(self, argv: list[str], lines: list[ProgressLines]) -> bool:
        result = await self._run(argv)
        self.commands += 1
        try:
            if not result.ok:
                raise ValueError(result.describe())
            parts = split_tail_output(result.stdout, len(lines))
        except ValueError as exc:
            level = logging.DEBUG if self._failing else logging.WARNING
            logger.log(
                level, "reading progress files on %s failed (%s); next tick", self._where, exc
            )
            self._failing = True
            return False
        if self._failing:
            logger.info("reading progress files on %s works again", self._where)
            self._failing = False
        news = False
        for line, data in zip(lines, parts, strict=True):
            before = line.offset
            line.feed(data)
            news |= line.offset > before
        return news

    def _lines_of(self, key: K, job: Job, path: str) -> ProgressLines:
        lines = self._lines.get(key)
        if lines is None or lines.path != path or lines.job is not job:
            lines = self._lines[key] = ProgressLines(job, path)
        return lines

    def forget(self, key: K) -> None:
        """Stop keeping ``key``'s offset (its trial is over)."""
        self._lines.pop(key, None)

    def clear(self) -> None:
        """Forget every file."""
        self._lines.clear()
