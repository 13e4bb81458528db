"""The scheduler's own options: ``AxScheduler(..., config={...})``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from .._exceptions import ConfigError
from ._base import describe_validation_error


class EarlyStoppingConfig(BaseModel):
    """``config={"early_stopping": {...}}``: Ax's ``PercentileEarlyStoppingStrategy``.

    A running trial whose reported objective is worse than ``percentile`` percent
    of the other trials' at the same step is stopped, once it passed
    ``min_progression`` and ``min_curves`` trials have curves.

    Attributes:
        percentile: The share of trials (0-100) a trial may fall behind before it
            is stopped: 50 stops the worse half.
        min_progression: No trial is stopped before this step.
        max_progression: No trial is stopped after this step (nearly done).
        min_curves: Trials with curves needed before any is stopped.
        metric: The metric judged; None is the experiment's objective.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    percentile: float = Field(default=50.0, gt=0.0, lt=100.0)
    min_progression: NonNegativeFloat = 10.0
    max_progression: PositiveFloat | None = None
    min_curves: PositiveInt = 5
    metric: str | None = None

    def strategy(self) -> Any:
        """The Ax strategy these options describe (imports Ax: call on the Ax thread)."""
        from ax.early_stopping.strategies import PercentileEarlyStoppingStrategy

        return PercentileEarlyStoppingStrategy(
            metric_signatures=None if self.metric is None else [self.metric],
            percentile_threshold=self.percentile,
            min_progression=self.min_progression,
            max_progression=self.max_progression,
            min_curves=self.min_curves,
        )


class GlobalStoppingConfig(BaseModel):
    """``config={"global_stopping": {...}}``: Ax's ``ImprovementGlobalStoppingStrategy``.

    ``run_optimization`` returns early once the best value improved by less than
    ``improvement_bar`` (relative to the spread of values) over the last
    ``window_size`` trials, after at least ``min_trials`` completed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_trials: PositiveInt = 10
    window_size: PositiveInt = 5
    improvement_bar: PositiveFloat = 0.1

    def strategy(self) -> Any:
        """The Ax strategy these options describe (imports Ax: call on the Ax thread)."""
        from ax.global_stopping.strategies.improvement import ImprovementGlobalStoppingStrategy

        return ImprovementGlobalStoppingStrategy(
            min_trials=self.min_trials,
            window_size=self.window_size,
            improvement_bar=self.improvement_bar,
            inactive_when_pending_trials=False,
        )


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
            from it after the driver died. None writes no checkpoint. A database
            URL (``"sqlite:///run.db"``, ``"mysql+pymysql://user:pw@host/db"``,
            ``"postgresql://..."``) keeps the run in Ax's SQL store instead,
            saving only what changed at each write.
        progress: Show a live progress display (trials running, queued, done,
            best so far, time left) while the sync ``run_optimization`` runs in a
            terminal or a notebook. Never shown when stderr is not a terminal.
        requeue_lost_trials: When resuming, a trial whose job died with the driver
            (local pool) is marked FAILED ("driver restarted"); True also runs its
            parameters again as a new trial.
        early_stopping: Stop running trials whose reports (``ax_scheduler.report``,
            progress lines) fall behind: an :class:`EarlyStoppingConfig` dict such
            as ``{"percentile": 50, "min_progression": 10}``. None (default) uses
            the strategy set on the Ax client, if any, and otherwise stops nothing.
        early_stopping_grace: Seconds a trial told to stop has to end by itself
            (its next ``report()`` raises, a script gets SIGTERM) before it is
            stopped like a cancelled one (process killed, ``scancel``, ``docker stop``).
        global_stopping: End ``run_optimization`` early when the best value stops
            improving: a :class:`GlobalStoppingConfig` dict such as
            ``{"min_trials": 10, "window_size": 5, "improvement_bar": 0.1}``.
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
    checkpoint_path: Path | str | None = None
    requeue_lost_trials: bool = False
    progress: bool = True
    early_stopping: EarlyStoppingConfig | None = None
    early_stopping_grace: NonNegativeFloat = 5.0
    global_stopping: GlobalStoppingConfig | None = None

    #: Options with two accepted names: the second is the older library's or Ax's.
    ALIASES: ClassVar[dict[str, str]] = {
        "max_trial_monitoring_time": "trial_timeout",
        "min_failed_trials_for_rate_check": "min_failed_trials_for_failure_rate_check",
    }

    @field_validator("checkpoint_path", mode="before")
    @classmethod
    def _file_or_database(cls, value: Any) -> Any:
        """A database URL stays a string (checked); anything else is a file path."""
        from .._sqlstore import check_database_url, is_database_url

        if is_database_url(value):
            return check_database_url(value)
        if isinstance(value, str):
            return Path(value)
        return value

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
