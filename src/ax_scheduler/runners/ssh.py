"""SSHRunner: each trial is a worker process on one of a pool of SSH hosts.

How a trial travels:

1. ``start()`` connects to every host at once (one asyncssh connection each),
   creates ``<job_dir>/<session>`` and uploads the worker ``axs_worker.py`` (the
   program Slurm jobs run). A function objective is cloudpickled, uploaded once per
   host and loaded there once, so a host whose Python lacks cloudpickle or one of
   the objective's imports is found before any trial runs. A script objective is
   uploaded once per host (mode 0755).
2. ``run()`` takes a slot on the healthy host with the most free slots
   (:mod:`ax_scheduler._hostpool`), writes the trial's one-task ``manifest.json``
   (parameter values travel only there; a script's is a "command" manifest, its
   argv never passes through a shell) and starts the worker in the trial
   directory (:mod:`ax_scheduler._hostworker`).
3. The trial ends when the remote process exits (no polling): ``result.json`` is
   the truth (for a script, only if it exited 0), ``error.json`` carries the
   objective's exception or a script's timeout.
4. A dropped connection does not stop the process (its output goes to files): the
   runner reconnects and polls the pid until it exits, then reads the files. A host
   that stays unreachable is marked down and its trials go to other hosts.
5. Cancelling kills the trial's process group: SIGTERM, ``stop_grace_seconds``,
   SIGKILL, in one remote command.
6. Reports: while a host runs trials, ONE command per ``poll_interval`` (1 s)
   reads the new lines of all their ``progress.jsonl`` files, and one more reads
   a trial's last lines when it ends; an early stop is SIGUSR2 to the trial's
   worker (:mod:`ax_scheduler._hostprogress`).

What Slurm does the same way (the session directory, uploads, manifests, reading
a trial's files) is :mod:`ax_scheduler._remotejob`'s.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import asyncssh

from .._aio import shielded
from .._clock import REAL_CLOCK, Clock
from .._config import SchedulerConfig, SSHConfig, SSHHost
from .._exceptions import (
    ConfigError,
    InfrastructureError,
    ObjectiveError,
    RunnerError,
    TrialError,
    WorkerDiedError,
)
from .._hostpool import CLOSED, Host, HostPool, _Lost
from .._hostprogress import HostProgress
from .._hostworker import Ended, HostWorkers, WorkerProcess
from .._jobs import FunctionObjective, Job, Objective, ScriptObjective
from .._remote import HostTransport
from .._remotejob import (
    RemoteSession,
    TrialFolder,
    Uploadable,
    manifest,
    session_name,
    trial_folder,
    with_scheduler_retries,
)
from .._sshchecks import HostChecks
from .._sshtransport import SSHTransport
from .._uploads import Payloads
from ._base import Runner

logger = logging.getLogger("ax_scheduler")


class SSHRunner(Runner):
    """Runs each trial as a process on one of a pool of SSH hosts (GPU workstations).

    Args:
        hosts: One entry per host, see :class:`~ax_scheduler.SSHHost`: ``host``,
            ``port``, ``username``, ``client_keys``, ``known_hosts`` ... and
            ``slots`` (trials at once), ``python``, ``job_dir``, ``env``. A bare
            string is a host name with default options.
        config: Runner options, see :class:`~ax_scheduler.SSHConfig`:
            ``max_resubmits``, ``stop_grace_seconds``, ``poll_interval`` (also
            the pace at which running trials' progress files are read).
        transports: For tests: makes each host's transport from its options
            (fakes of hosts, instead of one SSH connection each).
        clock: For tests: the clock polling, reconnect back-off and stop time
            limits use (:class:`ax_scheduler.testing.FakeClock` runs them in
            virtual time).

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
        transports: Callable[[SSHHost], HostTransport] | None = None,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self.hosts = parse_hosts(hosts)
        self.config = SSHConfig.from_user(config)
        connect = transports or (lambda host: SSHTransport(host, clock=clock))
        name, payloads = session_name(), Payloads()  # one pickle of an objective for all
        self._pool = HostPool(
            [self._host(entry, connect(entry), name, payloads) for entry in self.hosts]
        )
        self._workers = HostWorkers(
            self._pool,
            stop_grace_seconds=self.config.stop_grace_seconds,
            poll_interval=self.config.poll_interval,
            clock=clock,
        )
        self._progress = HostProgress(self._pool, interval=self.config.poll_interval, clock=clock)
        self._started = False
        self._start_lock = asyncio.Lock()
        self._running: set[WorkerProcess] = set()

    @staticmethod
    def _host(entry: SSHHost, transport: HostTransport, name: str, payloads: Payloads) -> Host:
        return Host(entry, transport, RemoteSession(transport, entry.job_dir, name, payloads))

    @property
    def capacity(self) -> int:
        """The sum of the hosts' ``slots``; while some are down, trials wait for a slot."""
        return sum(host.slots for host in self.hosts)

    @property
    def stats(self) -> dict[str, int]:
        """Commands sent so far, for tests and benches: ``progress`` (reads of the
        progress files, one per host and tick) and ``stop`` (early stops)."""
        return {"progress": self._progress.commands, "stop": self._progress.stop_signals}

    def __repr__(self) -> str:
        hosts = ", ".join(f"{host.address} x{host.slots}" for host in self.hosts)
        return f"SSHRunner({hosts})"

    def use_config(self, config: SchedulerConfig) -> None:
        """Take ``max_retries`` as ``max_resubmits`` unless this runner's config sets it."""
        self.config = with_scheduler_retries(self.config, config)

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
            self._pool.closing = self._pool.closed = False
            await asyncio.gather(*(self._prepare(host) for host in self._pool.hosts))
            self._pool.check("none of the SSH hosts can be reached")
            self._started = True

    async def _prepare(self, host: Host) -> None:
        host.down = None
        try:
            await host.session.open()
        except RunnerError as exc:
            host.down = str(exc)
        except asyncssh.SFTPError as exc:
            host.down = f"cannot upload the worker to {host.address}: {exc.reason}"
        else:
            logger.info("SSH host %s ready: jobs under %s", host.address, host.session.directory)

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
        checks = HostChecks(self._pool, self._upload)
        await asyncio.gather(*(checks.objective(host, objective) for host in self._pool.up()))
        self._pool.check("no SSH host can run the objective")

    async def _upload(self, host: Host, objective: Uploadable) -> str:
        """The path on ``host`` of the objective's pickle or script, uploaded on first use."""
        return await self._pool.call(host, lambda: host.session.upload(objective))

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
            host = await self._pool.take_slot()
            try:
                return await self._run_on(host, job, resubmits)
            except _Lost as exc:
                reason = str(exc)
            finally:
                self._pool.free_slot(host)
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

    async def _run_on(self, host: Host, job: Job, attempt: int) -> Any:
        # A fresh directory per start: no file of an earlier attempt is read as this one's.
        retries = job.info.get("retries", 0)
        suffix = f"-attempt-{retries}-{attempt}" if attempt or retries else ""
        process = WorkerProcess(host, f"{host.session.directory}/trial-{job.trial_index}{suffix}")
        job.info.pop("pid", None)
        job.info.update(
            host=host.address,
            job_dir=process.workdir,
            stdout=f"{process.workdir}/stdout.log",
            stderr=f"{process.workdir}/stderr.log",
        )
        self._running.add(process)
        self._progress.follow(process, job)
        try:
            await self._write_manifest(process, job)
            # In the checkpoint before the worker starts: a restarted driver finds
            # it by its directory (its pid file), or knows it never started.
            await job.record_info()
            ended = await self._workers.execute(process, job)
            await self._progress.finish(process)  # its last lines before its result
        except asyncio.CancelledError:
            await shielded(self._workers.stop(process))
            raise
        finally:
            self._progress.forget(process)
            self._running.discard(process)
        if self._pool.closing:
            raise InfrastructureError(CLOSED, retryable=False)
        return await self._result(process, ended, script=isinstance(job.objective, ScriptObjective))

    async def _write_manifest(self, process: WorkerProcess, job: Job) -> None:
        host, workdir = process.host, process.workdir
        # The worker stops a script's own process group on SIGTERM; it must be done
        # before this runner's SIGKILL ends the worker itself.
        grace = max(0.0, self.config.stop_grace_seconds - 1.0)
        tasks = [(job, workdir)]
        jobs = await manifest(job.objective, tasks, lambda o: self._upload(host, o), grace=grace)
        made = await self._pool.call(
            host, lambda: host.transport.run(["mkdir", "-p", "--", workdir])
        )
        if not made.ok:
            raise InfrastructureError(
                f"cannot create {workdir!r} on {host.address}: {made.describe()}"
            )
        data = json.dumps(jobs).encode()
        path = f"{workdir}/manifest.json"
        await self._pool.call(host, lambda: host.transport.write_file(path, data))

    async def _result(self, process: WorkerProcess, ended: Ended, *, script: bool) -> Any:
        """``result.json`` if the worker wrote one (it is the truth), else the failure.

        A script that exited non-zero (or whose worker was killed) failed, whatever
        it wrote; one whose exit went unseen is judged by its files.
        """
        folder = TrialFolder(process.workdir, self._pool.reader(process.host))
        what = "script" if script and ended.signal is None else "worker"
        where = f"{what} on {process.host.address} {ended.describe()}"
        kind = ObjectiveError if ended.signal is None else WorkerDiedError
        if script and (ended.signal is not None or ended.code not in (0, None)):
            raise await folder.failure(where, kind)
        return await folder.result(where, kind)

    # -- resuming -------------------------------------------------------------------
    async def reattach(self, job: Job) -> Awaitable[Any] | None:
        """Follow a worker a previous driver started, from its host and directory.

        A trial that never got a host is started now; one whose host is not in
        this runner's pool cannot be followed (None: it is marked FAILED).
        """
        address, workdir = job.info.get("host"), job.info.get("job_dir")
        if address is None or workdir is None:
            return self.run(job)
        host = self._pool.find(address)
        if host is None:
            logger.error("trial %d ran on %s, which is not in %r", job.trial_index, address, self)
            return None
        return self._follow(host, job, str(workdir))

    async def _follow(self, host: Host, job: Job, workdir: str) -> Any:
        host.running += 1  # it holds a slot there, as it did before the restart
        process = WorkerProcess(host, workdir)
        self._running.add(process)
        self._progress.follow(process, job)  # its file again from the start: Ax skips what it has
        try:
            ended = await self._workers.follow(process, job)
            await self._progress.finish(process)
            return await self._result(
                process, ended, script=isinstance(job.objective, ScriptObjective)
            )
        except _Lost as exc:
            # Nothing of it runs: a fresh start is not a duplicate.
            raise InfrastructureError(str(exc)) from None
        except asyncio.CancelledError:
            await shielded(self._workers.stop(process))
            raise
        finally:
            self._progress.forget(process)
            self._running.discard(process)
            self._pool.free_slot(host)

    async def remove_files(self, job: Job) -> None:
        """Delete a completed trial's folder on its host.

        Raises:
            RunnerError: The host cannot be reached, ``rm`` failed, or the folder
                is not under the host's ``job_dir``.
        """
        host = self._pool.find(job.info.get("host"))
        if host is None or not host.session.directory:
            return
        folder = trial_folder(job, host.session.root)  # earlier drivers' sessions too
        if folder is None:
            return
        argv = ["rm", "-rf", "--", folder]
        try:
            result = await self._pool.call(host, lambda: host.transport.run(argv))
        except (_Lost, TrialError) as exc:
            raise RunnerError(f"cannot reach {host.address}: {exc}") from None
        if not result.ok:
            raise RunnerError(f"cannot remove {folder!r} on {host.address}: {result.describe()}")

    def load(self) -> dict[str, int] | None:
        """Running trials per host (``"node1 (down)"`` for a host out of the pool)."""
        return self._pool.load()

    async def aclose(self) -> None:
        """Kill every trial process group still running, then close the connections."""
        self._pool.closing = True
        self._pool.wake()
        if self._running:
            stops = (self._workers.stop(process) for process in self._running)
            await shielded(asyncio.gather(*stops))
        await self._progress.aclose()
        await self._pool.aclose()
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
