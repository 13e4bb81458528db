"""Reading trials' progress files (``$JOB_PROGRESS_FILE``): new bytes, whole lines.

A script, a container or a remote job appends JSON lines ``{"step": 10, "loss":
0.31}`` to its trial's ``progress.jsonl``. The driver keeps, per trial, how far it
has read (:class:`ProgressLines`) and hands each whole new line to the trial's
channel; a line still being written waits for the next read. A malformed line
is logged (trial, line number) and skipped: it never fails the trial.

* On this machine (local scripts, Docker's mounted trial folders),
  :class:`LocalProgressFiles` reads every watched file in one thread call per tick.
* On a cluster, :func:`tail_commands` is ONE shell command (a fixed script, the
  paths its arguments) that prints the new bytes of every running trial's file,
  and :func:`split_tail_output` splits its output back per file, for the status
  tick the runner already has (:mod:`ax_scheduler._remoteprogress`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import shlex
from collections.abc import Awaitable, Callable, Sequence
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

#: The characters one command may have: a command over SSH is ONE argument of the
#: login shell (``sh -c COMMAND``), and Linux refuses a single argument over
#: 128 KiB (MAX_ARG_STRLEN); this leaves room for the shell's own words.
COMMAND_LIMIT = 100_000

#: Prints, for each ``PATH OFFSET`` pair after the base directory ``$1``, a line
#: ``@@axs-progress <n>`` and then the n bytes of the file past OFFSET (n = 0 for a
#: missing file or one with nothing new; at most MAX_READ_BYTES). The paths are
#: arguments of this fixed script, never parsed as shell code; relative ones are
#: below ``$1``, so a tick that names thousands of files stays one short command.
#: A missing file costs a builtin test only (pending trials have none yet).
TAIL_SCRIPT = f"""\
cd -- "$1" || exit
shift
while [ "$#" -ge 2 ]; do
  k=0
  if [ -f "$1" ]; then
    n=$(wc -c < "$1") && [ $n -gt "$2" ] && k=$((n - $2))
  fi
  [ "$k" -gt {MAX_READ_BYTES} ] && k={MAX_READ_BYTES}
  echo "{_MARK} $k"
  [ "$k" -gt 0 ] && tail -c +$(($2 + 1)) -- "$1" | head -c "$k"
  shift 2
done
exit 0
"""


def tail_commands(
    files: Sequence[tuple[str, int]], limit: int = COMMAND_LIMIT
) -> list[tuple[list[str], int]]:
    """The commands that print the new bytes of each ``(path, offset)`` file, in order.

    ONE command (:data:`TAIL_SCRIPT`), unless the files are so many that its line
    would pass ``limit`` characters: then as few as fit, each on the next files.
    Paths are given relative to the directory the files share, so a Slurm tick
    of a few thousand trials is one command. Split its output with
    :func:`split_tail_output`.

    Returns:
        Each command's argv and how many of the files it covers.
    """
    if not files:
        return []
    base, relative = _below_common_directory([path for path, _ in files])
    head = ["sh", "-c", TAIL_SCRIPT, "sh", base]
    size = len(shlex.join(head).encode())
    commands: list[tuple[list[str], int]] = []
    argv, count = list(head), 0
    for path, (_, offset) in zip(relative, files, strict=True):
        words = [path, str(offset)]
        cost = len(shlex.join(words).encode()) + 1
        if count and size + cost > limit:
            commands.append((argv, count))
            argv, count, size = list(head), 0, len(shlex.join(head).encode())
        argv += words
        count += 1
        size += cost
    commands.append((argv, count))
    return commands


def _below_common_directory(paths: list[str]) -> tuple[str, list[str]]:
    """The directory every absolute path is below, and each path relative to it
    (cut at a ``/``, so ``base/relative`` is exactly the path); relative paths as
    they are, below ``.``."""
    if not all(path.startswith("/") for path in paths):
        return ".", paths
    parts = [path.split("/") for path in paths]
    common = 0
    shortest = min(len(p) for p in parts) - 1  # a file's own name is never the base
    while common < shortest and all(p[common] == parts[0][common] for p in parts):
        common += 1
    base = "/".join(parts[0][:common]) or "/"
    return base, ["/".join(p[common:]) for p in parts]


def split_tail_output(output: bytes, count: int) -> list[bytes]:
    """The new bytes of each of the ``count`` files of a :func:`tail_commands`
    command, in order.

    Raises:
        ValueError: The output is not what the command prints (a file that shrank
            while it was read makes it so); no offset may move on such output.
    """
    parts: list[bytes] = []
    rest = output
    marker = _MARK.encode() + b" "
    for _ in range(count):
        if not rest.startswith(marker):
            raise ValueError(f"unexpected progress output: {rest[:80]!r}")
        header, _, rest = rest.partition(b"\n")
        size = int(header[len(marker) :])
        if size < 0 or len(rest) < size:
            raise ValueError(f"progress output cut short: {header!r} before {len(rest)} bytes")
        parts.append(rest[:size])
        rest = rest[size:]
    if rest:
        raise ValueError(f"unexpected progress output after {count} files: {rest[:80]!r}")
    return parts
