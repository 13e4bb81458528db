"""SSHRunner: each trial is a worker process on one of a pool of SSH hosts.

How a trial travels:

1. ``start()`` connects to every host at once (one asyncssh connection each),
   creates ``<job_dir>/<session>`` and uploads the worker ``axs_worker.py`` (the
   program Slurm jobs run). The objective is cloudpickled, uploaded once per host
   and loaded there once, so a host whose Python lacks cloudpickle or the
   objective's imports is found before any trial.
2. ``run()`` takes a slot on the healthy host with the most free slots, writes the
   trial's one-task ``manifest.json`` (parameter values travel only there) and
   starts ``python axs_worker.py manifest.json 0`` in the trial directory, output
   to ``stdout.log``/``stderr.log`` next to it.
3. The trial ends when the remote process exits (no polling): ``result.json`` is
   the truth, ``error.json`` carries the objective's exception.
4. A dropped connection does not stop the process (its output goes to files): the
   runner reconnects, polls the pid until it exits, then reads the files. A host
   that stays unreachable is marked down and its trials go to another host.
5. Cancelling kills the trial's process group: SIGTERM, ``stop_grace_seconds``,
   SIGKILL, in one remote command.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import asyncssh
import cloudpickle

from .. import _jobworker
from .._aio import shielded
from .._config import SSHConfig, SSHHost
from .._exceptions import (
    ConfigError,
    InfrastructureError,
    ObjectiveError,
    RunnerError,
    TrialError,
    WorkerDiedError,
)
from .._jobs import FunctionObjective, Job, Objective
from .._remote import SSHTransport
from ._base import Runner

logger = logging.getLogger("ax_scheduler")
T = TypeVar("T")

#: How much of a trial's stderr a failure reason quotes.
STDERR_TAIL_BYTES = 2000
#: Seconds a stop may take beyond its grace period (reconnecting, slow hosts).
STOP_SLACK_SECONDS = 15.0
#: Seconds a cancelled start waits to learn the pid of a process it may have started.
PID_WAIT_SECONDS = 2.0

# The remote scripts are fixed: paths and numbers arrive as positional arguments
# ("$1" ...), so nothing a user or Ax provides is ever parsed as shell code.

#: Runs the worker in the trial directory ($1) with the argv that follows. The pid
#: and process group come first on stdout (and in ``pid``, for a re-attach after a
#: dropped connection); sshd makes the command a session leader, so the group is
#: everything the trial starts.
START_SCRIPT = """\
cd -- "$1" || exit
shift
g=$(ps -o pgid= -p $$ 2>/dev/null | tr -d ' ')
echo "$$ ${g:-$$}" > pid
echo "axs-pid $$ ${g:-$$}"
exec "$@" </dev/null >stdout.log 2>stderr.log
"""

#: Exit 0 while process $1 runs. A zombie has ended: where init does not reap
#: orphans (containers), a re-attached worker stays one forever.
ALIVE_SCRIPT = """\
if command -v ps >/dev/null 2>&1; then
  s=$(ps -o stat= -p "$1") || exit 1
  case $s in *Z*) exit 1 ;; esac
  exit 0
fi
kill -0 "$1" 2>/dev/null
"""

#: SIGTERM process group $1, wait up to $2 tenths of a second for its live
#: (non-zombie) members to exit, then SIGKILL what is left.
STOP_SCRIPT = """\
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

#: Loads the uploaded objective once: checks Python, cloudpickle and the imports.
LOAD_CHECK = "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))"


@dataclass(eq=False)
class _Host:
    """One host of the pool: its connection, its free slots, whether it is down."""

    options: SSHHost
    transport: SSHTransport
    running: int = 0
    down: str | None = None  # why it is out of the pool
    session_dir: str = ""  # absolute, known after start()
    objectives: dict[int, str] = field(default_factory=dict)  # id(objective) -> pickle path
    reconnect: asyncio.Future[Any] | None = None

    @property
    def address(self) -> str:
        return self.options.address

    @property
    def free(self) -> int:
        return self.options.slots - self.running


@dataclass(eq=False)
class _Process:
    """One start of a trial's worker on a host."""

    host: _Host
    workdir: str
    phase: str = "preparing"  # -> starting -> running -> ended
    pid: int | None = None
    pgid: int | None = None
    channel: asyncssh.SSHClientProcess[bytes] | None = None


@dataclass(frozen=True)
class _Ended:
    """How a worker process ended, as far as the runner saw it."""

    code: int | None = None  # None: not seen (it ended while the connection was down)
    signal: str | None = None

    def describe(self) -> str:
        if self.signal is not None:
            return f"was killed by SIG{self.signal}"
        if self.code is None:
            return "ended while the connection was down (exit code unknown)"
        return f"exited with code {self.code}"


class _Lost(Exception):
    """The trial could not run to its end on its host; run it on another one."""


class SSHRunner(Runner):
    """Runs each trial as a process on one of a pool of SSH hosts (GPU workstations).

    Args:
        hosts: One entry per host, see :class:`~ax_scheduler.SSHHost`: ``host``,
            ``port``, ``username``, ``client_keys``, ``known_hosts`` ... plus
            ``slots`` (trials at once), ``python``, ``job_dir`` and ``env``. A bare
            string is a host name with default options.
        config: Runner options, see :class:`~ax_scheduler.SSHConfig`:
            ``max_resubmits``, ``stop_grace_seconds``, ``poll_interval``.
        sleep: Injected by tests to run re-attach polling and back-off without waiting.

    Raises:
        ConfigError: ``hosts`` is empty, or an option is invalid; the message names it.
    """

    kind = "ssh"
    objective_types = (FunctionObjective,)
    needs_pickling = True

    def __init__(
        self,
        hosts: Sequence[Mapping[str, Any] | str],
        config: Mapping[str, Any] | None = None,
        *,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.hosts = parse_hosts(hosts)
        self.config = SSHConfig.from_user(config)
        self._sleep = sleep
        self._hosts = [_Host(host, SSHTransport(host, sleep=sleep)) for host in self.hosts]
        self._session = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self._started = False
        self._closing = False
        self._start_lock = asyncio.Lock()
        self._slot_freed = asyncio.Event()  # replaced after each set: a pulse
        self._running: set[_Process] = set()
        self._pickles: dict[int, bytes] = {}

    @property
    def capacity(self) -> int:
        """The sum of the hosts' ``slots``."""
        return sum(host.slots for host in self.hosts)

    def __repr__(self) -> str:
        hosts = ", ".join(f"{host.address} ({host.slots} slots)" for host in self.hosts)
        return f"SSHRunner({hosts})"

    # -- start ----------------------------------------------------------------------
    async def start(self) -> None:
        """Connect to every host at once, create the job directories, upload the worker.

        Hosts that cannot be reached are left out with a warning.

        Raises:
            RunnerError: No host can be reached; the message names each and why.
        """
        async with self._start_lock:
            if self._started:
                return
            self._closing = False
            worker = await anyio.Path(_jobworker.__file__).read_bytes()
            await asyncio.gather(*(self._prepare_host(host, worker) for host in self._hosts))
            self._check_some_host_up("none of the SSH hosts can be reached")
            self._started = True
            for host in self._hosts:
                if host.down is None:
                    logger.info("SSH host %s ready: jobs under %s", host.address, host.session_dir)

    async def _prepare_host(self, host: _Host, worker: bytes) -> None:
        host.down, host.objectives = None, {}
        try:
            host.session_dir = await self._make_session_dir(host)
            await host.transport.write_file(f"{host.session_dir}/axs_worker.py", worker)
        except RunnerError as exc:
            host.down = str(exc)
        except asyncssh.SFTPError as exc:
            host.down = f"cannot upload the worker to {host.address}: {exc.reason}"

    async def _make_session_dir(self, host: _Host) -> str:
        script = 'mkdir -p -- "$1/$2" && cd -- "$1/$2" && pwd -P'
        argv = ["sh", "-c", script, "sh", host.options.job_dir, self._session]
        result = await host.transport.run(argv)
        if not result.ok:
            raise RunnerError(
                f"cannot create job_dir {host.options.job_dir!r} on {host.address}:"
                f" {result.describe()}"
            )
        return result.stdout.strip().splitlines()[-1]

    def _check_some_host_up(self, problem: str) -> None:
        """Raise if every host is down; warn about the ones that are."""
        down = [host for host in self._hosts if host.down is not None]
        if len(down) == len(self._hosts):
            raise RunnerError(f"{problem}: {self._why_down()}")
        for host in down:
            logger.warning(
                "SSH host %s left out, running on the others: %s", host.address, host.down
            )

    def _why_down(self) -> str:
        return "; ".join(f"{host.address}: {host.down}" for host in self._hosts if host.down)

    async def check_objective(self, objective: Objective) -> None:
        """Upload the objective to every host and load it there once.

        A host that cannot load it (no cloudpickle, a missing import) is left out.

        Raises:
            RunnerError: It is not a function objective, or no host can load it.
        """
        if not isinstance(objective, FunctionObjective):
            raise RunnerError(f"{self!r} runs function objectives, got {type(objective).__name__}")
        up = [host for host in self._hosts if host.down is None]
        await asyncio.gather(*(self._check_on(host, objective) for host in up))
        self._check_some_host_up("no SSH host can run the objective")

    async def _check_on(self, host: _Host, objective: FunctionObjective) -> None:
        try:
            path = await self._objective_path(host, objective)
            argv = [*self._python(host), "-c", LOAD_CHECK, path]
            result = await self._call(host, lambda: host.transport.run(argv))
        except (_Lost, TrialError) as exc:
            host.down = host.down or str(exc)
            return
        if not result.ok:
            host.down = (
                f"{host.options.python} on {host.address} cannot load the objective:"
                f" {result.describe()}"
            )

    async def _objective_path(self, host: _Host, objective: FunctionObjective) -> str:
        key = id(objective)
        if key not in host.objectives:
            if key not in self._pickles:
                self._pickles[key] = await anyio.to_thread.run_sync(cloudpickle.dumps, objective.fn)
            data = self._pickles[key]
            path = f"{host.session_dir}/objective-{list(self._pickles).index(key)}.pkl"
            await self._call(host, lambda: host.transport.write_file(path, data, mode=0o600))
            host.objectives[key] = path
        return host.objectives[key]

    def _python(self, host: _Host) -> list[str]:
        """The worker's interpreter, behind ``env NAME=VALUE`` if the host sets any."""
        env = [f"{name}={value}" for name, value in host.options.env.items()]
        return ["env", *env, host.options.python] if env else [host.options.python]

    # -- hosts ----------------------------------------------------------------------
    async def _call(self, host: _Host, operation: Callable[[], Awaitable[T]]) -> T:
        """Run one transport operation; an unreachable host is marked down.

        Raises:
            _Lost: The host is (now) down.
            InfrastructureError: SFTP refused a file operation.
        """
        if host.down is not None:
            raise _Lost(host.down)
        try:
            await self._connected(host)
            return await operation()
        except RunnerError as exc:
            self._mark_down(host, str(exc))
            raise _Lost(str(exc)) from None
        except asyncssh.SFTPError as exc:
            raise InfrastructureError(f"{host.address}: {exc.reason}") from None

    async def _connected(self, host: _Host) -> None:
        """Wait for the host's connection; trials that find it broken share one reconnect."""
        if host.reconnect is None or host.reconnect.done():
            host.reconnect = asyncio.ensure_future(host.transport.connection())
            # Whoever awaits it sees its error; this keeps asyncio from logging it.
            host.reconnect.add_done_callback(lambda done: done.cancelled() or done.exception())
        await asyncio.shield(host.reconnect)

    def _mark_down(self, host: _Host, reason: str) -> None:
        if host.down is None:
            host.down = reason
            logger.error("SSH host %s is down: %s", host.address, reason)
        self._wake()

    def _wake(self) -> None:
        """Let trials waiting for a slot look again (a slot freed, a host went down)."""
        self._slot_freed.set()
        self._slot_freed = asyncio.Event()

    async def _take_slot(self) -> _Host:
        """A slot on the healthy host with the most free slots; waits while all are busy.

        Raises:
            InfrastructureError: Every host is down, or the runner is closing.
        """
        while True:
            if self._closing:
                raise InfrastructureError("the SSH runner was closed")
            up = [host for host in self._hosts if host.down is None]
            if not up:
                raise InfrastructureError(f"every SSH host is down: {self._why_down()}")
            host = max(up, key=lambda host: host.free)
            if host.free > 0:
                host.running += 1
                return host
            await self._slot_freed.wait()

    def _free_slot(self, host: _Host) -> None:
        host.running -= 1
        self._wake()

    # -- running --------------------------------------------------------------------
    async def run(self, job: Job) -> Any:
        """Run one trial on a host and return what its objective returned.

        Raises:
            ObjectiveError: The objective raised (its message; the traceback in
                ``details``), or the worker failed without a result.
            WorkerDiedError: The worker was killed by a signal.
            InfrastructureError: Hosts went down more than ``max_resubmits`` times
                while the trial ran, or every host is down.
        """
        if not isinstance(job.objective, FunctionObjective):
            raise RunnerError(f"{self!r} runs function objectives only")
        await self.start()
        resubmits = 0
        while True:
            host = await self._take_slot()
            try:
                return await self._run_on(host, job, resubmits)
            except _Lost as lost:
                reason = str(lost)
            finally:
                self._free_slot(host)
            if resubmits >= self.config.max_resubmits:
                raise InfrastructureError(
                    f"{reason}; gave up after {resubmits} resubmissions (max_resubmits)"
                )
            resubmits += 1
            job.info.update(resubmits=resubmits)
            logger.warning(
                "trial %d lost its host (%s); resubmitting (%d of %d)",
                job.trial_index,
                reason,
                resubmits,
                self.config.max_resubmits,
            )

    async def _run_on(self, host: _Host, job: Job, attempt: int) -> Any:
        suffix = f"-resubmit-{attempt}" if attempt else ""
        process = _Process(host, f"{host.session_dir}/trial-{job.trial_index}{suffix}")
        job.info.pop("pid", None)
        job.info.update(
            host=host.address,
            job_dir=process.workdir,
            stdout=f"{process.workdir}/stdout.log",
            stderr=f"{process.workdir}/stderr.log",
        )
        self._running.add(process)
        try:
            await self._write_manifest(process, job)
            ended = await self._execute(process, job)
        except asyncio.CancelledError:
            await shielded(self._stop(process))
            raise
        finally:
            self._running.discard(process)
        if self._closing:
            raise InfrastructureError(
                "the SSH runner was closed; the trial's processes were stopped"
            )
        return await self._result(process, ended)

    async def _write_manifest(self, process: _Process, job: Job) -> None:
        host = process.host
        assert isinstance(job.objective, FunctionObjective)
        manifest = {
            "kind": "function",
            "objective": await self._objective_path(host, job.objective),
            "tasks": [
                {
                    "trial_index": job.trial_index,
                    "workdir": process.workdir,
                    "parameters": job.parameters,
                }
            ],
        }
        mkdir = await self._call(
            host, lambda: host.transport.run(["mkdir", "-p", "--", process.workdir])
        )
        if not mkdir.ok:
            raise InfrastructureError(
                f"cannot create {process.workdir!r} on {host.address}: {mkdir.describe()}"
            )
        data = json.dumps(manifest).encode()
        path = f"{process.workdir}/manifest.json"
        await self._call(host, lambda: host.transport.write_file(path, data))

    def _command(self, process: _Process) -> list[str]:
        worker = f"{process.host.session_dir}/axs_worker.py"
        python = self._python(process.host)
        return [
            "sh",
            "-c",
            START_SCRIPT,
            "sh",
            process.workdir,
            *python,
            worker,
            "manifest.json",
            "0",
        ]

    async def _execute(self, process: _Process, job: Job) -> _Ended:
        """Start the worker and wait for its exit; re-attach if the connection drops."""
        host = process.host
        if host.down is not None:
            raise _Lost(host.down)
        process.phase = "starting"
        completed = None
        try:
            async with host.transport.open_process(self._command(process)) as channel:
                process.channel = channel
                await self._read_pids(process, job)
                completed = await channel.wait()
        except (RunnerError, asyncssh.Error, OSError) as exc:
            logger.warning(
                "connection to %s broke during trial %d: %s", host.address, job.trial_index, exc
            )
        finally:
            process.channel = None
        if completed is None or (completed.exit_status is None and completed.exit_signal is None):
            return await self._reattach(process, job)
        if process.pid is None:
            stderr = _text(completed.stderr).strip() or f"exit code {completed.exit_status}"
            raise InfrastructureError(f"could not start the worker on {host.address}: {stderr}")
        process.phase = "ended"
        signal_name = completed.exit_signal[0] if completed.exit_signal else None
        return _Ended(completed.exit_status, signal_name)

    async def _read_pids(self, process: _Process, job: Job) -> None:
        """Read the ``axs-pid PID PGID`` line; shell start-up files may print before it."""
        assert process.channel is not None
        while line := await process.channel.stdout.readline():
            if _record_pids(process, line.decode(errors="replace").removeprefix("axs-pid ")):
                job.info.update(pid=process.pid)
                return

    async def _reattach(self, process: _Process, job: Job) -> _Ended:
        """After a dropped connection: reconnect, then poll the pid until it exits.

        Raises:
            _Lost: The host stays unreachable, or the worker never started.
        """
        host = process.host
        if self._closing:
            raise InfrastructureError(
                "the SSH runner was closed; the trial's processes were stopped"
            )
        if process.pid is None and not await self._pids_from_file(process):
            raise _Lost(
                f"the connection to {host.address} dropped while trial {job.trial_index} started",
                host_down=False,
            )
        job.info.update(pid=process.pid)
        logger.warning(
            "re-attached to trial %d on %s: polling pid %s until it exits",
            job.trial_index,
            host.address,
            process.pid,
        )
        while await self._alive(process):
            await self._sleep(self.config.poll_interval)
        process.phase = "ended"
        return _Ended()

    async def _pids_from_file(self, process: _Process) -> bool:
        host = process.host
        data = await self._call(host, lambda: host.transport.read_file(f"{process.workdir}/pid"))
        return data is not None and _record_pids(process, data.decode(errors="replace"))

    async def _alive(self, process: _Process) -> bool:
        host = process.host
        argv = ["sh", "-c", ALIVE_SCRIPT, "sh", str(process.pid)]
        result = await self._call(host, lambda: host.transport.run(argv))
        return result.ok

    # -- results --------------------------------------------------------------------
    async def _result(self, process: _Process, ended: _Ended) -> Any:
        """``result.json`` if the worker wrote one (it is the truth), else the failure."""
        data = await self._read(process, "result.json")
        if data is None:
            raise await self._failure(process, ended, "and wrote no result.json")
        try:
            return json.loads(data)
        except json.JSONDecodeError as exc:
            raise await self._failure(
                process, ended, f"but result.json is not JSON ({exc})"
            ) from None

    async def _read(self, process: _Process, name: str, tail: int | None = None) -> bytes | None:
        host = process.host
        path = f"{process.workdir}/{name}"
        return await self._call(host, lambda: host.transport.read_file(path, tail=tail))

    async def _failure(self, process: _Process, ended: _Ended, problem: str) -> TrialError:
        error = await self._read(process, "error.json")
        if error is not None:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                report = json.loads(error)
                return ObjectiveError(str(report["error"]), details=str(report["traceback"]))
        tail = await self._read(process, "stderr.log", STDERR_TAIL_BYTES) or b""
        text = tail.decode(errors="replace").strip()
        last = text.splitlines()[-1] if text else "(stderr empty)"
        where = f"worker on {process.host.address} {ended.describe()}"
        if ended.signal is not None:
            return WorkerDiedError(f"{where}; stderr ends: {last}", details=text or None)
        return ObjectiveError(f"{where} {problem}; stderr ends: {last}", details=text or None)

    # -- stopping -------------------------------------------------------------------
    async def _stop(self, process: _Process) -> None:
        """Kill the worker's process group (TERM, grace, KILL); never raises.

        Time-bounded: a host that does not answer is logged, not waited for.
        """
        if process.phase in ("preparing", "ended"):
            return
        host = process.host
        limit = self.config.stop_grace_seconds + STOP_SLACK_SECONDS
        try:
            async with asyncio.timeout(limit):
                if process.pgid is None:
                    await self._learn_pids(process)
                if process.pgid is not None:
                    await self._kill_group(host, process.pgid)
        except (_Lost, TrialError, RunnerError, TimeoutError) as exc:
            logger.error(
                "could not stop the trial processes in %s on %s (%s); they may still run",
                process.workdir,
                host.address,
                exc or "timed out",
            )
        process.phase = "ended"

    async def _learn_pids(self, process: _Process) -> None:
        """The pid of a worker cancelled while starting: from its channel, else its file."""
        channel = process.channel
        if channel is not None:
            with contextlib.suppress(asyncssh.Error, OSError, TimeoutError):
                async with asyncio.timeout(PID_WAIT_SECONDS):
                    while line := await channel.stdout.readline():
                        if _record_pids(
                            process, line.decode(errors="replace").removeprefix("axs-pid ")
                        ):
                            return
        # The exec request may be in flight: the script writes its pid file first thing.
        deadline = time.monotonic() + PID_WAIT_SECONDS
        while not await self._pids_from_file(process) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)

    async def _kill_group(self, host: _Host, pgid: int) -> None:
        tenths = str(round(self.config.stop_grace_seconds * 10))
        argv = ["sh", "-c", STOP_SCRIPT, "sh", str(pgid), tenths]
        result = await self._call(host, lambda: host.transport.run(argv))
        if not result.ok:
            logger.error(
                "stopping process group %d on %s failed: %s", pgid, host.address, result.describe()
            )

    async def aclose(self) -> None:
        """Kill every trial process group still running, then close the connections."""
        self._closing = True
        self._wake()
        running = list(self._running)
        if running:
            await shielded(asyncio.gather(*(self._stop(process) for process in running)))
        for host in self._hosts:
            if host.reconnect is not None:
                host.reconnect.cancel()
            await host.transport.aclose()
        self._started = False


def parse_hosts(hosts: Any) -> list[SSHHost]:
    """Validate ``SSHRunner(hosts=...)``: a non-empty list of host dicts or names.

    Raises:
        ConfigError: The list is empty or not a list, or an entry is invalid.
    """
    if isinstance(hosts, str | bytes | Mapping) or not isinstance(hosts, Sequence):
        raise ConfigError(
            f"hosts must be a list of hosts like [{{'host': 'gpu1', 'slots': 2}}], got {hosts!r}"
        )
    if not hosts:
        raise ConfigError("hosts is empty: give at least one host, like [{'host': 'gpu1'}]")
    return [SSHHost.from_entry(index, entry) for index, entry in enumerate(hosts)]


def _record_pids(process: _Process, text: str) -> bool:
    """Take ``PID PGID`` from ``text``; False if it is not that."""
    parts = text.split()
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        return False
    pid, pgid = int(parts[0]), int(parts[1])
    if pid <= 1 or pgid <= 1:  # never signal init or "every process"
        return False
    process.pid, process.pgid, process.phase = pid, pgid, "running"
    return True


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _signal_name(number: int) -> str:
    with contextlib.suppress(ValueError):
        return signal.Signals(number).name
    return f"signal {number}"
