"""User-facing options, validated by pydantic with messages that name the key."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
)

from ._exceptions import ConfigError


class SchedulerConfig(BaseModel):
    """Options of :class:`~ax_scheduler.AxScheduler`, passed as ``config={...}``.

    Attributes:
        synchronous: If True (default), leaving ``batch_trial_context()`` waits
            until the batch's trials are finished and recorded in Ax. If False it
            returns once they are submitted; they run in the background and
            ``wait_for_completed_trials()`` waits for them.
        monitoring_interval: Seconds between status checks for runners that must
            poll (Slurm). Local trials are event-driven and never polled.
        job_output_dir: Directory for per-trial files of runners that write them.
        cleanup_after_completion: Delete a trial's files once it is recorded.
        trial_timeout: Seconds a single trial may run before it is killed and
            marked FAILED. ``max_trial_monitoring_time`` is accepted as an alias
            (the older library's name). None means no limit.
        max_parallel_trials: Cap on concurrently running trials, below the
            runner's own capacity. None means the runner's capacity.
        prefetch_trials: Candidates ``run_optimization`` generates ahead of a free
            slot, so a finishing trial's slot starts the next one at once instead
            of idling while Ax generates. 0 generates only when a slot is free,
            from the freshest data (a model fit then idles a slot).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    synchronous: bool = True
    monitoring_interval: PositiveFloat = 10.0
    job_output_dir: Path = Path("ax_scheduler_output")
    cleanup_after_completion: bool = False
    trial_timeout: PositiveFloat | None = Field(
        default=None,
        validation_alias=AliasChoices("trial_timeout", "max_trial_monitoring_time"),
    )
    max_parallel_trials: PositiveInt | None = None
    prefetch_trials: NonNegativeInt = 1

    @classmethod
    def from_user(cls, config: SchedulerConfig | Mapping[str, Any] | None) -> SchedulerConfig:
        """Validate a user's ``config`` dict, raising :class:`ConfigError` on bad input.

        Args:
            config: A dict of options, an existing config, or None for defaults.

        Returns:
            The validated config.

        Raises:
            ConfigError: A key is unknown or a value is invalid; the message names
                the key, the value and what is allowed.
        """
        if config is None:
            return cls()
        if isinstance(config, SchedulerConfig):
            return config
        if not isinstance(config, Mapping):
            raise ConfigError(f"config must be a dict of options, got {type(config).__name__}")
        try:
            return cls.model_validate(dict(config))
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, cls.allowed_keys())) from None

    @classmethod
    def allowed_keys(cls) -> list[str]:
        """Every accepted config key, aliases included."""
        keys = set(cls.model_fields)
        keys.add("max_trial_monitoring_time")
        return sorted(keys)


class _ObjectiveOptions(BaseModel):
    """Options dict of a ``set_*_objective`` call, validated with named errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    _argument: ClassVar[str]

    @classmethod
    def from_user(cls, options: Mapping[str, Any] | None) -> Self:
        """Validate the user's dict, raising :class:`ConfigError` on bad input."""
        try:
            return cls.model_validate(dict(options or {}))
        except ValidationError as exc:
            message = describe_validation_error(exc, sorted(cls.model_fields))
            raise ConfigError(message.replace("config", cls._argument)) from None


class ScriptOptions(_ObjectiveOptions):
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
    args: list[str] = []
    env: dict[str, str] = {}
    timeout: PositiveFloat | None = None


class ContainerOptions(_ObjectiveOptions):
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
    volumes: dict[str, str] = {}
    env_vars: dict[str, str] = {}
    cpus: PositiveFloat | None = None
    memory: str | None = Field(default=None, pattern=r"^[0-9]+[bkmgBKMG]?$")
    gpus: str | int | None = None
    network: str | None = None
    timeout: PositiveFloat | None = None


def describe_validation_error(exc: ValidationError, allowed: list[str]) -> str:
    """One readable line per problem: the key, what was wrong, the offending value."""
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "config"
        if error["type"] == "extra_forbidden":
            lines.append(f"unknown config key {key!r}; allowed keys: {', '.join(allowed)}")
        else:
            lines.append(f"config[{key!r}]: {error['msg'].lower()}, got {error['input']!r}")
    return "invalid config: " + "; ".join(lines)
