"""The experiment file's pydantic models: the experiment, its objective, its runner.

They reuse the library's own models (``SchedulerConfig``, ``ScriptOptions``,
``ContainerOptions``, ``SlurmConfig``, ``SSHOptions``, ``SSHHost``,
``SSHConfig``), so the file accepts what the Python API accepts. A runner's
model is built from its constructor's signature; the options the library has
no model for go to the constructor as written, which checks them itself.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .._config import (
    ContainerOptions,
    SchedulerConfig,
    ScriptOptions,
    SlurmConfig,
    SSHConfig,
    SSHHost,
    SSHOptions,
)
from ..runners import DockerRunner, JobLibRunner, Runner, SlurmRunner, SSHRunner
from .yamlspec import INPUT_NAMED

#: The words an objective's direction may be (or a Goal mapping).
DIRECTIONS = ("minimize", "maximize")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Goal(_Strict):
    """One objective metric: ``minimize`` (or ``maximize``), ``{minimize: true, threshold: 0.5}``."""

    minimize: bool
    threshold: float | None = None


def _goal_from_word(value: Any) -> Any:
    if isinstance(value, Mapping):
        return value  # checked by Goal, which names a misspelt key
    if value in DIRECTIONS:
        return {"minimize": value == "minimize"}
    close = difflib.get_close_matches(value, DIRECTIONS, n=1) if isinstance(value, str) else []
    hint = f"; did you mean {close[0]!r}? Valid" if close else "; valid"
    raise PydanticCustomError(
        INPUT_NAMED,
        f"{value!r} is not a direction{hint}: {', '.join(DIRECTIONS)}, or"
        " {minimize: true|false, threshold: NUMBER} (threshold optional)",
    )


class ScriptSpec(ScriptOptions):
    """``objective: {script: ...}``: the script and ``set_script_objective``'s options."""

    path: str = Field(min_length=1)


class ContainerSpec(ContainerOptions):
    """``objective: {container: ...}``: the image, its command and the container options."""

    image: str = Field(min_length=1)
    command: str | list[str] | None = None


class TrialObjective(_Strict):
    """What each trial runs: exactly one of a function, a script or a container."""

    function: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$", description="module:function"
    )
    script: ScriptSpec | None = None
    container: ContainerSpec | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> TrialObjective:
        given = [kind for kind in ("function", "script", "container") if getattr(self, kind)]
        if len(given) != 1:
            found = " and ".join(given) if given else "none"
            raise ValueError(f"give exactly one of function, script or container; got {found}")
        return self


class ExperimentSpec(_Strict):
    """An experiment file: the Ax experiment, what a trial runs, where, and how many.

    Attributes:
        name: The experiment's name.
        parameters: Ax's parameter dicts, as ``AxClient.create_experiment`` takes them.
        objectives: Metric -> ``minimize``/``maximize`` or ``{minimize, threshold}``.
        parameter_constraints: Ax's strings, e.g. ``"x + y <= 2.0"``.
        outcome_constraints: Ax's strings, e.g. ``"memory <= 4.0"``.
        tracking_metrics: Metrics recorded but not optimized.
        objective: What a trial runs.
        runner: ``{type: joblib|slurm|ssh|docker, ...}``: the runner's constructor
            arguments, checked by :data:`RUNNER_MODELS`.
        max_trials: The run's total of trials.
        initial_trials: Sobol trials before Bayesian optimization.
        random_seed: The seed of Ax's generators.
        config: The scheduler's options.
    """

    name: str = Field(min_length=1)
    parameters: list[dict[str, Any]] = Field(min_length=1)
    objectives: dict[str, Annotated[Goal, BeforeValidator(_goal_from_word)]] = Field(min_length=1)
    parameter_constraints: list[str] = []
    outcome_constraints: list[str] = []
    tracking_metrics: list[str] = []
    objective: TrialObjective
    runner: dict[str, Any]  # checked by the runner's own model, see RUNNER_MODELS
    max_trials: PositiveInt
    initial_trials: PositiveInt | None = None
    random_seed: int | None = None
    config: SchedulerConfig = SchedulerConfig()


# -- runners: one model per constructor, built from its signature --------------------
RUNNERS: dict[str, type[Runner]] = {
    runner.kind: runner for runner in (JobLibRunner, SlurmRunner, SSHRunner, DockerRunner)
}


def _host_from_name(entry: Any) -> Any:
    return {"host": entry} if isinstance(entry, str) else entry


#: Constructor arguments the library validates with a pydantic model: checked here
#: with that model, so an error points at the nested key. The rest go to the
#: constructor as written, which checks them.
OPTION_MODELS: dict[tuple[str, str], Any] = {
    ("slurm", "config"): SlurmConfig | None,
    ("slurm", "ssh"): SSHOptions | None,
    ("ssh", "hosts"): Annotated[
        list[Annotated[SSHHost, BeforeValidator(_host_from_name)]], Field(min_length=1)
    ],
    ("ssh", "config"): SSHConfig | None,
}


def _runner_model(kind: str, runner: type[Runner]) -> type[BaseModel]:
    fields: dict[str, Any] = {"type": (Literal[kind], ...)}
    for name, parameter in inspect.signature(runner.__init__).parameters.items():
        if parameter.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD or name == "self":
            # Keyword-only arguments are for tests (fake transports, clocks) and for
            # older code (JobLibRunner's config, which has no keys here).
            continue
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[name] = (OPTION_MODELS.get((kind, name), Any), default)
    config = ConfigDict(extra="forbid", frozen=True)
    return create_model(f"{runner.__name__}Options", __config__=config, **fields)


#: Runner type -> the model of its options (``type`` and the constructor's arguments).
RUNNER_MODELS = {kind: _runner_model(kind, runner) for kind, runner in RUNNERS.items()}
