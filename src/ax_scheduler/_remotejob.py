"""Carrying a trial to another machine and back: what the SSH and Slurm runners share.

A remote runner works in a *session directory* ``<job_dir>/<session>`` on each
machine it uses (:class:`RemoteSession`): the worker ``axs_worker.py``
(:mod:`ax_scheduler._jobworker`) and the objectives' uploads go there, each
upload once per machine. A trial travels as a *manifest* (:func:`manifest`): JSON
the worker reads, one entry per task, so parameter values never reach a command
line. A finished trial is judged by the files it left (:class:`TrialFolder`):
``result.json`` is the truth, else ``error.json``, else the tail of ``stderr.log``.

What is not shared stays with its runner: the SSH host pool and its workers'
processes (:mod:`ax_scheduler.runners.ssh`), Slurm's queue, ``sbatch`` and
``scancel`` (:mod:`ax_scheduler.runners.slurm`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import anyio
from pydantic import BaseModel

from . import _jobworker
from ._config import SchedulerConfig
from ._container import apptainer_exec_argv
from ._exceptions import ObjectiveError, RunnerError, TrialError
from ._jobenv import trial_environment
from ._jobs import ContainerObjective, FunctionObjective, Job, Objective, ScriptObjective
from ._remote import Transport
from ._uploads import Payloads
from ._workerfiles import STDERR_TAIL_BYTES, removable_folder, reported_error, stderr_summary

#: The worker's name in a session directory.
WORKER_NAME = "axs_worker.py"

#: Creates ``$1/$2`` and prints its absolute path: values are arguments of a fixed
#: script, never parsed as shell code.
_SESSION_SCRIPT = 'mkdir -p -- "$1/$2" && cd -- "$1/$2" && pwd -P'

Uploadable = FunctionObjective | ScriptObjective
Config = TypeVar("Config", bound=BaseModel)


def session_name() -> str:
    """A new session's directory name: ``YYYYmmdd-HHMMSS-<6 hex digits>``."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


class RemoteSession:
    """One runner's session directory on one machine, and what it uploaded there.

    Args:
        transport: How to reach the machine.
        job_dir: The user's ``job_dir`` there (relative: from the remote home).
        name: The session's directory name (:func:`session_name`), the same on
            every machine of a runner.
        payloads: The objectives' files, built once per runner and shared by its
            sessions (an objective is pickled once, whatever the number of hosts).
    """

    def __init__(self, transport: Transport, job_dir: str, name: str, payloads: Payloads) -> None:
        self.transport = transport
        self.job_dir = job_dir
        self.name = name
        self.payloads = payloads
        #: The session directory's absolute path, known after :meth:`open`.
        self.directory = ""
        self._uploaded: set[str] = set()  # payload names in the directory

    @property
    def root(self) -> str:
        """The job directory's absolute path: earlier drivers' sessions are below it too."""
        return self.directory.rsplit("/", 1)[0]

    @property
    def worker(self) -> str:
        """The worker's path on the machine."""
        return f"{self.directory}/{WORKER_NAME}"

    async def open(self) -> None:
        """Create the session directory and upload the worker into it.

        Raises:
            RunnerError: The machine cannot be reached, or ``job_dir`` cannot be
                created there (the message names it and why).
        """
        self._uploaded = set()
        argv = ["sh", "-c", _SESSION_SCRIPT, "sh", self.job_dir, self.name]
        made = await self.transport.run(argv)
        if not made.ok:
            raise RunnerError(
                f"cannot create job_dir {self.job_dir!r} on {self.transport.description}:"
                f" {made.describe()}"
            )
        self.directory = made.stdout.strip().splitlines()[-1]
        worker = await anyio.Path(_jobworker.__file__).read_bytes()
        await self.transport.write_file(self.worker, worker)

    async def upload(self, objective: Uploadable) -> str:
        """The path of the objective's pickle or script on the machine, uploaded on first use."""
        payload = await self.payloads.of(objective)
        path = f"{self.directory}/{payload.name}"
        if payload.name not in self._uploaded:
            await self.transport.write_file(path, payload.data, mode=payload.mode)
            self._uploaded.add(payload.name)
        return path


async def manifest(
    objective: Objective,
    tasks: Sequence[tuple[Job, str]],
    place: Callable[[Uploadable], Awaitable[str]],
    *,
    grace: float | None = None,
) -> dict[str, Any]:
    """What the worker needs to run ``tasks`` (an array's, or one), paths as where they run.

    Args:
        objective: The tasks' one objective.
        tasks: Each task's job and its trial directory there.
        place: Puts a function's pickle or a script where the tasks run and
            returns its path there.
        grace: Seconds the worker gives a stopped script before SIGKILL (None:
            the worker's default).
    """
    entries: list[dict[str, Any]] = [
        {"trial_index": job.trial_index, "workdir": workdir, "parameters": job.parameters}
        for job, workdir in tasks
    ]
    if isinstance(objective, FunctionObjective):
        return {"kind": "function", "objective": await place(objective), "tasks": entries}
    script = await place(objective) if isinstance(objective, ScriptObjective) else ""
    for entry, (job, workdir) in zip(entries, tasks, strict=True):
        entry.update(_command(objective, script, workdir, job.trial_index))
        if grace is not None:
            entry["grace"] = grace
    return {"kind": "command", "tasks": entries}


def _command(objective: Objective, script: str, workdir: str, trial_index: int) -> dict[str, Any]:
    """A command task: a script's argv and environment, or a container's ``apptainer exec``."""
    if isinstance(objective, ContainerObjective):
        argv = apptainer_exec_argv(objective, workdir, trial_index)
        return {"argv": argv, "env": {}, "timeout": objective.timeout}
    assert isinstance(objective, ScriptObjective)
    return script_command(objective, script, workdir, trial_index)


def script_command(
    objective: ScriptObjective, script: str, workdir: str, trial_index: int
) -> dict[str, Any]:
    """A script trial's argv, ``JOB_*`` environment and timeout, with its paths there."""
    paths = {
        "params_file": f"{workdir}/params.json",
        "output_file": f"{workdir}/result.json",
        "trial_index": str(trial_index),
        "workdir": workdir,
    }
    head = [objective.interpreter] if objective.interpreter else []
    argv = [*head, script, *(arg.format(**paths) for arg in objective.args)]
    env = trial_environment(objective.env, paths)
    return {"argv": argv, "env": env, "timeout": objective.timeout}


class ReadFile(Protocol):
    """Reads a file on the machine: a transport's ``read_file``, or one that says so
    when it finds the host down."""

    def __call__(self, path: str, *, tail: int | None = None) -> Awaitable[bytes | None]: ...


class TrialFolder:
    """A finished trial's directory, and the outcome its files tell.

    Args:
        workdir: The trial directory on the machine.
        read_file: How to read a file there.
    """

    def __init__(self, workdir: str, read_file: ReadFile) -> None:
        self.workdir = workdir
        self._read_file = read_file

    async def result(self, ended: str, kind: type[TrialError] = ObjectiveError) -> Any:
        """What ``result.json`` holds: the worker wrote it last, so it is the truth.

        Args:
            ended: How the job ended, for the failure's reason
                (``"Slurm job 12_3 ended COMPLETED (exit code 0:0)"``).
            kind: The failure to raise if there is no result and no ``error.json``.

        Raises:
            TrialError: There is no ``result.json``, or it is not JSON: the
                failure :meth:`failure` finds.
        """
        data = await self._read("result.json")
        if data is None:
            raise await self.failure(f"{ended} and wrote no result.json", kind)
        try:
            return json.loads(data)
        except json.JSONDecodeError as exc:
            problem = f"{ended} but result.json is not JSON ({exc})"
            raise await self.failure(problem, kind) from None

    async def failure(self, ended: str, kind: type[TrialError] = ObjectiveError) -> TrialError:
        """The trial's failure: ``error.json``'s (the objective's error, a script's
        timeout), else ``kind`` with ``ended`` and the last line of ``stderr.log``."""
        reported = reported_error(await self._read("error.json"))
        if reported is not None:
            return reported
        last, text = stderr_summary(await self._read("stderr.log", tail=STDERR_TAIL_BYTES))
        return kind(f"{ended}; stderr ends: {last}", details=text)

    async def _read(self, name: str, *, tail: int | None = None) -> bytes | None:
        return await self._read_file(f"{self.workdir}/{name}", tail=tail)


def trial_folder(job: Job, root: str) -> str | None:
    """``job``'s trial folder, to delete: checked to be below the job directory ``root``.

    Returns:
        Its path, or None if the job has none (it never got one).

    Raises:
        RunnerError: It is not below ``root``: a corrupt handle never makes a
            runner delete something else.
    """
    path = job.info.get("job_dir")
    return removable_folder(str(path), root) if path else None


def with_scheduler_retries(config: Config, scheduler: SchedulerConfig) -> Config:
    """A remote runner's ``config`` with the scheduler's ``max_retries`` as its
    ``max_resubmits``, unless the user set that in the runner's own config."""
    if "max_resubmits" in config.model_fields_set:
        return config
    return config.model_copy(update={"max_resubmits": scheduler.max_retries})
