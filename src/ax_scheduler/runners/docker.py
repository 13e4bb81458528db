"""DockerRunner: each trial is a ``docker run`` of a container objective.

``docker run`` is an asyncio subprocess whose exit is the trial's end (no polling).
The engine is checked once at start, the image once per run; stopping a trial is
``docker stop -t <grace>`` then ``docker kill``, so no container outlives its trial.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import anyio

from .._aio import shielded
from .._container import container_name, docker_run_argv
from .._exceptions import InfrastructureError, RunnerError
from .._jobs import ContainerObjective, Job, Objective
from .._script import TrialFiles, run_logged
from ._base import Runner

logger = logging.getLogger("ax_scheduler")

#: ``docker run``'s exit code when the engine could not start the container.
DOCKER_RUN_FAILED = 125


class DockerRunner(Runner):
    """Runs container objectives in a local Docker engine, ``max_parallel`` at a time.

    Args:
        max_parallel: How many trial containers run at once.
        engine: The engine's client command (``docker``; honours ``DOCKER_HOST``).
        stop_grace_seconds: ``docker stop -t`` grace before ``docker kill``.
        user: ``uid:gid`` the container runs as; default the driver's own, so
            result files in the trial directory are not root-owned.

    Raises:
        ValueError: ``max_parallel`` is not a positive int.
    """

    kind = "docker"
    objective_types = (ContainerObjective,)

    def __init__(
        self,
        max_parallel: int = 4,
        engine: str = "docker",
        stop_grace_seconds: float = 10.0,
        user: str | None = None,
    ) -> None:
        if isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1:
            raise ValueError(f"max_parallel must be a positive int, got {max_parallel!r}")
        self.max_parallel = max_parallel
        self.engine = engine
        self.stop_grace_seconds = stop_grace_seconds
        self.user = user or f"{os.getuid()}:{os.getgid()}"
        self._engine_ok = False
        self._images_ok: set[str] = set()
        self._removals: set[asyncio.Future[tuple[int, str]]] = set()

    @property
    def capacity(self) -> int:
        """How many containers run at once."""
        return self.max_parallel

    def __repr__(self) -> str:
        return f"DockerRunner(max_parallel={self.max_parallel}, engine={self.engine!r})"

    async def start(self) -> None:
        """Check once that the engine answers.

        Raises:
            RunnerError: The engine is not running or not reachable.
        """
        if self._engine_ok:
            return
        code, out = await _capture(self.engine, "version", "--format", "{{.Server.Version}}")
        if code != 0:
            where = os.environ.get("DOCKER_HOST", "the default socket")
            raise RunnerError(f"the Docker engine at {where} does not answer: {out.strip()}")
        self._engine_ok = True

    async def check_objective(self, objective: Objective) -> None:
        """Check once per image that the engine has it (no registry is assumed).

        Raises:
            RunnerError: The image is not in the engine.
        """
        if not isinstance(objective, ContainerObjective) or objective.image in self._images_ok:
            return
        if objective.engine != "docker":
            raise RunnerError(
                f"{self!r} runs docker containers; engine {objective.engine!r} needs a"
                " cluster runner (container_options={'engine': 'docker'} here)"
            )
        code, out = await _capture(
            self.engine, "image", "inspect", "--format", "{{.Id}}", objective.image
        )
        if code != 0:
            raise RunnerError(
                f"image {objective.image!r} is not in the engine: build or pull it first"
                f" ({out.strip().splitlines()[-1] if out.strip() else 'no details'})"
            )
        self._images_ok.add(objective.image)

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
        await anyio.to_thread.run_sync(files.prepare, job.parameters)
        name = container_name(job, uuid.uuid4().hex[:8])
        job.info.update(container=name, job_dir=str(job.workdir))
        await job.record_info()  # a restarted driver finds the container by this name
        argv = docker_run_argv(self.engine, objective, job, name, self.user)

        async def stop(process: asyncio.subprocess.Process) -> None:
            await self._stop_container(name, process)

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
            raise InfrastructureError(str(exc), retryable=False) from None

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
        result was read, so one that does not exist never ran or was fully read."""
        files = TrialFiles(Path(job.info.get("job_dir") or str(job.workdir)))
        found, _ = await _capture(self.engine, "container", "inspect", "--format", "{{.Id}}", name)
        if found != 0:
            if await anyio.to_thread.run_sync(files.result.exists):
                return await anyio.to_thread.run_sync(files.read_result, 0)
            logger.info(
                "trial %d: container %s was never created (the driver died first); starting it",
                job.trial_index,
                name,
            )
            return await self.run(job)
        try:
            code, out = await _capture(self.engine, "wait", name)
            await self._save_logs(name, files)
        except asyncio.CancelledError:
            await shielded(self._stop_by_name(name))
            raise
        self._remove_later(name)
        if code != 0 or not out.strip().isdigit():
            raise InfrastructureError(f"docker wait {name} failed: {out.strip()}")
        return await anyio.to_thread.run_sync(files.read_result, int(out.strip()))

    async def _save_logs(self, name: str, files: TrialFiles) -> None:
        """The container's whole output, which the dead driver no longer streamed."""
        out = await anyio.to_thread.run_sync(files.stdout.open, "wb")
        err = await anyio.to_thread.run_sync(files.stderr.open, "wb")
        with out, err:
            process = await asyncio.create_subprocess_exec(
                self.engine, "logs", name, stdout=out, stderr=err
            )
            await process.wait()

    def _remove_later(self, name: str) -> None:
        """``docker rm`` an ended container without holding up its trial's slot."""
        removal = asyncio.ensure_future(_capture(self.engine, "rm", "--force", name))
        self._removals.add(removal)
        removal.add_done_callback(self._removals.discard)

    async def _stop_container(self, name: str, process: asyncio.subprocess.Process) -> None:
        await self._stop_by_name(name)
        await process.wait()

    async def _stop_by_name(self, name: str) -> None:
        grace = f"{self.stop_grace_seconds:g}"
        await _capture(self.engine, "stop", "--time", grace, name)
        await _capture(self.engine, "rm", "--force", name)  # kills it if stop did not

    async def aclose(self) -> None:
        """Wait until ended containers are removed."""
        if self._removals:
            await shielded(asyncio.gather(*self._removals))


async def _capture(*argv: str) -> tuple[int, str]:
    """Run a short engine command; its exit code and combined output."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
    except FileNotFoundError:
        return 127, f"{argv[0]!r} is not installed or not on PATH"
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode(errors="replace")
