"""A trial's worker process on an SSH host: started detached, followed, stopped.

1. :meth:`HostWorkers.execute` starts ``python axs_worker.py manifest.json 0`` in
   the trial directory through a fixed script that reports the process's pid and
   process group first (on the channel, then in the file ``pid``) and sends its
   output to ``stdout.log``/``stderr.log``; the trial ends when the channel
   reports the exit (no polling).
2. A dropped connection does not stop the process: :meth:`HostWorkers.follow`
   reconnects and polls the pid (on the injected clock) until it exits.
3. :meth:`HostWorkers.stop` kills the process group: SIGTERM, the grace period,
   SIGKILL, in one remote command, within a bounded time.
4. :func:`stop_request_argv` asks a worker to stop its trial early (SIGUSR2, the
   worker's own signal for it: :mod:`ax_scheduler._jobworker`).
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ._clock import REAL_CLOCK, Clock
from ._exceptions import InfrastructureError, RunnerError, TrialError
from ._hostpool import CLOSED, Host, HostPool, _Lost
from ._jobs import Job
from ._jobworker import STOP_SIGNAL
from ._remote import ProcessExit, RemoteProcess, _ConnectionDropped

logger = logging.getLogger("ax_scheduler")

#: Seconds a stop may take beyond its grace period (reconnecting, a slow host).
STOP_SLACK_SECONDS = 15.0
#: Seconds a stop waits to learn the pid of a worker cancelled while starting.
PID_WAIT_SECONDS = 2.0
#: Seconds between looks at the pid file of a worker that is still starting.
PID_FILE_POLL_SECONDS = 0.2

# -- the remote scripts ------------------------------------------------------------
# The scripts are fixed: paths and numbers arrive as positional arguments ("$1" ...),
# so nothing a user or Ax provides is ever parsed as shell code.

#: Starts the line on which a detached process reports its pid and process group.
PID_MARKER = b"axs-pid "

#: cd to $1, report "PID PGID" (on stdout and in the file ``pid``, for whoever
#: re-attaches after a dropped connection), then exec the rest with output to log
#: files. sshd makes each session's command a session leader, so the process group
#: is everything the program starts.
# The pid line goes to the channel before the pid file is written: if the driver
# is gone, the echo kills the shell (SIGPIPE) and no pid file claims a worker that
# never started, so a resumed driver starts it afresh instead of failing it.
_DETACHED_SCRIPT = """\
cd -- "$1" || exit
shift
g=$(ps -o pgid= -p $$ 2>/dev/null | tr -d ' ')
echo "axs-pid $$ ${g:-$$}"
echo "$$ ${g:-$$}" > pid
exec "$@" </dev/null >stdout.log 2>stderr.log
"""

#: Exit 0 while process $1 runs. A zombie has ended: where init does not reap
#: orphans (containers), a process re-attached to stays one forever.
_ALIVE_SCRIPT = """\
if command -v ps >/dev/null 2>&1; then
  s=$(ps -o stat= -p "$1") || exit 1
  case $s in *Z*) exit 1 ;; esac
  exit 0
fi
kill -0 "$1" 2>/dev/null
"""

#: SIGTERM process group $1, wait up to $2 tenths of a second for its live
#: (non-zombie) members to exit, then SIGKILL whatever is left.
_STOP_SCRIPT = """\
g=$1
alive() {
  if command -v ps >/dev/null 2>&1; then
    ps -e -o pgid= -o stat= | awk -v g="$g" '$1 == g && $2 !~ /Z/ { n = 1 } END { exit !n }'
  else
    kill -0 -"$g" 2>/dev/null
  fi
}
kill -TERM -"$g" 2>/dev/null || exit 0
i=0
while [ "$i" -lt "$2" ] && alive; do sleep 0.1; i=$((i + 1)); done
kill -KILL -"$g" 2>/dev/null
exit 0
"""


#: Send the early-stop signal $2 to process $1, if it still is a worker: after the
#: worker's end its pid may belong to someone else, who must not get it. (A host
#: without ps gets no signal: the scheduler's grace ends with the stop above.)
_STOP_REQUEST_SCRIPT = """\
case $(ps -o args= -p "$1" 2>/dev/null) in
  *axs_worker.py*) kill -"$2" "$1" ;;
esac
exit 0
"""


def detached_argv(workdir: str, argv: Sequence[str]) -> list[str]:
    """The command that runs ``argv`` in ``workdir``, logging to files there.

    It prints ``PID_MARKER PID PGID`` first, writes ``PID PGID`` to ``workdir/pid``,
    then becomes ``argv`` (same pid) with stdout/stderr in ``stdout.log`` and
    ``stderr.log``: a dropped connection does not stop it.
    """
    return ["sh", "-c", _DETACHED_SCRIPT, "sh", workdir, *argv]


def alive_argv(pid: int) -> list[str]:
    """The command that exits 0 while process ``pid`` runs (zombies have ended)."""
    return ["sh", "-c", _ALIVE_SCRIPT, "sh", str(pid)]


def stop_group_argv(pgid: int, grace: float) -> list[str]:
    """The command that stops process group ``pgid``: TERM, ``grace`` seconds, KILL."""
    return ["sh", "-c", _STOP_SCRIPT, "sh", str(pgid), str(round(grace * 10))]


def stop_request_argv(pid: int) -> list[str]:
    """The command that asks worker ``pid`` to stop its trial early (SIGUSR2)."""
    return ["sh", "-c", _STOP_REQUEST_SCRIPT, "sh", str(pid), STOP_SIGNAL.name.removeprefix("SIG")]


def parse_pids(data: bytes, prefix: bytes = b"") -> tuple[int, int] | None:
    """``(pid, pgid)`` from a ``prefix PID PGID`` line; None if it is not one."""
    if not data.startswith(prefix):
        return None
    parts = data[len(prefix) :].split()
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        return None
    pid, pgid = int(parts[0]), int(parts[1])
    # Never signal init or "every process" because of a garbled line.
    return (pid, pgid) if pid > 1 and pgid > 1 else None


class Phase(enum.Enum):
    """Where a worker process is; only a started one has anything to stop."""

    PREPARING = "its directory and manifest are being written"
    STARTING = "its start command is on its way"
    RUNNING = "its pid is known"
    ENDED = "it exited, or was stopped"


@dataclass(eq=False)
class WorkerProcess:
    """One start of a trial's worker on a host."""

    host: Host
    workdir: str
    phase: Phase = Phase.PREPARING
    pid: int | None = None
    pgid: int | None = None
    channel: RemoteProcess | None = None

    def take_pids(self, data: bytes, prefix: bytes = b"") -> bool:
        found = parse_pids(data, prefix)
        if found is not None:
            (self.pid, self.pgid), self.phase = found, Phase.RUNNING
        return found is not None


@dataclass(frozen=True)
class Ended:
    """How a worker ended, as far as the runner saw."""

    code: int | None = None  # None: unseen, it ended while the connection was down
    signal: str | None = None

    def describe(self) -> str:
        if self.signal is not None:
            return f"was killed by SIG{self.signal}"
        if self.code is None:
            return "ended while its connection was down (exit code unknown)"
        return f"exited with code {self.code}"


class HostWorkers:
    """Starts, follows and stops the trials' worker processes on a pool's hosts.

    Args:
        pool: The hosts; every command goes through :meth:`HostPool.call`.
        stop_grace_seconds: Seconds between SIGTERM and SIGKILL.
        poll_interval: Seconds between looks at a process followed after its
            connection dropped.
        clock: Where the waits go.
    """

    def __init__(
        self,
        pool: HostPool,
        *,
        stop_grace_seconds: float,
        poll_interval: float,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self.pool = pool
        self.stop_grace_seconds = stop_grace_seconds
        self.poll_interval = poll_interval
        self._clock = clock

    async def execute(self, process: WorkerProcess, job: Job) -> Ended:
        """Start the worker and wait for its exit; follow it if the connection drops.

        Raises:
            _Lost: The host is down, or the start was lost with the connection.
            InfrastructureError: The worker could not start.
        """
        reported = await self._start_and_wait(process, job)
        if reported is None or not reported.seen:
            return await self.follow(process, job)
        if process.pid is None:
            stderr = reported.stderr.strip() or f"exit code {reported.code}"
            raise InfrastructureError(
                f"could not start the worker on {process.host.address}: {stderr}"
            )
        process.phase = Phase.ENDED
        return Ended(reported.code, reported.signal)

    async def _start_and_wait(self, process: WorkerProcess, job: Job) -> ProcessExit | None:
        """The worker's exit as its channel reports it; None if the connection broke."""
        host = process.host
        worker = [*host.python(), host.session.worker, "manifest.json", "0"]
        process.phase = Phase.STARTING
        try:
            async with host.transport.open_process(detached_argv(process.workdir, worker)) as chan:
                process.channel = chan
                # Shell start-up files may print before the pid line.
                while not process.pid and (line := await chan.readline()):
                    process.take_pids(line, PID_MARKER)
                if process.pid:
                    job.info.update(pid=process.pid)
                return await chan.wait()
        except _ConnectionDropped as exc:
            logger.warning(
                "connection to %s broke in trial %d: %s", host.address, job.trial_index, exc
            )
            return None
        except RunnerError as exc:  # the host cannot be reached: nothing started
            self.pool.mark_down(host, str(exc))
            raise _Lost(str(exc)) from None

    async def follow(self, process: WorkerProcess, job: Job) -> Ended:
        """After a dropped connection (or a driver restart): reconnect, then poll the
        pid until it exits.

        Raises:
            _Lost: The host stays unreachable, or the worker never started.
            InfrastructureError: The runner is closing.
        """
        host = process.host
        if self.pool.closing:
            raise InfrastructureError(CLOSED, retryable=False)
        if process.pid is None and not await self._pids_from_file(process):
            raise _Lost(f"the connection to {host.address} dropped while the worker started")
        job.info.update(pid=process.pid)
        logger.warning(
            "trial %d: re-attached to pid %s on %s, polling it until it exits",
            job.trial_index,
            process.pid,
            host.address,
        )
        assert process.pid is not None
        alive = alive_argv(process.pid)
        while (await self.pool.call(host, lambda: host.transport.run(alive))).ok:
            await self._clock.sleep(self.poll_interval)
        process.phase = Phase.ENDED
        return Ended()

    async def _pids_from_file(self, process: WorkerProcess) -> bool:
        data = await self.pool.reader(process.host)(f"{process.workdir}/pid")
        return data is not None and process.take_pids(data)

    async def stop(self, process: WorkerProcess) -> None:
        """Kill the worker's process group (TERM, grace, KILL). Time-bounded; never raises."""
        if process.phase in (Phase.PREPARING, Phase.ENDED):
            return
        host, grace = process.host, self.stop_grace_seconds
        try:
            async with self._clock.timeout(grace + STOP_SLACK_SECONDS):
                if process.pgid is None:
                    await self._learn_pids(process)
                if process.pgid is not None:
                    argv = stop_group_argv(process.pgid, grace)
                    result = await self.pool.call(host, lambda: host.transport.run(argv))
                    if not result.ok:
                        raise RunnerError(result.describe())
        except (_Lost, TrialError, RunnerError, TimeoutError) as exc:
            logger.error(
                "could not stop the trial processes of %s on %s (%s); they may still run",
                process.workdir,
                host.address,
                str(exc) or "timed out",
            )
        process.phase = Phase.ENDED

    async def _learn_pids(self, process: WorkerProcess) -> None:
        """The pids of a worker cancelled while starting: from its channel, else its file."""
        if process.channel is not None:
            with contextlib.suppress(_ConnectionDropped, TimeoutError):
                async with self._clock.timeout(PID_WAIT_SECONDS):
                    while not process.pid and (line := await process.channel.readline()):
                        process.take_pids(line, PID_MARKER)
        # The start may still be in flight; the script writes its pid file first thing.
        deadline = self._clock.now() + PID_WAIT_SECONDS
        while not process.pid and not await self._pids_from_file(process):
            if self._clock.now() > deadline:
                return
            await self._clock.sleep(PID_FILE_POLL_SECONDS)  # the file is remote: no event
