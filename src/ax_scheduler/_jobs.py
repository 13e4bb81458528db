"""What a trial runs, independent of where it runs."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class FunctionObjective:
    """A Python callable ``fn(parameterization) -> result``.

    Attributes:
        fn: The objective. Must be picklable by cloudpickle to run in a process
            pool (functions defined in ``__main__``, closures and lambdas are).
    """

    fn: Callable[[dict[str, Any]], Any]

    @property
    def is_async(self) -> bool:
        """True for ``async def`` objectives, which run on the event loop itself."""
        return inspect.iscoroutinefunction(self.fn)

    @property
    def name(self) -> str:
        return getattr(self.fn, "__qualname__", repr(self.fn))


#: Placeholders a script's ``args`` may contain, replaced per trial.
SCRIPT_PLACEHOLDERS = ("params_file", "output_file", "trial_index", "workdir")


@dataclass(frozen=True)
class ScriptObjective:
    """An executable run once per trial as a subprocess (argv list, never a shell).

    The script reads its parameters from ``params.json`` and writes ``result.json``
    (metric -> value or ``[mean, sem]``) in its trial directory; both paths are in
    its environment (``JOB_PARAMS_FILE``, ``JOB_OUTPUT_FILE``) and can be passed
    as ``{params_file}`` / ``{output_file}`` in ``args``.

    Attributes:
        script: Absolute path of the script.
        interpreter: The program that runs it, or None to run the script itself
            (it must then be executable). For runners that run scripts on this
            machine, the absolute path found on PATH when it was set; for the
            others as given (a name or a path where the jobs run).
        args: Extra arguments; placeholders are replaced per trial.
        env: Extra environment variables.
        timeout: Seconds a trial's script may run, or None.
    """

    script: Path
    interpreter: str | None = None
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    timeout: float | None = None

    is_async = False

    @property
    def name(self) -> str:
        return str(self.script)

    def argv(self, placeholders: dict[str, str]) -> list[str]:
        """The command line of one trial, with placeholders replaced."""
        head = [self.interpreter] if self.interpreter else []
        return [*head, str(self.script), *(arg.format(**placeholders) for arg in self.args)]


#: Where a container sees its trial directory.
CONTAINER_WORKDIR = "/job"


@dataclass(frozen=True)
class ContainerObjective:
    """A container image run once per trial, exchanging files like a script.

    The trial directory is mounted at ``/job``; ``{params_file}``,
    ``{output_file}``, ``{trial_index}`` and ``{workdir}`` in the command are the
    paths as seen inside the container. The command is split like a shell would
    (``shlex``) when the objective is set, and placeholders are replaced per
    argument afterwards, so values never pass through a shell.

    Attributes:
        image: The image, e.g. ``"sim:latest"``.
        engine: ``"docker"``, ``"apptainer"`` or ``"singularity"``.
        command: The argv template, or () for the image's default command.
        volumes: ``(host path, container path[:ro])`` mounts.
        env: Extra environment variables.
        cpus, memory, gpus, network: Resource limits passed to the engine.
        timeout: Seconds a trial's container may run, or None.
    """

    image: str
    command: tuple[str, ...] = ()
    engine: str = "docker"
    volumes: tuple[tuple[str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cpus: float | None = None
    memory: str | None = None
    gpus: str | None = None
    network: str | None = None
    timeout: float | None = None

    is_async = False

    @property
    def name(self) -> str:
        return self.image

    def placeholders(self, trial_index: int) -> dict[str, str]:
        """Placeholder values as seen from inside the container."""
        return {
            "params_file": f"{CONTAINER_WORKDIR}/params.json",
            "output_file": f"{CONTAINER_WORKDIR}/result.json",
            "trial_index": str(trial_index),
            "workdir": CONTAINER_WORKDIR,
        }

    def argv(self, trial_index: int) -> list[str]:
        values = self.placeholders(trial_index)
        return [arg.format(**values) for arg in self.command]


Objective = FunctionObjective | ScriptObjective | ContainerObjective


@dataclass(eq=False)
class TrialChannel:
    """The line between a running trial and the scheduler: reports in, a stop out.

    Runners that can carry reports call :meth:`deliver` (on the event loop) for
    each one, and register with :meth:`on_stop` how to tell their job to stop
    (a message to its worker, SIGTERM); the scheduler sets ``on_report`` and
    calls :meth:`request_stop` when the early-stopping strategy decides.

    Attributes:
        on_report: Set by the scheduler: takes ``(step, metrics)``.
        stop_reason: Why the trial is being stopped, once it is.
    """

    on_report: Callable[[float, dict[str, Any]], None] | None = None
    stop_reason: str | None = None
    _stoppers: list[Callable[[str], None]] = field(default_factory=list)

    def deliver(self, step: float, metrics: dict[str, Any]) -> None:
        """Hand one report to the scheduler (on the event loop)."""
        if self.on_report is not None:
            self.on_report(step, metrics)

    def on_stop(self, stopper: Callable[[str], None]) -> Callable[[], None]:
        """Call ``stopper(reason)`` (on the loop, not blocking) when the trial is to
        stop; at once if it already is. Returns what unregisters it."""
        self._stoppers.append(stopper)
        if self.stop_reason is not None:
            stopper(self.stop_reason)

        def unregister() -> None:
            with contextlib.suppress(ValueError):
                self._stoppers.remove(stopper)

        return unregister

    def request_stop(self, reason: str) -> None:
        """Tell the trial's job to stop (once): every registered stopper is called."""
        if self.stop_reason is not None:
            return
        self.stop_reason = reason
        for stopper in list(self._stoppers):
            stopper(reason)


@dataclass(frozen=True)
class Job:
    """One trial's work, handed to a runner.

    Attributes:
        trial_index: The Ax trial this job evaluates.
        parameters: The trial's parameterization.
        objective: What to run.
        name: A readable, unique name (``<experiment>-trial-<index>``) for
            process titles, queue entries and container names.
        info: Runner-specific facts to record with the trial (job id, host ...);
            a runner may fill it in while the job runs.
        workdir: The trial's own directory (``job_output_dir/<name>``), for
            objectives that exchange files; created by the runner.
        on_info: Set by the scheduler: records ``info`` with the trial and in the
            checkpoint. Runners call :meth:`record_info` once a job's handle is
            known, and before starting anything that would outlive a crash.
        channel: The trial's reports (``ax_scheduler.report``, progress lines)
            and the scheduler's request to stop it early.
    """

    trial_index: int
    parameters: dict[str, Any]
    objective: Objective
    name: str
    info: dict[str, Any] = field(default_factory=dict)
    workdir: Path | None = None
    on_info: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)
    channel: TrialChannel = field(default_factory=TrialChannel, repr=False, compare=False)

    async def record_info(self) -> None:
        """Persist ``info`` (job id, host, container) before the run goes on.

        With a checkpoint configured this returns once the checkpoint on disk
        has it, so a driver killed a moment later can still find the job.
        """
        if self.on_info is not None:
            await self.on_info()
