"""Slurm's side of the SlurmRunner, as pure functions: no I/O, easy to test exactly.

* :func:`resource_args`, :func:`sbatch_argv` and :func:`job_script`: the submission, with every value
  quoted (``shlex``) so nothing a user or Ax provides is interpreted by a shell;
* :func:`program_check_argv`: finding a program as a job would;
* the job options' checks: the values Slurm accepts for ``--time``, ``--mem``
  and ``--cpus-per-task``.

Job states and ``sacct``'s output are :mod:`ax_scheduler._sacct`'s.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._exceptions import ConfigError


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


def resource_args(
    partition: str | None,
    time_limit: str,
    memory: str | None,
    cpus_per_task: int,
    sbatch_options: Mapping[str, str | int | float | bool],
) -> list[str]:
    """sbatch options for partition, time, memory, CPUs and ``sbatch_options``."""
    args = [f"--time={time_limit}", f"--cpus-per-task={cpus_per_task}"]
    if partition:
        args.insert(0, f"--partition={partition}")
    if memory:
        args.append(f"--mem={memory}")
    return args + sbatch_option_args(sbatch_options)


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


def checked_time_limit(value: Any) -> str:
    """``SlurmRunner(time_limit=...)``, checked to be a ``--time`` Slurm accepts.

    Raises:
        ConfigError: It is not; the message names it and gives examples.
    """
    return _checked(value, "time_limit", TIME_LIMIT, "'HH:MM:SS', 'D-HH:MM' or minutes")


def checked_memory(value: Any) -> str:
    """``SlurmRunner(memory=...)``, checked to be a ``--mem`` value.

    Raises:
        ConfigError: It is not; the message names it and gives examples.
    """
    return _checked(value, "memory", MEMORY, "'4G', '500M'")


def checked_cpus(value: Any) -> int:
    """``SlurmRunner(cpus_per_task=...)``, checked to be a positive int.

    Raises:
        ConfigError: It is not (a bool is not a number of CPUs).
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"cpus_per_task must be a positive int, got {value!r}")
    return value


def _checked(value: Any, name: str, pattern: re.Pattern[str], examples: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ConfigError(f"{name} {value!r} is not a Slurm value like {examples}")
    return value


#: Slurm's accepted ``--time`` formats.
TIME_LIMIT = re.compile(
    r"^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+(:\d{1,2}){0,2}|UNLIMITED|INFINITE)$"
)
#: ``--mem`` values: a number with an optional K/M/G/T unit.
MEMORY = re.compile(r"^\d+[KMGT]?B?$", re.IGNORECASE)
