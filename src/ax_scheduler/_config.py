"""User-facing options, validated by pydantic with messages that name the key."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from ._exceptions import ConfigError
from ._jobenv import check_user_env


class SchedulerConfig(BaseModel):
    """Options of :class:`~ax_scheduler.AxScheduler`, passed as ``config={...}``.

    Attributes:
        synchronous: If True (default), leaving ``batch_trial_context()`` waits
            until the batch's trials are finished and recorded in Ax. If False it
            returns once they are submitted; they run in the background and
            ``wait_for_completed_trials()`` waits for them.
        monitoring_interval: Seconds between status checks for runners that must
            poll (Slurm). Local trials are event-driven and never polled.
        job_output_dir: Directory of the trials' own folders
            (``<experiment>-trial-<index>``: ``params.json``, ``result.json``,
            ``stdout.log``, ``stderr.log``). Local and container trials write them
            here; Slurm and SSH trials under their runner's ``job_dir`` on the
            cluster. The results table lists each trial's folder.
        cleanup_after_completion: Remove a COMPLETED trial's folder (on the
            cluster or host for Slurm and SSH trials) once its result is recorded
            in Ax and, with ``checkpoint_path``, in the checkpoint on disk. Failed
            and abandoned trials keep theirs, for debugging. The results table
            then shows no folder for the removed ones.
        trial_timeout: Seconds a single trial may run before it is killed and
            marked FAILED. ``max_trial_monitoring_time`` is accepted as an alias
            (the older library's name). None means no limit.
        max_parallel_trials: Cap on concurrently running trials, below the
            runner's own capacity. None means the runner's capacity.
        prefetch_trials: Candidates ``run_optimization`` generates ahead of a free
            slot, so a finishing trial's slot starts the next one at once instead
            of idling while Ax generates. 0 generates only when a slot is free,
            from the freshest data (a model fit then idles a slot).
        tolerated_failure_rate: ``run_optimization`` stops with
            :class:`~ax_scheduler.FailureRateExceededError` (cancelling what still
            runs) when more than this share of its finished trials FAILED...
        min_failed_trials_for_failure_rate_check: ...once at least this many did.
            Ax's Orchestrator options, with its defaults
            (``min_failed_trials_for_rate_check`` is accepted as an alias).
        max_retries: How often a trial that failed for an infrastructure reason
            (worker died, host lost, node failure, ``sbatch`` refused; see
            :class:`~ax_scheduler.InfrastructureError`) runs again on a fresh job
            before it counts as FAILED. Its objective's own failures are never retried.
        retry_delay: Seconds before the first retry; doubled for each further one.
        checkpoint_path: A file the scheduler rewrites (atomically) after every
            change of a trial's state: the experiment, where each job runs, and
            these options. :meth:`~ax_scheduler.AxScheduler.resume` continues
            from it after the driver died. None writes no checkpoint.
        progress: Show a live progress display (trials running, queued, done,
            best so far, time left) while the sync ``run_optimization`` runs in a
            terminal or a notebook. Never shown when stderr is not a terminal.
        requeue_lost_trials: When resuming, a trial whose job died with the driver
            (local pool) is marked FAILED ("driver restarted"); True also runs its
            parameters again as a new trial.
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
    tolerated_failure_rate: float = Field(default=0.5, ge=0.0, le=1.0)
    min_failed_trials_for_failure_rate_check: PositiveInt = Field(
        default=5,
        validation_alias=AliasChoices(
            "min_failed_trials_for_failure_rate_check", "min_failed_trials_for_rate_check"
        ),
    )
    max_retries: NonNegativeInt = 2
    retry_delay: NonNegativeFloat = 1.0
    checkpoint_path: Path | None = None
    requeue_lost_trials: bool = False
    progress: bool = True

    #: Options with two accepted names: the second is the older library's or Ax's.
    ALIASES: ClassVar[dict[str, str]] = {
        "max_trial_monitoring_time": "trial_timeout",
        "min_failed_trials_for_rate_check": "min_failed_trials_for_failure_rate_check",
    }

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """``True`` is an int to Python, but ``trial_timeout=True`` is a mistake."""
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, bool) and field is not None and field.annotation is not bool:
            raise ValueError("expected a number or None, not a bool")
        return value

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
        for alias, name in cls.ALIASES.items():
            if alias in config and name in config:
                raise ConfigError(
                    f"invalid config: {alias!r} is another name of {name!r}; give only one"
                    f" (got {alias}={config[alias]!r} and {name}={config[name]!r})"
                )
        try:
            return cls.model_validate(dict(config))
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, cls.allowed_keys())) from None

    @classmethod
    def allowed_keys(cls) -> list[str]:
        """Every accepted config key, aliases included."""
        keys = set(cls.model_fields)
        keys.update(cls.ALIASES)
        return sorted(keys)


class _Options(BaseModel):
    """An options dict (``script_options``, ``ssh``, ...), validated with named errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    _argument: ClassVar[str]

    @classmethod
    def from_user(cls, options: Mapping[str, Any] | None) -> Self:
        """Validate the user's dict, raising :class:`ConfigError` on bad input."""
        try:
            return cls.model_validate(dict(options or {}))
        except ValidationError as exc:
            message = describe_validation_error(exc, sorted(cls.model_fields), cls._argument)
            raise ConfigError(message) from None


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
    args: list[str] = []
    env: dict[str, str] = {}
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
    volumes: dict[str, str] = {}
    env_vars: dict[str, str] = {}
    cpus: PositiveFloat | None = None
    memory: str | None = Field(default=None, pattern=r"^[0-9]+[bkmgBKMG]?$")
    gpus: str | int | None = None
    network: str | None = None
    timeout: PositiveFloat | None = None

    # JOB_* say where the trial's files are: a user's value would misdirect the command.
    _no_job_variables = field_validator("env_vars")(check_user_env)


class SSHOptions(_Options):
    """How to reach a host over SSH: the ``ssh={...}`` of a cluster or SSH runner.

    Host keys are verified against ``known_hosts`` unless ``verify_host_key`` is
    set to False, which must be said explicitly. Secrets (``password``,
    ``passphrase``) are kept as :class:`pydantic.SecretStr` and never printed.

    Attributes:
        host: Host name or address.
        port: SSH port.
        username: Remote user; None uses the local user name (or ~/.ssh/config).
        client_keys: Private key files; None uses the SSH agent and default keys.
        passphrase: Passphrase of encrypted client keys.
        password: Password authentication, if the server allows it.
        known_hosts: File of trusted host keys.
        verify_host_key: False skips host key verification (insecure).
        connect_timeout: Seconds to wait for a connection.
        keepalive_interval: Seconds between keep-alive probes, so a dead link is
            noticed even while no command runs.
        max_sessions: Commands in flight at once on the one connection (OpenSSH
            allows 10 sessions per connection by default).
        reconnect_attempts: How often a dropped connection is re-established
            (1, 2, 4 ... s apart) before the host counts as down.
    """

    _argument = "ssh"

    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    username: str | None = None
    client_keys: list[str] | None = None
    passphrase: SecretStr | None = None
    password: SecretStr | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    verify_host_key: bool = True
    connect_timeout: PositiveFloat = 15.0
    keepalive_interval: PositiveFloat = 30.0
    max_sessions: PositiveInt = 8
    reconnect_attempts: NonNegativeInt = 5

    @property
    def address(self) -> str:
        """``user@host:port`` for messages (no secrets)."""
        user = f"{self.username}@" if self.username else ""
        return f"{user}{self.host}:{self.port}"


#: Environment variable names a host's ``env`` may set (they reach ``env NAME=VALUE``).
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SSHHost(SSHOptions):
    """One host of :class:`~ax_scheduler.SSHRunner`: how to reach it and what it runs.

    Everything :class:`SSHOptions` accepts, plus:

    Attributes:
        slots: Trials this host runs at once (its GPUs, say).
        python: The Python that runs the worker; it needs cloudpickle and the
            objective's imports.
        job_dir: Directory for the worker, objectives and trial files; relative
            paths start at the remote home.
        env: Extra environment variables of each trial (``PYTHONPATH``,
            ``CUDA_VISIBLE_DEVICES`` ...). Values travel as single arguments of
            ``env``, never through a shell.
    """

    _argument = "host"

    slots: PositiveInt = 1
    python: str = Field(default="python3", min_length=1)
    job_dir: str = Field(default="ax_scheduler_jobs", min_length=1)
    env: dict[str, str] = {}

    @field_validator("slots")
    @classmethod
    def _check_slots(cls, slots: int, info: ValidationInfo) -> int:
        # Each running trial holds one session on the host's one connection until
        # it exits; commands (reading results, killing) need at least one more.
        max_sessions = info.data.get("max_sessions")
        if max_sessions is not None and slots >= max_sessions:
            raise ValueError(
                f"too many for max_sessions={max_sessions}: each running trial holds one"
                " SSH session and commands need one more; set max_sessions to at least"
                f" {slots + 1} (the server's MaxSessions, default 10 with one taken by"
                " SFTP, must allow it)"
            )
        return slots

    @field_validator("env")
    @classmethod
    def _check_env(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if not ENV_NAME.match(name):
                raise ValueError(f"environment variable name {name!r} is not like 'PYTHONPATH'")
        return env

    @classmethod
    def from_entry(cls, index: int, entry: Any) -> SSHHost:
        """Validate ``hosts[index]``: a dict of options, or a bare host name.

        Raises:
            ConfigError: A key is unknown or a value invalid; the message names
                ``hosts[index]``, the key and the value.
        """
        if isinstance(entry, SSHHost):
            return entry
        if isinstance(entry, str):
            entry = {"host": entry}
        if not isinstance(entry, Mapping):
            raise ConfigError(
                f"hosts[{index}] must be a dict like {{'host': 'gpu1', 'slots': 2}} or a"
                f" host name, got {entry!r}"
            )
        try:
            return cls.model_validate(dict(entry))
        except ValidationError as exc:
            message = describe_validation_error(exc, sorted(cls.model_fields), f"hosts[{index}]")
            raise ConfigError(message) from None


class SSHConfig(_Options):
    """The ``config={...}`` of :class:`~ax_scheduler.SSHRunner`.

    Attributes:
        max_resubmits: Resubmissions of a trial whose host went down (to another
            host) before it counts as failed.
        stop_grace_seconds: Seconds between SIGTERM and SIGKILL when a trial's
            remote process group is stopped.
        poll_interval: Seconds between checks of a trial's process after its
            connection dropped (it keeps running; the runner re-attaches).
    """

    _argument = "config"

    max_resubmits: NonNegativeInt = 2
    stop_grace_seconds: NonNegativeFloat = 5.0
    poll_interval: PositiveFloat = 1.0


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

    modules: list[str] = []
    setup: list[str] = []
    sbatch_options: dict[str, str | int | float | bool] = {}
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


def describe_validation_error(
    exc: ValidationError, allowed: list[str], argument: str = "config"
) -> str:
    """One readable line per problem: the key, what was wrong, the offending value.

    Args:
        exc: pydantic's error.
        allowed: The accepted keys, listed for an unknown one.
        argument: The argument the keys belong to (``config``, ``script_options``,
            ``hosts[0]`` ...), as the user wrote it.
    """
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or argument
        if error["type"] == "extra_forbidden":
            lines.append(f"unknown {argument} key {key!r}; allowed keys: {', '.join(allowed)}")
        else:
            lines.append(f"{argument}[{key!r}]: {_reason(error)}, got {error['input']!r}")
    return f"invalid {argument}: " + "; ".join(lines)


def _reason(error: Any) -> str:
    """What was wrong: a validator's own ValueError as it said it, else pydantic's words."""
    cause = (error.get("ctx") or {}).get("error")
    text = str(cause) if error["type"] == "value_error" and cause is not None else error["msg"]
    return text[:1].lower() + text[1:]
