"""Reading trials' progress files (``$JOB_PROGRESS_FILE``): new bytes, whole lines.

A script, a container or a remote job appends JSON lines ``{"step": 10, "loss":
0.31}`` to its trial's ``progress.jsonl``. The driver keeps, per trial, how far it
has read (:class:`ProgressLines`) and hands each whole new line to the trial's
channel; a line still being written waits for the next read. A malformed line
is logged (trial, line number) and skipped: it never fails the trial.

* On this machine (local scripts, Docker's mounted trial folders),
  :class:`LocalProgressFiles` reads every watched file in one thread call per tick.
* On a cluster, :func:`tail_command` is ONE shell command that prints the new
  bytes of every running trial's file, and :func:`split_tail_output` splits its
  output back per file, for the status tick the runner already has.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import shlex
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import anyio

from ._jobs import Job
from ._reporting import PROGRESS_FILE_NAME, check_metrics

logger = logging.getLogger("ax_scheduler")

#: Seconds between reads of local progress files.
LOCAL_TICK_SECONDS = 0.05
#: The most bytes read from one progress file per tick (the rest waits).
MAX_READ_BYTES = 1 << 20


def parse_progress_line(line: bytes) -> tuple[float, dict[str, Any]]:
    """One progress line as ``(step, metrics)``.

    Raises:
        ValueError: It is not a JSON object with a numeric ``step`` and at least
            one metric that is a number or ``[mean, sem]``; the message says which.
    """
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ValueError(f"not a JSON object: {line[:80]!r}")
    step = record.pop("step", None)
    if isinstance(step, bool) or not isinstance(step, int | float) or not math.isfinite(step):
        raise ValueError(f'"step" must be a finite number, got {step!r}')
    try:
        return float(step), check_metrics(record)
    except TypeError as exc:
        raise ValueError(str(exc).replace("report()", "the line")) from None


class ProgressLines:
    """One trial's progress file, read from where the last read stopped.

    Args:
        job: The trial's job: its channel gets each report.
        path: The file's path where it is read (for messages).

    Attributes:
        offset: Bytes of the file already consumed (whole lines only).
        lines: Lines consumed, to name a malformed one.
    """

    def __init__(self, job: Job, path: str) -> None:
        self.job = job
        self.path = path
        self.offset = 0
        self.lines = 0

    def feed(self, data: bytes) -> None:
        """Take bytes read from ``offset`` on: deliver the whole lines among them."""
        end = data.rfind(b"\n")
        if end < 0:
            return
        self.offset += end + 1
        for line in data[:end].split(b"\n"):
            self.lines += 1
            if not line.strip():
                continue
            try:
                step, metrics = parse_progress_line(line)
            except ValueError as exc:
                logger.warning(
                    "trial %d: progress line %d of %s skipped: %s",
                    self.job.trial_index,
                    self.lines,
                    self.path,
                    exc,
                )
                continue
            self.job.channel.deliver(step, metrics)


def local_progress_file(job: Job) -> Path | None:
    """Where ``job``'s progress file is on this machine, if its folder is here."""
    return None if job.workdir is None else job.workdir / PROGRESS_FILE_NAME


def _read_new(path: str, offset: int) -> bytes:
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            return file.read(MAX_READ_BYTES)
    except FileNotFoundError:
        return b""


class LocalProgressFiles:
    """The progress files on this machine of the trials running now.

    While any is watched, a task reads them all every ``tick`` seconds, in one
    thread call (file reads never run on the event loop).
    """

    def __init__(self, tick: float = LOCAL_TICK_SECONDS) -> None:
        self._tick = tick
        self._watched: dict[int, ProgressLines] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, job: Job, path: Path) -> Callable[[], Awaitable[None]]:
        """Read ``path`` for ``job`` until the returned coroutine function is awaited
        (which reads it one last time, so a line written just before the end counts)."""
        lines = ProgressLines(job, str(path))
        self._watched[id(lines)] = lines
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._follow(), name="ax-scheduler-progress-files")

        async def unwatch() -> None:
            self._watched.pop(id(lines), None)
            with contextlib.suppress(OSError):
                lines.feed(await anyio.to_thread.run_sync(_read_new, lines.path, lines.offset))

        return unwatch

    async def _follow(self) -> None:
        while self._watched:
            watched = list(self._watched.values())
            reads = await anyio.to_thread.run_sync(_read_all, [(w.path, w.offset) for w in watched])
            for lines, data in zip(watched, reads, strict=True):
                if id(lines) in self._watched:
                    lines.feed(data)
            await asyncio.sleep(self._tick)

    async def aclose(self) -> None:
        self._watched.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _read_all(files: list[tuple[str, int]]) -> list[bytes]:
    return [_read_new(path, offset) for path, offset in files]


# -- on a cluster: one command for every running trial's file -----------------------------
_MARK = "@@axs-progress"


def tail_command(files: Iterable[tuple[str, int]]) -> str:
    """ONE ``sh`` command printing the new bytes of each ``(path, offset)`` file.

    Each file's part starts with a line ``@@axs-progress <n>`` (n = the bytes that
    follow, -1 for a missing file); paths are shell-quoted, bytes capped at
    :data:`MAX_READ_BYTES` per file.
    """
    parts = []
    for path, offset in files:
        quoted = shlex.quote(path)
        parts.append(
            f"n=$(wc -c < {quoted} 2>/dev/null) || n=-1;"
            f" if [ $n -gt {offset} ]; then k=$((n-{offset}));"
            f" [ $k -gt {MAX_READ_BYTES} ] && k={MAX_READ_BYTES};"
            f" echo {_MARK} $k; tail -c +{offset + 1} {quoted} | head -c $k;"
            f" else echo {_MARK} 0; fi"
        )
    return "; ".join(parts)


def split_tail_output(output: bytes, count: int) -> list[bytes]:
    """The new bytes of each of the ``count`` files of :func:`tail_command`, in order.

    Raises:
        ValueError: The output is not what the command prints.
    """
    parts: list[bytes] = []
    rest = output
    marker = _MARK.encode() + b" "
    for _ in range(count):
        if not rest.startswith(marker):
            raise ValueError(f"unexpected progress output: {rest[:80]!r}")
        header, _, rest = rest.partition(b"\n")
        size = int(header[len(marker) :])
        parts.append(rest[: max(size, 0)])
        rest = rest[max(size, 0) :]
    return parts
