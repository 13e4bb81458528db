"""SSHRunner: each trial is a worker process on one of a pool of SSH hosts.

How a trial travels:

1. ``start()`` connects to every host at once (one asyncssh connection each),
   creates ``<job_dir>/<session>`` and uploads the worker ``axs_worker.py`` (the
   program Slurm jobs run). A function objective is cloudpickled, uploaded once per
   host and loaded there once, so a host whose Python lacks cloudpickle or one of
   the objective's imports is found before any trial runs. A script objective is
   uploaded once per host (mode 0755).
2. ``run()`` takes a slot on the healthy host with the most free slots, writes the
   trial's one-task ``manifest.json`` (parameter values travel only there; a
   script's is a "command" manifest, its argv never passes through a shell) and
   starts ``python axs_worker.py manifest.json 0`` in the trial directory, output
   to ``stdout.log``/``stderr.log`` there (a script's output too).
3. The trial ends when the remote process exits (no polling): ``result.json`` is
   the truth (for a script, only if it exited 0), ``error.json`` carries the
   objective's exception or a script's timeout.
4. A dropped connection does not stop the process (its output goes to files): the
   runner reconnects and polls the pid until it exits, then reads the files. A host
   that stays unreachable is marked down and its trials go to other hosts.
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

from .. import _jobworker
from .._aio import shielded
from .._config import SchedulerConfig, SSHConfig, SSHHost
from .._exceptions import (
    ConfigError,
    InfrastructureError,
    ObjectiveError,
    RunnerError,
    TrialError,
    WorkerDiedError,
)
from .._jobs import FunctionObjective, Job, Objective, ScriptObjective
from .._remote import (
    PID_MARKER,
    ConnectionDropped,
    SSHTransport,
    alive_argv,
    detached_argv,
    parse_pids,
    stop_group_argv,
)
from .._slurm import program_check_argv, script_task
from .._uploads import Payloads
from .._workerfiles import STDERR_TAIL_BYTES, removable_folder, reported_error, stderr_summary
from ._base import Runner

logger = logging.getLogger("ax_scheduler")
T = TypeVar("T")

#: Seconds a stop may take beyond its grace period (reconnecting, a slow host).
STOP_SLACK_SECONDS = 15.0
#: Seconds a stop waits to learn the pid of a worker cancelled while starting.
PID_WAIT_SECONDS = 2.0
#: Loads the uploaded objective once: checks Python, cloudpickle and the imports.
LOAD_CHECK = "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))"
#: Why trials still running when the runner closes fail.
CLOSED = "the SSH runner was closed; the trial's processes were stopped"


@dataclass(eq=False)
class _Host:
    """One host of the pool: its connection, its busy slots, whether it is down."""

    options: SSHHost
    transport: SSHTransport
    running: int = 0
    down: str | None = None  # why it is out of the pool
    session_dir: str = ""  # absolute, known after start()
    uploaded: set[str] = field(default_factory=set)  # payload names in session_dir
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

    def take_pids(self, data: bytes, prefix: bytes = b"") -> bool:
        found = parse_pids(data, prefix)
        if found is not None:
            (self.pid, self.pgid), self.phase = found, "running"
        return found is not None


@dataclass(frozen=True)
class _Ended:
    """How a worker ended, as far as the runner saw."""

    code: int | None = None  # None: unseen, it ended while the connection was down
    signal: str | None = None

    def describe(self) -> str:
        if self.signal is not None:
            return f"was killed by SIG{self.signal}"
        if self.code is None:
            return "ended while its connection was down (exit code unknown)"
        return f"exited with code {self.code}"


class _Lost(Exception):
    """The trial cannot finish on its host (it went down, or the start was lost): resubmit."""


class SSHRunner(Runner):
    """Runs each trial as a process on one of a pool of SSH hosts (GPU workstations).

    Args:
        hosts: One entry per host, see :class:`~ax_scheduler.SSHHost`: ``host``,
            ``port``, ``username``, ``client_keys``, ``known_hosts`` ... and
            ``slots`` (trials at once), ``python``, ``job_dir``, ``env``. A bare
            string is a host name with default options.
        config: Runner options, see :class:`~ax_scheduler.SSHConfig`:
            ``max_resubmits``, ``stop_grace_seconds``, ``poll_interval``.
        sleep: Injected by tests to run polling and reconnect back-off without waiting.

    Raises:
        ConfigError: ``hosts`` is empty, or an option is invalid; the message names it.
    """

    kind = "ssh"
    objective_types = (FunctionObjective, ScriptObjective)
    needs_pickling = True
    objectives_run_here = False

    def __init__(
        self,
        hosts: Sequence[Mapping[str, Any] | str | SSHHost],
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
        self._closing = False  # no new trials; running ones are being stopped
        self._closed = False  # connections closed: nothing may reconnect
        self._start_lock = asyncio.Lock()
        self._slot_freed = asyncio.Event()  # replaced after each set(): a pulse
        self._running: set[_Process] = set()
        self._payloads = Payloads()

    @property
    def capacity(self) -> int:
        """The sum of the hosts' ``slots``; while some are down, trials wait for a slot."""
        return sum(host.slots for host in self.hosts)

    def __repr__(self) -> str:
        hosts = ", ".join(f"{host.address} x{host.slots}" for host in self.hosts)
        return f"SSHRunner({hosts})"

    # -- start ----------------------------------------------------------------------
    async def start(self) -> None:
        """Connect to every host at once, create the job directories, upload the worker.

        Hosts that cannot be reached are left out, with a warning.

        Raises:
            RunnerError: No host can be reached; the message names each and why.
        """
        async with self._start_lock:
            if self._started:
                return
            self._closing = self._closed = False
            worker = await anyio.Path(_jobworker.__file__).read_bytes()
            await asyncio.gather(*(self._prepare_host(host, worker) for host in self._hosts))
            self._check_hosts("none of the SSH hosts can be reached")
            self._started = True

    async def _prepare_host(self, host: _Host, worker: bytes) -> None:
        host.down, host.uploaded = None, set()
        try:
            host.session_dir = await self._make_session_dir(host)
            await host.transport.write_file(f"{host.session_dir}/axs_worker.py", worker)
        except RunnerError as exc:
            host.down = str(exc)
        except asyncssh.SFTPError as exc:
            host.down = f"cannot upload the worker to {host.address}: {exc.reason}"
        else:
            logger.info("SSH host %s ready: jobs under %s", host.address, host.session_dir)

    async def _make_session_dir(self, host: _Host) -> str:
        # job_dir is $1 of a fixed script, never parsed as shell code.
        script = 'mkdir -p -- "$1/$2" && cd -- "$1/$2" && pwd -P'
        result = await host.transport.run(
            ["sh", "-c", script, "sh", host.options.job_dir, self._session]
        )
        if not result.ok:
            raise RunnerError(
                f"cannot create job_dir {host.options.job_dir!r} on {host.address}:"
                f" {result.describe()}"
            )
        return result.stdout.strip().splitlines()[-1]

    def _check_hosts(self, problem: str) -> None:
        """Raise if every host is down; warn about those that are."""
        down = [host for host in self._hosts if host.down is not None]
        if len(down) == len(self._hosts):
            raise RunnerError(f"{problem}: {self._why_down()}")
        for host in down:
            logger.warning(
                "SSH host %s left out, trials run on the others: %s", host.address, host.down
            )

    def _why_down(self) -> str:
        return "; ".join(f"{host.address}: {host.down}" for host in self._hosts if host.down)

    async def check_objective(self, objective: Objective) -> None:
        """Upload the objective to every host; load a function there once.

        A host that cannot load a function (no cloudpickle, a missing import) or
        take a script's upload is left out.

        Raises:
            RunnerError: It is neither a function nor a script objective, or no
                host can run it.
        """
        if not isinstance(objective, self.objective_types):
            raise RunnerError(
                f"{self!r} runs function and script objectives, got {type(objective).__name__}"
            )
        await self.start()
        up = [host for host in self._hosts if host.down is None]
        if isinstance(objective, ScriptObjective):
            await asyncio.gather(*(self._check_script_on(host, objective) for host in up))
        else:
            await asyncio.gather(*(self._check_on(host, objective) for host in up))
        self._check_hosts("no SSH host can run the objective")

    async def _check_script_on(self, host: _Host, objective: ScriptObjective) -> None:
        try:
            await self._upload(host, objective)
        except (_Lost, TrialError) as exc:
            host.down = host.down or f"cannot upload the script to {host.address}: {exc}"
            return
        if objective.interpreter is not None:
            await self._check_program_on(host, objective.interpreter)

    async def _check_program_on(self, host: _Host, program: str) -> None:
        """``program`` must be found where the worker runs it: with the host's ``env``."""
        argv = [*self._env(host), *program_check_argv(program)]
        try:
            result = await self._call(host, lambda: host.transport.run(argv))
        except (_Lost, TrialError) as exc:
            host.down = host.down or str(exc)
            return
        if not result.ok:
            host.down = (
                f"the script's interpreter {program!r} is not found on {host.address}"
                f" (with the host's env): {result.describe()}; give its full path there,"
                " or set PATH in the host's env"
            )

    async def _check_on(self, host: _Host, objective: FunctionObjective) -> None:
        try:
            argv = [*self._python(host), "-c", LOAD_CHECK, await self._upload(host, objective)]
            result = await self._call(host, lambda: host.transport.run(argv))
        except (_Lost, TrialError) as exc:
            host.down = host.down or str(exc)
            return
        if not result.ok:
            host.down = (
                f"{host.options.python} on {host.address} cannot load the objective:"
                f" {result.describe()}"
            )

    async def _upload(self, host: _Host, objective: FunctionObjective | ScriptObjective) -> str:
        """The path on ``host`` of the objective's pickle or script, uploaded on first use."""
        payload = await self._payloads.of(objective)
        path = f"{host.session_dir}/{payload.name}"
        if payload.name not in host.uploaded:
            write = host.transport.write_file
            await self._call(host, lambda: write(path, payload.data, mode=payload.mode))
            host.uploaded.add(payload.name)
        return path

    def _python(self, host: _Host) -> list[str]:
        """The worker's interpreter, behind ``env NAME=VALUE ...`` if the host sets any."""
        return [*self._env(host), host.options.python]

    @staticmethod
    def _env(host: _Host) -> list[str]:
        """``env NAME=VALUE ...`` for the host's ``env``, or nothing."""
        env = [f"{name}={value}" for name, value in host.options.env.items()]
        return ["env", *env] if env else []

    # -- the pool -------------------------------------------------------------------
    async def _call(self, host: _Host, operation: Callable[[], Awaitable[T]]) -> T:
        """Run one transport operation; a host that cannot be reached is marked down.

        Raises:
            _Lost: The host is (now) down.
            InfrastructureError: SFTP refused a file operation.
        """
        if self._closed:
            raise InfrastructureError(CLOSED, retryable=False)
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
            # Its awaiters see the error; this keeps asyncio from logging it again.
            host.reconnect.add_done_callback(lambda done: done.cancelled() or done.exception())
        await asyncio.shield(host.reconnect)

    def _mark_down(self, host: _Host, reason: str) -> None:
        if host.down is None:
            host.down = reason
            logger.error("SSH host %s is down: %s", host.address, reason)
        self._wake()

    def _wake(self) -> None:
        """Let trials waiting for a slot look again: a slot is free or a host went down."""
        self._slot_freed.set()
        self._slot_freed = asyncio.Event()

    async def _take_slot(self) -> _Host:
        """A slot on the healthy host with the most free slots, once one is free.

        Raises:
            InfrastructureError: Every host is down, or the runner is closing.
        """
        while True:
            if self._closing:
                raise InfrastructureError("the SSH runner was closed", retryable=False)
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
                ``details``), the worker ended without a result, or a script
                exited non-zero (its exit code and last stderr line).
            TrialTimeoutError: A script ran longer than its ``timeout``.
            WorkerDiedError: The worker was killed by a signal.
            InfrastructureError: Its hosts went down more than ``max_resubmits``
                times, or every host is down.
        """
        if not isinstance(job.objective, self.objective_types):
            raise RunnerError(f"{self!r} runs function and script objectives only")
        try:
            await self.start()
        except RunnerError as exc:  # a batch's first trial starts the runner
            # Not retried: connecting was, and a refused key stays refused.
            raise InfrastructureError(str(exc), retryable=False) from None
        resubmits = 0
        while True:
            host = await self._take_slot()
            try:
                return await self._run_on(host, job, resubmits)
            except _Lost as exc:
                reason = str(exc)
            finally:
                self._free_slot(host)
            if resubmits >= self.config.max_resubmits:
                raise InfrastructureError(
                    f"{reason}; gave up after {resubmits} resubmissions", retryable=False
                )
            resubmits += 1
            job.info.update(resubmits=resubmits)
            logger.warning(
                "trial %d lost its host, where it may still run (%s); resubmitting (%d of %d)",
                job.trial_index,
                reason,
                resubmits,
                self.config.max_resubmits,
            )

    async def _run_on(self, host: _Host, job: Job, attempt: int) -> Any:
        # A fresh directory per start: no file of an earlier attempt is read as this one's.
        retries = job.info.get("retries", 0)
        suffix = f"-attempt-{retries}-{attempt}" if attempt or retries else ""
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
            # In the checkpoint before the worker starts: a restarted driver finds
            # it by its directory (its pid file), or knows it never started.
            await job.record_info()
            ended = await self._execute(process, job)
        except asyncio.CancelledError:
            await shielded(self._stop(process))
            raise
        finally:
            self._running.discard(process)
        if self._closing:
            raise InfrastructureError(CLOSED, retryable=False)
        return await self._result(process, ended, script=isinstance(job.objective, ScriptObjective))

    async def _write_manifest(self, process: _Process, job: Job) -> None:
        host, workdir, objective = process.host, process.workdir, job.objective
        task = {"trial_index": job.trial_index, "workdir": workdir, "parameters": job.parameters}
        manifest: dict[str, Any]
        if isinstance(objective, ScriptObjective):
            command = script_task(
                objective,
                script=await self._upload(host, objective),
                interpreter=objective.interpreter,
                workdir=workdir,
                trial_index=job.trial_index,
            )
            # The worker stops the script's own process group on SIGTERM; it must
            # be done before this runner's SIGKILL ends the worker itself.
            command["grace"] = max(0.0, self.config.stop_grace_seconds - 1.0)
            manifest = {"kind": "command", "tasks": [{**task, **command}]}
        else:
            assert isinstance(objective, FunctionObjective)
            manifest = {
                "kind": "function",
                "objective": await self._upload(host, objective),
                "tasks": [task],
            }
        made = await self._call(host, lambda: host.transport.run(["mkdir", "-p", "--", workdir]))
        if not made.ok:
            raise InfrastructureError(
                f"cannot create {workdir!r} on {host.address}: {made.describe()}"
            )
        data = json.dumps(manifest).encode()
        await self._call(host, lambda: host.transport.write_file(f"{workdir}/manifest.json", data))

    async def _execute(self, process: _Process, job: Job) -> _Ended:
        """Start the worker and wait for its exit; re-attach if the connection drops."""
        completed = await self._start_and_wait(process, job)
        if completed is None or (completed.exit_status is None and completed.exit_signal is None):
            return await self._reattach(process, job)
        if process.pid is None:
            stderr = _text(completed.stderr).strip() or f"exit code {completed.exit_status}"
            raise InfrastructureError(
                f"could not start the worker on {process.host.address}: {stderr}"
            )
        process.phase = "ended"
        signal = completed.exit_signal[0] if completed.exit_signal else None
        return _Ended(completed.exit_status, signal)

    async def _start_and_wait(
        self, process: _Process, job: Job
    ) -> asyncssh.SSHCompletedProcess | None:
        """The worker's exit as its channel reports it; None if the connection broke."""
        host = process.host
        worker = [*self._python(host), f"{host.session_dir}/axs_worker.py", "manifest.json", "0"]
        process.phase = "starting"
        try:
            async with host.transport.open_process(detached_argv(process.workdir, worker)) as chan:
                process.channel = chan
                # Shell start-up files may print before the pid line.
                while not process.pid and (line := await chan.stdout.readline()):
                    process.take_pids(line, PID_MARKER)
                if process.pid:
                    job.info.update(pid=process.pid)
                return await chan.wait()
        except (ConnectionDropped, asyncssh.Error, OSError) as exc:
            logger.warning(
                "connection to %s broke in trial %d: %s", host.address, job.trial_index, exc
            )
            return None
        except RunnerError as exc:  # the host cannot be reached: nothing started
            self._mark_down(host, str(exc))
            raise _Lost(str(exc)) from None

    async def _reattach(self, process: _Process, job: Job) -> _Ended:
        """After a dropped connection: reconnect, then poll the pid until it exits.

        Raises:
            _Lost: The host stays unreachable, or the worker never started.
        """
        host = process.host
        if self._closing:
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
        while (await self._call(host, lambda: host.transport.run(alive))).ok:
            await self._sleep(self.config.poll_interval)
        process.phase = "ended"
        return _Ended()

    async def _pids_from_file(self, process: _Process) -> bool:
        data = await self._read(process, "pid")
        return data is not None and process.take_pids(data)

    # -- results --------------------------------------------------------------------
    async def _result(self, process: _Process, ended: _Ended, *, script: bool = False) -> Any:
        """``result.json`` if the worker wrote one (it is the truth), else the failure.

        A script that exited non-zero (or whose worker was killed) failed, whatever
        it wrote; one whose exit went unseen is judged by its files.
        """
        if script and (ended.signal is not None or ended.code not in (0, None)):
            raise await self._failure(process, ended, None, script=True)
        data = await self._read(process, "result.json")
        if data is None:
            raise await self._failure(process, ended, "and wrote no result.json", script=script)
        try:
            return json.loads(data)
        except json.JSONDecodeError as exc:
            problem = f"but result.json is bad: {exc}"
            raise await self._failure(process, ended, problem, script=script) from None

    async def _read(self, process: _Process, name: str, tail: int | None = None) -> bytes | None:
        transport, path = process.host.transport, f"{process.workdir}/{name}"
        return await self._call(process.host, lambda: transport.read_file(path, tail=tail))

    async def _failure(
        self, process: _Process, ended: _Ended, problem: str | None, *, script: bool = False
    ) -> TrialError:
        """The trial's failure: ``error.json`` (a script's timeout too), else the exit."""
        reported = reported_error(await self._read(process, "error.json"))
        if reported is not None:
            return reported
        last, text = stderr_summary(await self._read(process, "stderr.log", STDERR_TAIL_BYTES))
        what = "script" if script and ended.signal is None else "worker"
        where = f"{what} on {process.host.address} {ended.describe()}"
        if ended.signal is not None:
            return WorkerDiedError(f"{where}; stderr ends: {last}", details=text)
        where = f"{where} {problem}" if problem else where
        return ObjectiveError(f"{where}; stderr ends: {last}", details=text)

    # -- stopping -------------------------------------------------------------------
    async def _stop(self, process: _Process) -> None:
        """Kill the worker's process group (TERM, grace, KILL). Time-bounded; never raises."""
        if process.phase in ("preparing", "ended"):
            return
        host = process.host
        try:
            async with asyncio.timeout(self.config.stop_grace_seconds + STOP_SLACK_SECONDS):
                if process.pgid is None:
                    await self._learn_pids(process)
                if process.pgid is not None:
                    argv = stop_group_argv(process.pgid, self.config.stop_grace_seconds)
                    result = await self._call(host, lambda: host.transport.run(argv))
                    if not result.ok:
                        raise RunnerError(result.describe())
        except (_Lost, TrialError, RunnerError, TimeoutError) as exc:
            logger.error(
                "could not stop the trial processes of %s on %s (%s); they may still run",
                process.workdir,
                host.address,
                str(exc) or "timed out",
            )
        process.phase = "ended"

    async def _learn_pids(self, process: _Process) -> None:
        """The pids of a worker cancelled while starting: from its channel, else its file."""
        if process.channel is not None:
            with contextlib.suppress(asyncssh.Error, OSError, TimeoutError):
                async with asyncio.timeout(PID_WAIT_SECONDS):
                    while not process.pid and (line := await process.channel.stdout.readline()):
                        process.take_pids(line, PID_MARKER)
        # The start may still be in flight; the script writes its pid file first thing.
        deadline = time.monotonic() + PID_WAIT_SECONDS
        while not process.pid and not await self._pids_from_file(process):
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(0.2)  # the file is remote: there is no event to wait on

    # -- resuming -------------------------------------------------------------------
    def use_config(self, config: SchedulerConfig) -> None:
        """Take ``max_retries`` as ``max_resubmits`` unless this runner's config sets it."""
        if "max_resubmits" not in self.config.model_fields_set:
            self.config = self.config.model_copy(update={"max_resubmits": config.max_retries})

    async def reattach(self, job: Job) -> Awaitable[Any] | None:
        """Follow a worker a previous driver started, from its host and directory.

        A trial that never got a host is started now; one whose host is not in
        this runner's pool cannot be followed (None: it is marked FAILED).
        """
        address, workdir = job.info.get("host"), job.info.get("job_dir")
        if address is None or workdir is None:
            return self.run(job)
        host = next((host for host in self._hosts if host.address == address), None)
        if host is None:
            logger.error("trial %d ran on %s, which is not in %r", job.trial_index, address, self)
            return None
        return self._follow(host, job, str(workdir))

    async def _follow(self, host: _Host, job: Job, workdir: str) -> Any:
        host.running += 1  # it holds a slot there, as it did before the restart
        process = _Process(host, workdir)
        self._running.add(process)
        try:
            ended = await self._reattach(process, job)
            return await self._result(
                process, ended, script=isinstance(job.objective, ScriptObjective)
            )
        except _Lost as exc:
            # Nothing of it runs: a fresh start is not a duplicate.
            raise InfrastructureError(str(exc)) from None
        except asyncio.CancelledError:
            await shielded(self._stop(process))
            raise
        finally:
            self._running.discard(process)
            self._free_slot(host)

    async def remove_files(self, job: Job) -> None:
        """Delete a completed trial's folder on its host.

        Raises:
            RunnerError: The host cannot be reached, ``rm`` failed, or the folder
                is not under the host's ``job_dir``.
        """
        address, path = job.info.get("host"), job.info.get("job_dir")
        host = next((host for host in self._hosts if host.address == address), None)
        if host is None or not path or not host.session_dir:
            return
        root = host.session_dir.rsplit("/", 1)[0]  # job_dir: sessions of earlier drivers too
        argv = ["rm", "-rf", "--", removable_folder(str(path), root)]
        try:
            result = await self._call(host, lambda: host.transport.run(argv))
        except (_Lost, TrialError) as exc:
            raise RunnerError(f"cannot reach {host.address}: {exc}") from None
        if not result.ok:
            raise RunnerError(f"cannot remove {path!r} on {host.address}: {result.describe()}")

    def load(self) -> dict[str, int] | None:
        """Running trials per host (``"node1 (down)"`` for a host out of the pool)."""
        return {
            f"{host.address} (down)" if host.down else host.address: host.running
            for host in self._hosts
        }

    async def aclose(self) -> None:
        """Kill every trial process group still running, then close the connections."""
        self._closing = True
        self._wake()
        if self._running:
            await shielded(asyncio.gather(*(self._stop(process) for process in self._running)))
        self._closed = True
        for host in self._hosts:
            if host.reconnect is not None:
                host.reconnect.cancel()
            await host.transport.aclose()
        self._started = False


def parse_hosts(hosts: Any) -> list[SSHHost]:
    """Validate ``SSHRunner(hosts=...)``: a non-empty list of host dicts or names.

    Raises:
        ConfigError: It is empty or not a list, or an entry is invalid.
    """
    if isinstance(hosts, str | bytes | Mapping) or not isinstance(hosts, Sequence):
        raise ConfigError(
            f"hosts must be a list of hosts like [{{'host': 'gpu1', 'slots': 2}}], got {hosts!r}"
        )
    if not hosts:
        raise ConfigError("hosts is empty: give at least one host, like [{'host': 'gpu1'}]")
    return [SSHHost.from_entry(index, entry) for index, entry in enumerate(hosts)]


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
