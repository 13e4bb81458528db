"""Options of script and container objectives: ``script_options``, ``container_options``."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    PositiveFloat,
    field_validator,
)

from .._jobenv import check_user_env
from ._base import _Options


class ScriptOptions(_Options):
    """Options of ``set_script_objective(script, script_options={...})``.

    Attributes:
        interpreter: Program that runs the script (``"python3"``, ``"bash"``),
            looked up on PATH; None runs the script itself (it must be executable).
        args: Extra arguments. ``{params_file}``, ``{output_file}``,
            ``{trial_index}`` and ``{workdir}`` are replaced per trial.
        env: Extra environment variables for the script.
        timeout: Seconds one trial's script may run before its process group is
            terminated (SIGTERM, then SIGKILL) and the trial marked FAILED.
    """

    _argument = "script_options"

    interpreter: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    timeout: PositiveFloat | None = None

    # JOB_* say where the trial's files are: a user's value would misdirect the script.
    _no_job_variables = field_validator("env")(check_user_env)


class ContainerOptions(_Options):
    """Options of ``set_container_objective(image, command, container_options={...})``.

    Attributes:
        engine: Which engine runs the image: ``"docker"`` (DockerRunner), or
            ``"apptainer"``/``"singularity"`` (for cluster runners).
        volumes: Host path -> container path (append ``:ro`` for read-only).
            Host paths must exist; relative ones are taken from the current
            directory when the objective is set.
        env_vars: Extra environment variables inside the container.
        cpus: CPU limit (``--cpus``). memory: memory limit (``--memory``, e.g.
            ``"4g"``). gpus: ``--gpus`` value (``"all"``, ``1``). network:
            ``--network`` (``"none"`` isolates the trial).
        timeout: Seconds a trial's container may run before it is stopped
            (``docker stop``, then ``docker kill``) and the trial FAILED.
    """

    _argument = "container_options"

    engine: Literal["docker", "apptainer", "singularity"] = "docker"
    volumes: dict[str, str] = Field(default_factory=dict)
    env_vars: dict[str, str] = Field(default_factory=dict)
    cpus: PositiveFloat | None = None
    memory: str | None = Field(default=None, pattern=r"^[0-9]+[bkmgBKMG]?$")
    gpus: str | int | None = None
    network: str | None = None
    timeout: PositiveFloat | None = None

    # JOB_* say where the trial's files are: a user's value would misdirect the command.
    _no_job_variables = field_validator("env_vars")(check_user_env)
