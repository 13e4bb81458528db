"""DockerRunner: each trial is a ``docker run`` of a container objective.

``docker run`` is an asyncio subprocess whose exit is the trial's end (no polling).
The engine is checked once at start, the image once per run; stopping a trial is
``docker stop -t <grace>`` then ``docker rm --force``, so no container outlives its
trial. Every engine command is time-bounded: a hung engine is reported (and a stop
it did not carry out is logged: the container may still run), never waited for.

While a container runs, the progress lines it appends to ``/job/progress.jsonl``
are read on this side of the mount (one :class:`LocalProgressFiles` per runner:
one thread call per tick for every trial), once more after it exits, and again
from the start when a restarted driver re-attaches it. An early stop is
``docker kill --signal TERM`` (to the container's first process: PID 1, which
ignores a signal it set no handler for, unless ``init=True`` runs it under the
engine's init). What has not ended after ``early_stopping_grace`` is stopped like
a cancelled trial.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Coroutine
from pathlib import Path
from typing import Any

import anyio

from .._aio import shielded
from .._config.arguments import positive_int, positive_seconds
from .._container import container_name, docker_run_argv
from .._exceptions import InfrastructureError, RunnerError
from .._jobs import ContainerObjective, Job, Objective
from .._progressfile import LocalProgressFiles
from .._remote import CommandTimeout, kill_group, run_here
from .._reporting import PROGRESS_FILE_NAME
from .._script import TrialFiles, run_logged
from ._base import Runner

logger = logging.getLogger("ax_scheduler")

#: ``docker run``'s exit code when the engine could not start the container.
DOCKER_RUN_FAILED = 125

#: Seconds an engine command that a healthy engine answers at once may take
#: (version, inspect, rm, logs; on top of the grace, a stop): ample for a loaded
#: engine, and a hung one is reported within half a minute instead of never.
COMMAND_TIMEOUT_SECONDS = 30.0


class _EngineSilent(RunnerError):
    """The engine did not answer in time: worth retrying, unlike a missing image."""


class DockerRunner(Runner):
    """Runs container objectives in a local Docker engine, ``max_parallel`` at a time.

    Args:
        max_parallel: How many trial containers run at once.
        engine: The engine's client command (``docker``; honours ``DOCKER_HOST``).
        stop_grace_seconds: ``docker stop -t`` grace before ``docker kill``. A
            container an early stop already sent SIGTERM gets what is left of it
            since then (in whole seconds, rounded up).
        user: ``uid:gid`` the container runs as; default the driver's own, so
            result files in the trial directory are not root-owned.
        command_timeout: Seconds an engine command may take before it is killed
            (a stop may take ``stop_grace_seconds`` more). ``docker wait`` on a
            container a previous driver started has none: it lasts as long as
            the trial.
        init: Run the command under the engine's init process (``docker run
            --init``), which passes signals on. Without it the command is the
            container's PID 1, which ignores a SIGTERM it set no handler for: an
            early stop, a timeout or a close then ends it only once the grace
            has run out. Off by default: the engine mounts its init at
            ``/sbin/docker-init``, which fails in an image whose ``/sbin`` lies on
            a read-only volume (a host ``/usr`` mounted into a merged-``/usr``
            image), or on an engine that has no init binary.

    Raises:
        ValueError: ``max_parallel`` is not a positive int, or ``command_timeout``
            not a positive number.
    """

    kind = "docker"
    objective_types = (ContainerObjective,)

    def __init__(
        self,
        max_parallel: int = 4,
        engine: str = "docker",
        stop_grace_seconds: float = 10.0,
        user: str | None = None,
        *,
        command_timeout: float = COMMAND_TIMEOUT_SECONDS,
        init: bool = False,
    ) -> None:
        self.max_parallel = positive_int("max_parallel", max_parallel)
        self.engine = engine
        self.stop_grace_seconds = stop_grace_seconds
        self.command_timeout = positive_seconds("command_timeout", command_timeout)
        self.user = user or f"{os.getuid()}:{os.getgid()}"
        self.init = init
        self._engine_ok = False
        self._images_ok: set[str] = set()
        # Engine commands no trial waits for (rm, kill --signal TERM): aclose does.
        self._background: set[asyncio.Future[None]] = set()
        self._progress_files = LocalProgressFiles()
        self._terminated_at: dict[str, float] = {}  # container -> loop time of our SIGTERM

    @property
    def capacity(self) -> int:
        """How many containers run at once."""
        return self.max_parallel

    def __repr__(self) -> str:
        return f"DockerRunner(max_parallel={self.max_parallel}, engine={self.engine!r})"

    async def start(self) -> None:
        """Check once that the engine answers.

        Raises:
            RunnerError: The engine is not running, not reachable, or does not
                answer within ``command_timeout``.
        """
        if self._engine_ok:
            return
        argv = (self.engine, "version", "--format", "{{.Server.Version}}")
        code, out = await self._ask_engine(*argv)
        if code != 0:
            raise RunnerError(
                f"the Docker engine at {_engine_address()} does not answer: {out.strip()}"
            )
        self._engine_ok = True

    async def check_objective(self, objective: Objective) -> None:
        """Check once per image that the engine has it (no registry is assumed).

        Raises:
            RunnerError: The image is not in the engine, or the engine does not
                answer within ``command_timeout``.
        """
        if not isinstance(objective, ContainerObjective) or objective.image in self._images_ok:
            return
        if objective.engine != "docker":
            raise RunnerError(
                f"{self!r} runs docker containers; engine {objective.engine!r} needs a"
                " cluster runner (container_options={'engine': 'docker'} here)"
            )
        argv = (self.engine, "image", "inspect", "--format", "{{.Id}}", objective.image)
        code, out = await self._ask_engine(*argv)
        if code != 0:
            raise RunnerError(
                f"image {objective.image!r} is not in the engine: build or pull it first"
                f" ({out.strip().splitlines()[-1] if out.strip() else 'no details'})"
            )
        self._images_ok.add(objective.image)

    async def _ask_engine(self, *argv: str) -> tuple[int, str]:
        """A check's engine command, within ``command_timeout``.

        Raises:
            RunnerError: The engine did not answer in time (the command was killed).
        """
        try:
            return await _capture(*argv, timeout=self.command_timeout)
        except CommandTimeout as exc:
            raise _EngineSilent(
                f"the Docker engine at {_engine_address()} did not answer within"
                f" {exc.timeout:g} s (`{exc.command}` was killed): is it hung or overloaded?"
            ) from None

    async def run(self, job: Job) -> Any:
        """Run the trial's container; return what it wrote to ``result.json``.

        Raises:
            ObjectiveError: Non-zero exit, or a missing or malformed result file.
            TrialTimeoutError: The container ran longer than its timeout.
        """
        objective = job.objective
        if not isinstance(objective, ContainerObjective):
            raise RunnerError(
                f"{self!r} runs container objectives only, got {type(objective).__name__}"
            )
        assert job.workdir is not None
        await self._check_can_run(objective)
        files = TrialFiles(job.workdir)
        await anyio.to_thread.run_sync(_prepare, files, job.parameters)
        name = container_name(job, uuid.uuid4().hex[:8])
        job.info.update(container=name, job_dir=str(job.workdir))
        await job.record_info()  # a restarted driver finds the container by this name
        argv = docker_run_argv(self.engine, objective, job, name, self.user, init=self.init)

        async def stop(process: asyncio.subprocess.Process) -> None:
            await self._stop_container(name, process)

        async with self._followed(job, name, files.workdir):
            code = await run_logged(argv, files, None, objective.timeout, stop=stop)
        self._remove_later(name)
        if code == DOCKER_RUN_FAILED:
            tail = await anyio.to_thread.run_sync(files.stderr_tail)
            raise InfrastructureError(f"docker run could not start {name} (exit 125): {tail}")
        return await anyio.to_thread.run_sync(files.read_result, code)

    async def _check_can_run(self, objective: ContainerObjective) -> None:
        """The engine and image checks, for trials of a batch that did not start the runner.

        Raises:
            InfrastructureError: The engine does not answer (retried), or the
                image is missing (not retried: it will not appear by itself).
        """
        try:
            await self.start()
        except RunnerError as exc:
            raise InfrastructureError(str(exc)) from None
        try:
            await self.check_objective(objective)
        except RunnerError as exc:
            silent = isinstance(exc, _EngineSilent)
            raise InfrastructureError(str(exc), retryable=silent) from None

    async def reattach(self, job: Job) -> Awaitable[Any] | None:
        """Wait for a container a previous driver started, then read its result.

        A trial whose container was never started is started now.
        """
        name = job.info.get("container")
        if not name or job.workdir is None:
            return self.run(job)
        return self._rejoin(job, str(name))

    async def _rejoin(self, job: Job, name: str) -> Any:
        """Wait for the container ``name``; containers are removed only after their
        result was read, so one that does not exist never ran or was fully read.

        Its progress file is read again from the start: the lines the dead driver
        had not recorded count now (the core skips the steps Ax already has).
        """
        files = TrialFiles(Path(job.info.get("job_dir") or str(job.workdir)))
        exists = await self._exists(name)
        if not exists and not await anyio.to_thread.run_sync(files.result.exists):
            logger.info(
                "trial %d: container %s was never created (the driver died first); starting it",
                job.trial_index,
                name,
            )
            return await self.run(job)
        async with self._followed(job, name, files.workdir):
            code = await self._wait(name, files) if exists else 0
        return await anyio.to_thread.run_sync(files.read_result, code)

    async def _exists(self, name: str) -> bool:
        """Whether the engine has the container ``name`` (running or ended).

        Raises:
            InfrastructureError: The engine did not answer in time; not retried:
                a fresh run beside a container that may still run would run the
                trial twice.
        """
        inspect = (self.engine, "container", "inspect", "--format", "{{.Id}}", name)
        try:
            found, _ = await _capture(*inspect, timeout=self.command_timeout)
        except CommandTimeout as exc:
            raise InfrastructureError(
                f"cannot tell whether container {name} still runs: {exc}", retryable=False
            ) from None
        return found == 0

    async def _wait(self, name: str, files: TrialFiles) -> int:
        """The exit code of the re-attached container ``name``, once it ends.

        Raises:
            InfrastructureError: ``docker wait`` failed.
        """
        try:
            # No timeout: the container runs as long as its trial does. A
            # cancellation kills this client, then stops the container (bounded).
            code, out = await _capture(self.engine, "wait", name, timeout=None)
            await self._save_logs(name, files)
        except asyncio.CancelledError:
            await shielded(self._stop_by_name(name))
            raise
        self._remove_later(name)
        if code != 0 or not out.strip().isdigit():
            raise InfrastructureError(f"docker wait {name} failed: {out.strip()}")
        return int(out.strip())

    @contextlib.asynccontextmanager
    async def _followed(self, job: Job, name: str, folder: Path) -> AsyncIterator[None]:
        """While the body waits for the container ``name``: its progress lines are
        read, and a stop request is SIGTERM to it. The last read is after the body
        ends (even cancelled), so the lines written just before the end count."""
        unwatch = self._progress_files.watch(job, folder / PROGRESS_FILE_NAME)
        unstop = job.channel.on_stop(lambda reason: self._terminate_soon(name))
        try:
            yield
        finally:
            unstop()
            self._terminated_at.pop(name, None)
            await shielded(unwatch())

    def _terminate_soon(self, name: str) -> None:
        """Send the container SIGTERM, without waiting (called on the loop by a stop)."""
        self._terminated_at[name] = asyncio.get_running_loop().time()
        self._in_background(self._terminate(name))

    async def _terminate(self, name: str) -> None:
        """``docker kill --signal TERM``, within ``command_timeout``. A container that
        is not told ends after the grace, through the cancellation's ``docker stop``."""
        argv = (self.engine, "kill", "--signal", "TERM", name)
        try:
            code, out = await _capture(*argv, timeout=self.command_timeout)
        except CommandTimeout as exc:
            logger.warning("container %s was not sent SIGTERM to stop early: %s", name, exc)
            return
        if code != 0 and not _not_running(out):
            logger.warning("container %s was not sent SIGTERM to stop early: %s", name, out.strip())

    async def _save_logs(self, name: str, files: TrialFiles) -> None:
        """The container's whole output, which the dead driver no longer streamed.

        A hung engine leaves the logs incomplete (logged), not the trial waiting:
        its result is in ``result.json``.
        """
        out = await anyio.to_thread.run_sync(files.stdout.open, "wb")
        err = await anyio.to_thread.run_sync(files.stderr.open, "wb")
        with out, err:
            argv = [self.engine, "logs", name]
            try:
                await run_here(argv, timeout=self.command_timeout, stdout=out, stderr=err)
            except (CommandTimeout, FileNotFoundError) as exc:
                logger.warning("container %s: its saved logs may be incomplete: %s", name, exc)

    def _remove_later(self, name: str) -> None:
        """``docker rm`` an ended container without holding up its trial's slot."""
        self._in_background(self._remove(name))

    def _in_background(self, command: Coroutine[Any, Any, None]) -> None:
        """Run an engine command (bounded) that no trial waits for; aclose does."""
        future = asyncio.ensure_future(command)
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    async def _remove(self, name: str) -> None:
        try:
            await _capture(self.engine, "rm", "--force", name, timeout=self.command_timeout)
        except CommandTimeout as exc:
            logger.warning("ended container %s was not removed: %s", name, exc)

    async def _stop_container(self, name: str, process: asyncio.subprocess.Process) -> None:
        """Stop the trial's container, then see its ``docker run`` client exit.

        The client exits once its container has. If the engine did not stop the
        container in time, or the client lingers anyway, the client is killed
        (run_logged started it in its own process group): the trial's slot is
        never held by a hung engine.
        """
        if await self._stop_by_name(name) and await _exits_within(process, self.command_timeout):
            return
        if process.returncode is None:  # once reaped, its pid may be another process's
            await kill_group(process, [self.engine, "run", "--name", name, "..."])

    async def _stop_by_name(self, name: str) -> bool:
        """``docker stop``, then ``docker rm --force`` (which kills what stop did not).

        Both together get ``stop_grace_seconds`` + ``command_timeout``: the grace
        the container is owed, and the engine's answer on top.

        Returns:
            False if the engine did not finish in time, or could not remove the
            container (logged): it may still run, and nothing waits for it longer.
        """
        grace = self._stop_grace(name)
        bound = self.stop_grace_seconds + self.command_timeout
        try:
            async with asyncio.timeout(bound):
                # The deadline cancels the command in flight, which kills and reaps it.
                await _capture(self.engine, "stop", "--time", grace, name, timeout=None)
                code, out = await _capture(self.engine, "rm", "--force", name, timeout=None)
        except TimeoutError:
            logger.warning(
                "container %s may still run: the Docker engine at %s did not stop and"
                " remove it within %g s (stop_grace_seconds %s + command_timeout %g);"
                " check with `docker ps`, remove it with `docker rm --force %s`",
                name,
                _engine_address(),
                bound,
                f"{self.stop_grace_seconds:g}",
                self.command_timeout,
                name,
            )
            return False
        if code != 0 and not _already_gone(out):
            logger.warning(
                "container %s may still run: `docker rm --force` failed: %s", name, out.strip()
            )
            return False
        return True

    def _stop_grace(self, name: str) -> str:
        """``docker stop``'s grace for ``name``: ``stop_grace_seconds``, or what is left
        of it since an early stop sent SIGTERM (that much has been waited for
        already), in the whole seconds ``docker stop --time`` takes."""
        sent = self._terminated_at.get(name)
        if sent is None:
            return f"{self.stop_grace_seconds:g}"
        left = self.stop_grace_seconds - (asyncio.get_running_loop().time() - sent)
        return str(max(0, math.ceil(left)))

    async def aclose(self) -> None:
        """Wait for the engine commands under way (each within ``command_timeout``):
        ended containers' removals, early stops' signals."""
        if self._background:
            await shielded(asyncio.gather(*self._background))
        await self._progress_files.aclose()


async def _capture(*argv: str, timeout: float | None) -> tuple[int, str]:
    """Run an engine command; its exit code and combined output.

    Args:
        argv: The command.
        timeout: Seconds it may take; None only for ``docker wait``, which lasts
            as long as its container.

    Raises:
        CommandTimeout: It ran longer than ``timeout`` (it was killed and reaped).
    """
    try:
        code, out, _ = await run_here(argv, timeout=timeout, stderr=asyncio.subprocess.STDOUT)
    except FileNotFoundError:
        return 127, f"{argv[0]!r} is not installed or not on PATH"
    return code, out.decode(errors="replace")


async def _exits_within(process: asyncio.subprocess.Process, seconds: float) -> bool:
    """Whether ``process`` exits within ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            await process.wait()
    except TimeoutError:
        return False
    return True


def _prepare(files: TrialFiles, parameters: dict[str, Any]) -> None:
    """The trial's folder for a fresh container: an earlier run's progress lines
    must not pass for this one's (blocking: call in a thread)."""
    files.prepare(parameters)
    (files.workdir / PROGRESS_FILE_NAME).unlink(missing_ok=True)


def _not_running(kill_output: str) -> bool:
    """Whether a failed ``docker kill`` says the container has ended (or is gone)."""
    said = kill_output.lower()
    return "is not running" in said or "no such container" in said


def _already_gone(rm_output: str) -> bool:
    """Whether a failed ``docker rm`` says the container is gone or going (``--rm``)."""
    said = rm_output.lower()
    return "no such container" in said or "already in progress" in said


def _engine_address() -> str:
    """Where the engine is, for messages."""
    return os.environ.get("DOCKER_HOST", "the default socket")
