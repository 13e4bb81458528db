"""SlurmRunner's options."""

from __future__ import annotations

import re

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
)

from ._base import _Options

#: sbatch options the runner sets itself, and where the user sets them instead.
MANAGED_SBATCH_OPTIONS = {
    "array": "config['array_parallelism'] (the arrays are the runner's)",
    "error": "nothing: per-trial logs are the runner's",
    "output": "nothing: per-trial logs are the runner's",
    "job-name": "nothing: jobs are named after the experiment",
    "parsable": "nothing",
    "wrap": "nothing: the job script is the runner's",
    "chdir": "nothing: each trial runs in its own directory",
    "partition": "SlurmRunner(partition=...)",
    "time": "SlurmRunner(time_limit=...)",
    "mem": "SlurmRunner(memory=...)",
    "cpus-per-task": "SlurmRunner(cpus_per_task=...)",
}


class SlurmConfig(_Options):
    """The ``config={...}`` of :class:`~ax_scheduler.SlurmRunner`.

    Attributes:
        modules: Environment modules loaded in each job (``module load <name>``).
        setup: Shell lines run in each job before the trial (``source venv/bin/activate``).
            They are yours and run as written; parameter values never go there.
        sbatch_options: More ``sbatch`` options, long names without dashes
            (``{"account": "proj", "qos": "short", "exclusive": True}``).
        python: The Python on the cluster that runs function objectives; it needs
            cloudpickle and the objective's imports.
        job_dir: Directory on the cluster for job scripts, trial files and logs;
            relative paths start at the remote home (or here, without ``ssh``).
        max_parallel: Trials queued or running at once.
        array_parallelism: ``%limit`` of each job array (tasks running at once).
        max_array_size: Tasks per array; default the cluster's ``MaxArraySize``.
        max_resubmits: Resubmissions of a trial whose job hit an infrastructure
            failure (NODE_FAIL, PREEMPTED, BOOT_FAIL) before it counts as failed.
        monitoring_interval: Longest pause between status polls; default the
            scheduler's ``monitoring_interval``. Polls start 1 s apart and back
            off (1, 2, 4 ... s) while nothing changes.
        min_poll_interval: The shortest pause between status polls.
        submit_window: Seconds trials wait to be submitted together as one array.
    """

    _argument = "config"

    modules: list[str] = Field(default_factory=list)
    setup: list[str] = Field(default_factory=list)
    sbatch_options: dict[str, str | int | float | bool] = Field(default_factory=dict)
    python: str = "python3"
    job_dir: str = "ax_scheduler_jobs"
    max_parallel: PositiveInt = 100
    array_parallelism: PositiveInt | None = None
    max_array_size: PositiveInt | None = None
    max_resubmits: NonNegativeInt = 2
    monitoring_interval: PositiveFloat | None = None
    min_poll_interval: PositiveFloat = 1.0
    submit_window: NonNegativeFloat = 0.05

    @field_validator("sbatch_options")
    @classmethod
    def _check_sbatch_options(
        cls, options: dict[str, str | int | float | bool]
    ) -> dict[str, str | int | float | bool]:
        for key, value in options.items():
            if key in MANAGED_SBATCH_OPTIONS:
                raise ValueError(
                    f"sbatch option {key!r} is set by the runner; use {MANAGED_SBATCH_OPTIONS[key]}"
                )
            if not re.fullmatch(r"[a-z][a-z0-9-]*", key):
                raise ValueError(
                    f"sbatch option {key!r} is not a long option name like 'account' or"
                    " 'mail-type' (no dashes in front, no '=')"
                )
            if isinstance(value, str) and ("\n" in value or not value):
                raise ValueError(f"sbatch option {key!r} has an empty or multi-line value")
        return options

    @field_validator("modules")
    @classmethod
    def _check_modules(cls, modules: list[str]) -> list[str]:
        for name in modules:
            if not re.fullmatch(r"[A-Za-z0-9_.+/-]+", name):
                raise ValueError(f"module name {name!r} is not a module like 'python/3.11'")
        return modules
