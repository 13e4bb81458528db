"""Slurm's job states, and the one watcher that asks ``sacct`` about every job.

* :class:`SlurmState`: Slurm's words for a job's state, as an enum, with what a
  terminal one means for the trial (:class:`Outcome`);
* :func:`parse_sacct`: ``sacct -P`` lines to task states, array ranges included;
* :class:`SacctWatcher`: ONE ``sacct`` call per tick for ALL unfinished arrays,
  backing off (1, 2, 4 ... s up to the monitoring interval) while nothing
  changes, from the start again after a change; a failed poll is retried next
  tick. Its waits go through the injected clock. Its runner may do more on each
  tick (``on_tick``: read the trials' progress files); news there keeps the
  ticks short too.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from ._clock import REAL_CLOCK, Clock
from ._exceptions import RunnerError
from ._remote import Transport
from ._retry import Backoff

logger = logging.getLogger("ax_scheduler")
T = TypeVar("T")


class Outcome(enum.Enum):
    """What a terminal Slurm state means for the trial."""

    RESULT = "read the result file"
    FAILED = "the trial failed"
    TIMEOUT = "the trial hit its time limit"
    CANCELLED = "the job was cancelled"
    INFRASTRUCTURE = "the cluster failed the job: resubmit"


class SlurmState(enum.Enum):
    """A job's state, as the first word of sacct's ``State`` column (the value).

    A word this table lacks (a newer Slurm's) is :attr:`UNKNOWN`: not finished.
    """

    PENDING = "PENDING"
    CONFIGURING = "CONFIGURING"
    RUNNING = "RUNNING"
    COMPLETING = "COMPLETING"
    SUSPENDED = "SUSPENDED"
    STOPPED = "STOPPED"
    RESIZING = "RESIZING"
    SIGNALING = "SIGNALING"
    STAGE_OUT = "STAGE_OUT"
    REQUEUED = "REQUEUED"
    REQUEUE_FED = "REQUEUE_FED"
    REQUEUE_HOLD = "REQUEUE_HOLD"
    RESV_DEL_HOLD = "RESV_DEL_HOLD"
    SPECIAL_EXIT = "SPECIAL_EXIT"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    DEADLINE = "DEADLINE"
    TIMEOUT = "TIMEOUT"
    CANCELLED = "CANCELLED"
    REVOKED = "REVOKED"
    PREEMPTED = "PREEMPTED"
    NODE_FAIL = "NODE_FAIL"
    BOOT_FAIL = "BOOT_FAIL"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def from_sacct(cls, text: str) -> SlurmState:
        """``"CANCELLED by 0"`` -> CANCELLED; an empty or unknown word -> UNKNOWN."""
        words = text.split()
        return _BY_WORD.get(words[0], cls.UNKNOWN) if words else cls.UNKNOWN

    @property
    def outcome(self) -> Outcome | None:
        """What this state means for the trial; None while the job is not finished."""
        return STATE_OUTCOMES.get(self)

    @property
    def is_terminal(self) -> bool:
        """Whether the job is over (Slurm will not change this state by itself)."""
        return self in STATE_OUTCOMES


_BY_WORD = {state.value: state for state in SlurmState}

#: Terminal states and their outcome. Every other state (PENDING, RUNNING,
#: COMPLETING, REQUEUED, SUSPENDED ...) means "not finished yet".
STATE_OUTCOMES: Mapping[SlurmState, Outcome] = {
    SlurmState.COMPLETED: Outcome.RESULT,
    SlurmState.FAILED: Outcome.FAILED,
    SlurmState.OUT_OF_MEMORY: Outcome.FAILED,
    SlurmState.DEADLINE: Outcome.FAILED,
    SlurmState.TIMEOUT: Outcome.TIMEOUT,
    SlurmState.CANCELLED: Outcome.CANCELLED,
    SlurmState.REVOKED: Outcome.CANCELLED,
    SlurmState.PREEMPTED: Outcome.INFRASTRUCTURE,
    SlurmState.NODE_FAIL: Outcome.INFRASTRUCTURE,
    SlurmState.BOOT_FAIL: Outcome.INFRASTRUCTURE,
}

#: The sacct columns the watcher asks for, in order.
SACCT_FORMAT = "JobID,State,ExitCode"


@dataclass(frozen=True)
class TaskState:
    """One line of sacct about one array task (or a range of pending ones).

    Attributes:
        job_id: The array's job id (``"123"``).
        tasks: The task indices the line covers (one, or a pending range).
        state: The state.
        exit_code: ``"code:signal"`` as sacct prints it.
    """

    job_id: str
    tasks: tuple[int, ...]
    state: SlurmState
    exit_code: str


_JOB_ID = re.compile(r"^(?P<job>\d+)(?:_(?:(?P<task>\d+)|\[(?P<range>[^\]]+)\]))?$")


def parse_sacct(text: str) -> list[TaskState]:
    """Parse ``sacct -n -P -X -o JobID,State,ExitCode`` output.

    Lines that are not about array tasks or plain jobs (steps, blank lines,
    warnings) are skipped. A pending array that sacct has not split yet
    (``123_[0-19%4]``) yields one line covering every task in the range.
    """
    states = []
    for line in text.splitlines():
        fields = line.strip().split("|")
        match = _JOB_ID.match(fields[0]) if len(fields) >= 3 else None
        if match is None:
            continue
        if match["task"] is not None:
            tasks: tuple[int, ...] = (int(match["task"]),)
        elif match["range"] is not None:
            tasks = tuple(expand_task_range(match["range"]))
        else:
            tasks = ()
        states.append(TaskState(match["job"], tasks, SlurmState.from_sacct(fields[1]), fields[2]))
    return states


def expand_task_range(text: str) -> list[int]:
    """``"0-4,7,9-10%2"`` -> ``[0, 1, 2, 3, 4, 7, 9, 10]`` (the ``%limit`` is dropped)."""
    tasks: list[int] = []
    for part in text.split("%")[0].split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        tasks.extend(range(int(low), int(high or low) + 1))
    return tasks


@dataclass(frozen=True)
class Change(Generic[T]):
    """A watched task whose state changed: the item it was watched with, and sacct's line."""

    item: T
    line: TaskState


@dataclass
class _Watched(Generic[T]):
    item: T
    state: SlurmState | None  # None: not seen yet, so any state sacct reports is news
    alone: bool = False  # its array's only task: sacct's plain job line is about it


class SacctWatcher(Generic[T]):
    """Follows Slurm jobs with ONE ``sacct`` call per tick, whatever their number.

    Args:
        transport: Where ``sacct`` runs.
        on_change: Awaited once per tick with every task whose state changed; a
            task in a terminal state is no longer watched (watch it again to
            hear about it once more).
        on_crash: Called with the error and every watched item if the poll loop
            itself fails (a bug): they must not wait forever.
        on_tick: Awaited on every tick after the poll, before ``on_change``, with
            the tick's changes (the items that ended are no longer watched, but
            are among them); returns whether it found news of its own (a trial's
            reports), which resets the back-off as a change does.
        clock: Where the waits between ticks go.
        min_interval: The first and shortest wait, in seconds.
        max_interval: The longest wait (the monitoring interval).
    """

    def __init__(
        self,
        transport: Transport,
        on_change: Callable[[list[Change[T]]], Awaitable[None]],
        on_crash: Callable[[BaseException, list[T]], None],
        *,
        on_tick: Callable[[list[Change[T]]], Awaitable[bool]] | None = None,
        clock: Clock = REAL_CLOCK,
        min_interval: float = 1.0,
        max_interval: float = 10.0,
    ) -> None:
        self._transport = transport
        self._on_change = on_change
        self._on_crash = on_crash
        self._on_tick = on_tick
        self._clock = clock
        self._jobs: dict[str, dict[int, _Watched[T]]] = {}  # array id -> task -> watched
        self._loop: asyncio.Task[None] | None = None
        self._quiet = 0  # ticks in a row without a change
        self.set_intervals(min_interval, max_interval)
        #: ``sacct`` calls made, for tests and the scale bench.
        self.polls = 0

    def set_intervals(self, min_interval: float, max_interval: float) -> None:
        """The shortest and the longest wait between ticks, in seconds."""
        # Only its waits are used: the watcher polls as long as there are jobs.
        self._waits = Backoff(0, min_interval, 2.0, max(min_interval, max_interval))

    @property
    def pause(self) -> float:
        """Seconds until the next tick: doubled for each quiet one, up to the cap."""
        return self._waits.delay(self._quiet + 1)

    def watch(
        self, slurm_id: str, item: T, state: SlurmState | None = None, *, alone: bool = False
    ) -> None:
        """Follow task ``slurm_id`` (``"123_4"``) from the next tick, which comes soon.

        Args:
            slurm_id: The array task.
            item: What :class:`Change` hands back.
            state: Its state as far as known (None: any state sacct reports is news).
            alone: The task is its array's only one (``--array=0-0``). Slurm's
                database then lists it as the plain job (``123|COMPLETED``) for a
                while (1 to 5 s measured) before it lists ``123_0``: that line is
                about this task. Of a bigger array the plain job's line is some
                task's whose index it does not say, so it is not read.
        """
        job_id, _, number = slurm_id.partition("_")
        self._jobs.setdefault(job_id, {})[int(number)] = _Watched(item, state, alone)
        self._quiet = 0
        if self._loop is None or self._loop.done():
            self._loop = asyncio.create_task(self._run(), name="ax-scheduler-sacct")
            self._loop.add_done_callback(self._ended)

    def forget(self, slurm_id: str) -> None:
        """Stop following task ``slurm_id`` (cancelled, say)."""
        job_id, _, number = slurm_id.partition("_")
        array = self._jobs.get(job_id, {})
        array.pop(int(number), None)
        if not array:
            self._jobs.pop(job_id, None)

    def items(self) -> list[T]:
        """Every watched item."""
        return [watched.item for array in self._jobs.values() for watched in array.values()]

    def states(self) -> list[SlurmState | None]:
        """Every watched task's last known state (safe to call from another thread)."""
        arrays = list(self._jobs.values())
        return [watched.state for array in arrays for watched in list(array.values())]

    def load(self) -> dict[str, int]:
        """Watched tasks by state: ``pending`` (or not listed yet) and ``running``."""
        states = self.states()
        pending = sum(state in (SlurmState.PENDING, None) for state in states)
        return {"pending": pending, "running": states.count(SlurmState.RUNNING)}

    def clear(self) -> list[T]:
        """Stop following everything; the items that were watched."""
        items = self.items()
        self._jobs.clear()
        return items

    async def aclose(self) -> None:
        """Stop the poll loop (a crashed one was reported by ``on_crash`` already)."""
        self.clear()
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._loop

    async def _run(self) -> None:
        while self._jobs:
            await self._clock.sleep(self.pause)
            if not self._jobs:
                return
            lines = await self._query()
            changes = [] if lines is None else self._changes(lines)
            news = await self._on_tick(changes) if self._on_tick is not None else False
            if changes:
                await self._on_change(changes)
            self._quiet = 0 if changes or news else self._quieter()

    def _quieter(self) -> int:
        # Stops counting at the cap: the wait no longer grows (nor overflows).
        return self._quiet + 1 if self.pause < self._waits.cap else self._quiet

    async def _query(self) -> list[TaskState] | None:
        """ONE sacct call about every unfinished array; None if the poll failed."""
        self.polls += 1
        argv = ["sacct", "-n", "-P", "-X", "-j", ",".join(self._jobs), "-o", SACCT_FORMAT]
        try:
            result = await self._transport.run(argv)
        except RunnerError as exc:
            logger.warning("Slurm status poll failed (%s); trying again", exc)
            return None
        if not result.ok:
            logger.warning("sacct failed (%s); trying again", result.describe())
            return None
        return parse_sacct(result.stdout)

    def _changes(self, lines: list[TaskState]) -> list[Change[T]]:
        """Record the new states; terminal tasks are no longer watched."""
        changes = []
        for line in lines:
            array = self._jobs.get(line.job_id, {})
            for number in line.tasks or _plain_line_task(array):
                watched = array.get(number)
                if watched is None or watched.state is line.state:
                    continue
                watched.state = line.state
                changes.append(Change(watched.item, line))
                if line.state.is_terminal:
                    del array[number]
        for job_id in [job_id for job_id, array in self._jobs.items() if not array]:
            del self._jobs[job_id]
        return changes

    def _ended(self, loop: asyncio.Task[None]) -> None:
        """A crashed poll loop must not leave tasks waiting forever."""
        if loop.cancelled() or loop.exception() is None:
            return
        error = loop.exception()
        assert error is not None
        logger.error("Slurm status polling stopped: %r", error, exc_info=error)
        self._on_crash(error, self.clear())


def _plain_line_task(array: Mapping[int, _Watched[T]]) -> tuple[int, ...]:
    """The task a line without a task index is about: task 0 of a one-task array."""
    only = array.get(0)
    return (0,) if only is not None and only.alone else ()
