"""Slurm's side of the SlurmRunner, as pure functions: no I/O, easy to test exactly.

* :data:`STATE_OUTCOMES`: what each terminal Slurm state means for a trial;
* :func:`parse_sacct`: ``sacct -P`` lines to task states, array ranges included;
* :func:`sbatch_argv` and :func:`job_script`: the submission, with every value
  quoted (``shlex``) so nothing a user or Ax provides is interpreted by a shell;
* :class:`Backoff`: the polling interval (1, 2, 4 ... s, reset on any change).
"""

from __future__ import annotations

import enum
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._jobenv import trial_environment
from ._jobs import ScriptObjective


class Outcome(enum.Enum):
    """What a terminal Slurm state means for the trial."""

    RESULT = "read the result file"
    FAILED = "the trial failed"
    TIMEOUT = "the trial hit its time limit"
    CANCELLED = "the job was cancelled"
    INFRASTRUCTURE = "the cluster failed the job: resubmit"


#: Terminal states and their outcome. Any other state (PENDING, RUNNING,
#: COMPLETING, REQUEUED, SUSPENDED, ...) means "not finished yet".
STATE_OUTCOMES: Mapping[str, Outcome] = {
    "COMPLETED": Outcome.RESULT,
    "FAILED": Outcome.FAILED,
    "OUT_OF_MEMORY": Outcome.FAILED,
    "DEADLINE": Outcome.FAILED,
    "TIMEOUT": Outcome.TIMEOUT,
    "CANCELLED": Outcome.CANCELLED,
    "REVOKED": Outcome.CANCELLED,
    "PREEMPTED": Outcome.INFRASTRUCTURE,
    "NODE_FAIL": Outcome.INFRASTRUCTURE,
    "BOOT_FAIL": Outcome.INFRASTRUCTURE,
}

#: The sacct columns the runner asks for, in order.
SACCT_FORMAT = "JobID,State,ExitCode"


@dataclass(frozen=True)
class TaskState:
    """One line of sacct about one array task (or a range of pending ones).

    Attributes:
        job_id: The array's job id (``"123"``).
        tasks: The task indices the line covers (one, or a pending range).
        state: First word of the state (``"CANCELLED by 0"`` -> ``"CANCELLED"``).
        exit_code: ``"code:signal"`` as sacct prints it.
    """

    job_id: str
    tasks: tuple[int, ...]
    state: str
    exit_code: str

    @property
    def outcome(self) -> Outcome | None:
        return STATE_OUTCOMES.get(self.state)


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
        if len(fields) < 3:
            continue
        match = _JOB_ID.match(fields[0])
        if match is None:
            continue
        if match["task"] is not None:
            tasks: tuple[int, ...] = (int(match["task"]),)
        elif match["range"] is not None:
            tasks = tuple(expand_task_range(match["range"]))
        else:
            tasks = ()
        state = fields[1].split()[0] if fields[1].strip() else "UNKNOWN"
        states.append(TaskState(match["job"], tasks, state, fields[2]))
    return states


def expand_task_range(text: str) -> list[int]:
    """``"0-4,7,9-10%2"`` -> ``[0, 1, 2, 3, 4, 7, 9, 10]`` (the ``%limit`` is dropped)."""
    tasks: list[int] = []
    for part in text.split("%")[0].split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        first, last = int(low), int(high or low)
        tasks.extend(range(first, last + 1))
    return tasks


def chunks(count: int, size: int) -> list[range]:
    """Split ``count`` tasks into arrays of at most ``size`` (the cluster's MaxArraySize)."""
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def parse_max_array_size(scontrol_config: str) -> int | None:
    """``MaxArraySize`` from ``scontrol show config`` output (None if absent)."""
    match = re.search(r"^MaxArraySize\s*=\s*(\d+)", scontrol_config, re.MULTILINE)
    return int(match[1]) if match else None


def sbatch_option_args(options: Mapping[str, str | int | float | bool]) -> list[str]:
    """``{"account": "x", "exclusive": True}`` -> ``["--account=x", "--exclusive"]``."""
    args = []
    for key, value in options.items():
        if value is True:
            args.append(f"--{key}")
        elif value is not False:
            args.append(f"--{key}={value}")
    return args


def sbatch_argv(
    *,
    script: str,
    job_name: str,
    tasks: int,
    array_parallelism: int | None,
    log_dir: str,
    resources: Sequence[str],
) -> list[str]:
    """The argv of one array submission (``sbatch --parsable ...``).

    Every option is on the command line rather than in ``#SBATCH`` lines, where
    quoting rules are sbatch's own; the argv is shell-quoted as a whole.
    """
    array = f"0-{tasks - 1}" + (f"%{array_parallelism}" if array_parallelism else "")
    return [
        "sbatch",
        "--parsable",
        f"--job-name={job_name}",
        f"--array={array}",
        f"--output={log_dir}/%a/stdout.log",
        f"--error={log_dir}/%a/stderr.log",
        *resources,
        script,
    ]


def job_script(
    *,
    python: str,
    worker: str,
    manifest: str,
    modules: Iterable[str],
    setup: Iterable[str],
    header: str,
) -> str:
    """The bash script every task of an array runs.

    ``setup`` lines are the user's own shell (activating an environment); every
    other value is quoted. The worker picks its task from ``$SLURM_ARRAY_TASK_ID``.
    """
    lines = ["#!/bin/bash", *(f"# {line}" for line in header.splitlines())]
    lines += job_prelude(modules, setup)
    lines.append(
        f"exec {shlex.quote(python)} {shlex.quote(worker)} {shlex.quote(manifest)}"
        ' "$SLURM_ARRAY_TASK_ID"'
    )
    return "\n".join(lines) + "\n"


def job_prelude(modules: Iterable[str], setup: Iterable[str]) -> list[str]:
    """The job script's lines that make its environment: ``module load``, then setup."""
    return [*(f"module load {shlex.quote(name)}" for name in modules), *setup]


#: Prints where the program ``$1`` is; fails (with a reason on stderr) if it is not found.
_FIND_PROGRAM = 'command -v -- "$1" || { echo "$1: not found on PATH=$PATH" >&2; exit 127; }'


def program_check_argv(program: str, prelude: Iterable[str] = (), shell: str = "sh") -> list[str]:
    """The command that finds ``program`` as a job would: after its ``prelude`` lines.

    The program is ``$1`` of a fixed script, never parsed as shell code; the
    prelude (a Slurm job's :func:`job_prelude`) is the user's own shell code, run
    as the job runs it.
    """
    script = "\n".join([*prelude, _FIND_PROGRAM])
    return [shell, "-c", script, shell, program]


def script_task(
    objective: ScriptObjective,
    *,
    script: str,
    interpreter: str | None,
    workdir: str,
    trial_index: int,
) -> dict[str, Any]:
    """The manifest entry's command of a script trial, with paths as on the cluster."""
    placeholders = {
        "params_file": f"{workdir}/params.json",
        "output_file": f"{workdir}/result.json",
        "trial_index": str(trial_index),
        "workdir": workdir,
    }
    env = trial_environment(objective.env, placeholders)
    head = [interpreter] if interpreter else []
    argv = [*head, script, *(arg.format(**placeholders) for arg in objective.args)]
    return {"argv": argv, "env": env, "timeout": objective.timeout}


class Backoff:
    """Polling interval: starts at ``low``, doubles while nothing changes, up to ``high``."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, max(low, high)
        self.current = low

    def reset(self) -> None:
        self.current = self.low

    def grow(self) -> None:
        self.current = min(self.current * 2, self.high)


#: Slurm's accepted ``--time`` formats.
TIME_LIMIT = re.compile(
    r"^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+(:\d{1,2}){0,2}|UNLIMITED|INFINITE)$"
)
#: ``--mem`` values: a number with an optional K/M/G/T unit.
MEMORY = re.compile(r"^\d+[KMGT]?B?$", re.IGNORECASE)
