"""SSH hosts' trials while they run: their reports, read on a tick per host, and early stops.

SSHRunner learns a trial's end from its process's channel, so it has no status
tick of its own. While a host runs trials, :class:`HostProgress` gives it one:
every ``poll_interval`` seconds (SSHConfig's, 1 s by default) ONE command on the
host's open connection reads the new bytes of the ``progress.jsonl`` of every
trial running there (:mod:`ax_scheduler._remoteprogress`), and hands their whole
lines to the trials' channels. Why a steady tick and not sacct's back-off: a
host runs a few trials (its slots), the command is one short ``sh`` on a
connection that is open anyway, and a stop is decided on the reports: a tick of
1 s keeps the stop within about a second of the report that earns it, where a
back-off would leave a trial that reports rarely running on for many seconds.
No trial on a host, no tick.

A trial that ends gets one last read of its file (the lines it wrote since the
last tick) before its result is read; the trials that end at the same moment
share it.

An early stop sends SIGUSR2 to the trial's worker process (one command, from a
task of its own): the objective's next ``report()`` raises, a script gets
SIGTERM from the worker. What has not ended after the scheduler's grace is
stopped by the runner's cancel path (the process group: TERM, grace, KILL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ._aio import shielded
from ._clock import REAL_CLOCK, Clock
from ._exceptions import RunnerError, TrialError
from ._hostpool import Host, HostPool, _Lost
from ._hostworker import Phase, WorkerProcess, stop_request_argv
from ._jobs import Job
from ._remote import BinaryCompleted
from ._remoteprogress import RemoteProgressFiles
from ._reporting import PROGRESS_FILE_NAME

logger = logging.getLogger("ax_scheduler")

#: Seconds a finished trial waits for its last progress read (a hung host must
#: not hold its result).
LAST_READ_SECONDS = 10.0


@dataclass(eq=False)
class _Followed:
    job: Job
    unstop: Callable[[], None]


@dataclass(eq=False)
class _HostTick:
    """One host's progress files, its tick task, its next last read, its stop signals."""

    files: RemoteProgressFiles[WorkerProcess]
    task: asyncio.Task[None] | None = None
    last_read: asyncio.Future[None] | None = None  # not started yet: trials ending join it
    stops: set[asyncio.Task[None]] = field(default_factory=set)


class HostProgress:
    """Reads the running trials' progress files on each host, and stops trials early.

    Args:
        pool: The hosts; every command goes through :meth:`HostPool.call`.
        interval: Seconds between two reads on a host (``poll_interval``).
        clock: Where the waits between reads go.

    Attributes:
        stop_signals: Early-stop commands sent, for tests and benches.
    """

    def __init__(self, pool: HostPool, *, interval: float, clock: Clock = REAL_CLOCK) -> None:
        self._pool = pool
        self._interval = interval
        self._clock = clock
        self._followed: dict[WorkerProcess, _Followed] = {}
        self._ticks: dict[Host, _HostTick] = {}
        self.stop_signals = 0

    @property
    def commands(self) -> int:
        """Progress reads sent so far, on every host."""
        return sum(tick.files.commands for tick in self._ticks.values())

    def follow(self, process: WorkerProcess, job: Job) -> None:
        """Read ``process``'s progress file for ``job`` from the host's next tick on,
        and stop it early when its trial is to stop (until :meth:`forget`)."""
        unstop = job.channel.on_stop(lambda reason: self._ask_to_stop(process))
        self._followed[process] = _Followed(job, unstop)
        tick = self._tick_of(process.host)
        if tick.task is None or tick.task.done():
            name = f"ax-scheduler-progress-{process.host.address}"
            tick.task = asyncio.create_task(self._follow(process.host, tick), name=name)

    async def finish(self, process: WorkerProcess) -> None:
        """Read ``process``'s file one last time (its lines since the last tick),
        shared with the other trials that end now; never raises."""
        tick = self._ticks.get(process.host)
        if process not in self._followed or tick is None or self._pool.closing:
            return
        if tick.last_read is None:
            tick.last_read = asyncio.ensure_future(self._last_read(process.host, tick))
        try:
            async with self._clock.timeout(LAST_READ_SECONDS):
                # Waited for, not awaited: the read's end (a connection closed under
                # it, say) is not this trial's.
                await asyncio.wait([tick.last_read])
        except TimeoutError:
            logger.warning(
                "the last progress read of %s on %s timed out",
                process.workdir,
                process.host.address,
            )

    def forget(self, process: WorkerProcess) -> None:
        """Stop reading ``process``'s file and stopping it."""
        followed = self._followed.pop(process, None)
        if followed is not None:
            followed.unstop()
        tick = self._ticks.get(process.host)
        if tick is not None:
            tick.files.forget(process)

    async def aclose(self) -> None:
        """Stop every tick; let the stop signals on their way finish."""
        for process in list(self._followed):
            self.forget(process)
        for tick in self._ticks.values():
            if tick.task is not None:
                tick.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await tick.task
            if tick.stops:
                await shielded(asyncio.gather(*tick.stops, return_exceptions=True))

    # -- reading ------------------------------------------------------------------------
    def _tick_of(self, host: Host) -> _HostTick:
        tick = self._ticks.get(host)
        if tick is None:

            async def run(argv: list[str]) -> BinaryCompleted:
                return await self._pool.call(host, lambda: host.transport.run_binary(argv))

            files: RemoteProgressFiles[WorkerProcess] = RemoteProgressFiles(run, host.address)
            tick = self._ticks[host] = _HostTick(files)
        return tick

    async def _follow(self, host: Host, tick: _HostTick) -> None:
        while self._on(host):
            await self._clock.sleep(self._interval)
            await self._read(host)

    async def _last_read(self, host: Host, tick: _HostTick) -> None:
        """A read that starts now: it covers every trial that ended until now; those
        that end from now on wait for the next one."""
        tick.last_read = None
        await self._read(host)

    def _on(self, host: Host) -> bool:
        return any(process.host is host for process in self._followed)

    async def _read(self, host: Host) -> None:
        """ONE command: the new lines of every file followed on ``host``."""
        files = [
            (process, followed.job, f"{process.workdir}/{PROGRESS_FILE_NAME}")
            for process, followed in self._followed.items()
            if process.host is host
        ]
        try:
            await self._ticks[host].files.read(files)
        except (_Lost, TrialError, RunnerError) as exc:  # down or closing: its trials learn it
            logger.debug("no progress read on %s: %s", host.address, exc)

    # -- stopping -----------------------------------------------------------------------
    def _ask_to_stop(self, process: WorkerProcess) -> None:
        if process.pid is None or process.phase is not Phase.RUNNING:
            return  # not started, or over: the scheduler's grace ends in a cancel
        tick = self._tick_of(process.host)
        stop = asyncio.create_task(self._signal_stop(process, process.pid))
        tick.stops.add(stop)
        stop.add_done_callback(tick.stops.discard)

    async def _signal_stop(self, process: WorkerProcess, pid: int) -> None:
        host, argv = process.host, stop_request_argv(pid)
        self.stop_signals += 1
        try:
            result = await self._pool.call(host, lambda: host.transport.run(argv))
        except (_Lost, TrialError, RunnerError) as exc:
            logger.error("could not ask %s on %s to stop: %s", process.workdir, host.address, exc)
            return
        if not result.ok:
            logger.warning("asking pid %d on %s to stop: %s", pid, host.address, result.describe())
