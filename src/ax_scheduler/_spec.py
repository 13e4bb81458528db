"""The experiment file of the ``ax-scheduler`` command: its models, and errors with line numbers.

An experiment file is YAML. It is checked by pydantic models that reuse the
library's own (``SchedulerConfig``, ``ScriptOptions``, ``ContainerOptions``,
``SlurmConfig``, ``SSHOptions``, ``SSHHost``, ``SSHConfig``); the other runner
options go to the runner's constructor, which checks them itself. Every problem
is reported as ``file:line: key: message``: the YAML is composed into nodes that
remember their lines, and each error's ``loc`` is walked down those nodes.

Relative paths in the file (the objective's module, script or volumes, the
checkpoint and ``job_output_dir``) are taken from the file's directory, so a run
does not depend on where the command was started.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
import sys
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import cloudpickle
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    SecretStr,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ._config import (
    ContainerOptions,
    SchedulerConfig,
    ScriptOptions,
    SlurmConfig,
    SSHConfig,
    SSHHost,
    SSHOptions,
)
from ._container import make_container_objective
from ._jobs import FunctionObjective, Objective
from ._script import make_script_objective
from ._yamlspec import (
    INPUT_NAMED,
    Loc,
    Problem,
    Source,
    SpecError,
    check_duplicate_keys,
    parse_yaml,
    problems_of,
)
from .runners import DockerRunner, JobLibRunner, Runner, SlurmRunner, SSHRunner

#: The checkpoint a run writes when the file names none, next to the file.
DEFAULT_CHECKPOINT = "run.json"
#: Version of the ``spec`` the command stores in a checkpoint's header.
STORED_SPEC_VERSION = 1
#: The words an objective's direction may be (or a Goal mapping).
DIRECTIONS = ("minimize", "maximize")


# -- the models ---------------------------------------------------------------------
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
            continue  # keyword-only arguments are for tests (fake transports, clocks)
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[name] = (OPTION_MODELS.get((kind, name), Any), default)
    config = ConfigDict(extra="forbid", frozen=True)
    return create_model(f"{runner.__name__}Options", __config__=config, **fields)


RUNNER_MODELS = {kind: _runner_model(kind, runner) for kind, runner in RUNNERS.items()}


# -- loading --------------------------------------------------------------------------
@dataclass
class RunSpec:
    """A checked experiment file, its runner built, ready to run.

    Attributes:
        experiment: The validated file.
        runner: The runner it declares (built, not started).
        runner_options: The runner's validated options.
        base_dir: The file's directory: relative paths in it start here.
        source: Where it came from, for messages.
        file: The file's path, if it came from one.
    """

    experiment: ExperimentSpec
    runner: Runner
    runner_options: BaseModel
    base_dir: Path
    source: Source
    file: Path | None = None
    function: Callable[..., Any] | None = field(default=None, repr=False)

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """A path of the file, relative to its directory."""
        return absolute(self.base_dir / Path(path).expanduser())

    def checkpoint_path(self) -> Path:
        """``config.checkpoint_path``, or ``run.json`` next to the file."""
        given = self.experiment.config.checkpoint_path
        return self.resolve(given if given is not None else DEFAULT_CHECKPOINT)

    def scheduler_config(self, checkpoint: Path) -> dict[str, Any]:
        """The options for ``AxScheduler``: the file's, with its paths resolved."""
        options = self.experiment.config.model_dump(exclude_unset=True)
        options["job_output_dir"] = self.resolve(self.experiment.config.job_output_dir)
        options["checkpoint_path"] = checkpoint
        return options

    def stored(self) -> dict[str, Any]:
        """What the checkpoint keeps, so ``resume`` needs no file: JSON, without secrets."""
        experiment = self.experiment.model_dump(mode="json", exclude_unset=True)
        experiment["runner"] = self.runner_options.model_dump(mode="json", exclude_unset=True)
        return {
            "version": STORED_SPEC_VERSION,
            "file": None if self.file is None else str(self.file),
            "base_dir": str(self.base_dir),
            "experiment": experiment,
            "secrets_omitted": _has_secret(self.runner_options.model_dump()),
        }


def absolute(path: str | os.PathLike[str]) -> Path:
    """An absolute path without ``..`` (symlinks kept, as the user named them)."""
    return Path(os.path.abspath(path))


def _has_secret(value: Any) -> bool:
    if isinstance(value, SecretStr):
        return True
    if isinstance(value, Mapping):
        return any(_has_secret(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_has_secret(item) for item in value)
    return False


def load_file(path: str | os.PathLike[str]) -> RunSpec:
    """Read and check an experiment file, build its runner and import its objective.

    Raises:
        SpecError: The file cannot be read or is invalid; every message names the
            file, the line and the key.
    """
    path = Path(path)
    source = Source(str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise source.fail((), f"cannot read it: {exc.strerror or exc}") from None
    root, data = parse_yaml(text, source)
    source = Source(str(path), root)
    check_duplicate_keys(root, source)
    return check(data, source, absolute(path).parent, file=absolute(path))


def load_stored(stored: Any, where: str) -> RunSpec:
    """Rebuild the spec a checkpoint keeps (see :meth:`RunSpec.stored`).

    Raises:
        SpecError: It is missing, of another version, keeps no secrets the runner
            needs, or no longer valid (a module or script moved).
    """
    source = Source(f"{where} (the experiment it stores)")
    if not isinstance(stored, Mapping) or stored.get("version") != STORED_SPEC_VERSION:
        raise source.fail(
            (),
            "the checkpoint stores no experiment file (it was not written by `ax-scheduler"
            " run`); give the experiment file with --experiment FILE",
        )
    if stored.get("secrets_omitted"):
        raise source.fail(
            ("runner",),
            "the checkpoint does not keep passwords or passphrases; give the experiment"
            " file again with --experiment FILE",
        )
    file = stored.get("file")
    return check(
        stored["experiment"],
        source,
        Path(stored["base_dir"]),
        file=Path(file) if file else None,
    )


def check(
    data: Mapping[str, Any], source: Source, base_dir: Path, *, file: Path | None = None
) -> RunSpec:
    """Validate a loaded experiment file, build its runner and check its objective.

    Raises:
        SpecError: Every problem found, each with its key (and line, for a file).
    """
    problems: list[Problem] = []
    try:
        experiment = ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        problems += problems_of(exc, ExperimentSpec)
    runner_options = _check_runner(data.get("runner"), problems)
    runner = None if runner_options is None else _build_runner(runner_options, problems)
    if problems:
        problems.sort(key=lambda problem: problem.line or source.line_of(problem.loc) or 0)
        raise SpecError(source, problems)
    assert runner is not None
    assert runner_options is not None
    spec = RunSpec(experiment, runner, runner_options, base_dir, source, file)
    spec.function = _check_objective(spec)
    return spec


def _check_runner(raw: Any, problems: list[Problem]) -> BaseModel | None:
    if not isinstance(raw, Mapping):
        return None  # ExperimentSpec reported it (missing, or not a mapping)
    kinds = ", ".join(RUNNER_MODELS)
    if "type" not in raw:
        problems.append(Problem(("runner", "type"), f"required key is missing (one of {kinds})"))
        return None
    model = RUNNER_MODELS.get(raw["type"]) if isinstance(raw["type"], str) else None
    if model is None:
        problems.append(
            Problem(("runner", "type"), f"unknown runner type {raw['type']!r}; one of {kinds}")
        )
        return None
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        problems += problems_of(exc, model, ("runner",))
        return None


def _build_runner(options: BaseModel, problems: list[Problem]) -> Runner | None:
    kind = options.model_dump(include={"type"})["type"]
    given = {name: getattr(options, name) for name in options.model_fields_set - {"type"}}
    try:
        return RUNNERS[kind](**given)
    except (TypeError, ValueError) as exc:  # the constructor's own checks
        first_word = re.match(r"\w+", str(exc))
        key = first_word.group() if first_word and first_word.group() in given else None
        problems.append(Problem(("runner", key) if key else ("runner",), str(exc)))
        return None


# -- the objective --------------------------------------------------------------------
def _check_objective(spec: RunSpec) -> Callable[..., Any] | None:
    """Import the function, or check the script or container; the function if any."""
    objective = spec.experiment.objective
    function = None
    if objective.function is not None:
        function = import_function(objective.function, spec.base_dir, spec.source)
        checked: Objective = FunctionObjective(function)
    elif objective.script is not None:
        checked = _checked(spec, ("objective", "script"), _make_script, objective.script)
    else:
        assert objective.container is not None
        checked = _checked(spec, ("objective", "container"), _make_container, objective.container)
    accepted = spec.runner.objective_types
    if accepted and not isinstance(checked, accepted):
        kinds = ", ".join(kind.__name__ for kind in accepted)
        raise spec.source.fail(
            ("objective",),
            f"{spec.runner!r} cannot run a {type(checked).__name__}; it runs: {kinds}",
        )
    return function


def _checked(spec: RunSpec, loc: Loc, make: Callable[..., Objective], options: Any) -> Objective:
    try:
        return make(spec, options)
    except (OSError, ValueError) as exc:
        starts = _KEYS_BY_MESSAGE_START[str(loc[-1])]
        key = next((key for start, key in starts.items() if str(exc).startswith(start)), None)
        raise spec.source.fail((*loc, key or starts[""]), str(exc)) from None


#: How the library's messages start, by the option that was wrong ("": any other).
_KEYS_BY_MESSAGE_START = {
    "script": {"interpreter ": "interpreter", "unknown placeholder": "args", "": "path"},
    "container": {
        "volume ": "volumes",
        "unknown placeholder": "command",
        "container_command ": "command",
        "": "image",
    },
}


def _make_script(spec: RunSpec, script: ScriptSpec) -> Objective:
    here = spec.runner.objectives_run_here  # else the runner looks where its jobs run
    return make_script_objective(spec.resolve(script.path), script, find_interpreter=here)


def _make_container(spec: RunSpec, container: ContainerSpec) -> Objective:
    options = container_options(spec)
    here = spec.runner.objectives_run_here
    return make_container_objective(container.image, container.command, options, check_volumes=here)


def script_options(spec: RunSpec) -> dict[str, Any]:
    """``set_script_objective``'s options, from the file."""
    assert spec.experiment.objective.script is not None
    return spec.experiment.objective.script.model_dump(exclude={"path"})


def container_options(spec: RunSpec) -> ContainerOptions:
    """``set_container_objective``'s options, host paths of volumes taken from the file's directory."""
    container = spec.experiment.objective.container
    assert container is not None
    options = container.model_dump(exclude={"image", "command"})
    options["volumes"] = {
        str(spec.resolve(host)): inside for host, inside in container.volumes.items()
    }
    return ContainerOptions.model_validate(options)


def set_objective(scheduler: Any, spec: RunSpec) -> None:
    """Give ``scheduler`` (an ``AxScheduler``) the file's objective.

    Raises:
        SpecError: The scheduler refused it (e.g. a function it cannot pickle).
    """
    objective = spec.experiment.objective
    try:
        if spec.function is not None:
            scheduler.set_objective_function(spec.function)
        elif objective.script is not None:
            path = spec.resolve(objective.script.path)
            scheduler.set_script_objective(path, script_options(spec))
        else:
            assert objective.container is not None
            options = container_options(spec).model_dump()
            scheduler.set_container_objective(
                objective.container.image, objective.container.command, options
            )
    except (TypeError, ValueError, OSError) as exc:
        raise spec.source.fail(("objective",), str(exc)) from None


def import_function(reference: str, base_dir: Path, source: Source) -> Callable[..., Any]:
    """Import ``module:function``, looking in the file's directory first.

    A module from that directory is sent to workers by value (cloudpickle), so
    remote runners need not have the file; its directory also goes on
    ``PYTHONPATH``, so the local pool's workers can import what it imports.

    Raises:
        SpecError: No such module, the module raised on import, or no such function.
    """
    loc: Loc = ("objective", "function")
    module_name, _, attribute = reference.partition(":")
    _add_to_path(base_dir)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name or module_name.startswith(f"{exc.name}."):
            message = f"no module named {exc.name!r} (looked in {str(base_dir)!r} and sys.path)"
            raise source.fail(loc, message) from None
        raise source.fail(loc, f"importing {module_name!r} failed: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - whatever the user's module raises
        message = f"importing {module_name!r} raised {type(exc).__name__}: {exc}"
        raise source.fail(loc, message) from None
    function = _attribute(module, attribute, source, loc)
    if _is_under(getattr(module, "__file__", None), base_dir):
        cloudpickle.register_pickle_by_value(module)
    return function


def _attribute(module: Any, dotted: str, source: Source, loc: Loc) -> Callable[..., Any]:
    found: Any = module
    for part in dotted.split("."):
        if not hasattr(found, part):
            names = [name for name in dir(found) if not name.startswith("_")]
            close = difflib.get_close_matches(part, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            where = getattr(module, "__file__", module.__name__)
            raise source.fail(loc, f"{where} has no attribute {part!r}{hint}")
        found = getattr(found, part)
    if not callable(found):
        raise source.fail(loc, f"{dotted!r} is not a function: it is a {type(found).__name__}")
    return typing.cast(Callable[..., Any], found)


def _add_to_path(directory: Path) -> None:
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if str(directory) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(directory), *paths]))


def _is_under(file: str | None, directory: Path) -> bool:
    return file is not None and Path(file).resolve().is_relative_to(directory.resolve())


# -- the Ax client --------------------------------------------------------------------
def create_client(spec: RunSpec, *, verbose: bool = False) -> Any:
    """A legacy ``AxClient`` with the file's experiment.

    Raises:
        SpecError: Ax refused the experiment; the problem points at the parameter,
            constraint or objective Ax objected to, with Ax's message.
    """
    try:
        return _new_client(spec.experiment, verbose)
    except Exception as exc:  # noqa: BLE001 - Ax raises ValueError, AssertionError, UserInputError ...
        message = f"Ax refused it: {exc}"
        raise spec.source.fail(_ax_culprit(spec.experiment), message) from None


def _new_client(experiment: ExperimentSpec, verbose: bool) -> Any:
    from ax.service.ax_client import AxClient
    from ax.service.utils.instantiation import ObjectiveProperties

    client = AxClient(random_seed=experiment.random_seed, verbose_logging=verbose)
    initial = experiment.initial_trials
    client.create_experiment(
        name=experiment.name,
        parameters=[dict(parameter) for parameter in experiment.parameters],
        objectives={
            metric: ObjectiveProperties(minimize=goal.minimize, threshold=goal.threshold)
            for metric, goal in experiment.objectives.items()
        },
        parameter_constraints=list(experiment.parameter_constraints) or None,
        outcome_constraints=list(experiment.outcome_constraints) or None,
        tracking_metric_names=list(experiment.tracking_metrics) or None,
        choose_generation_strategy_kwargs=(
            None if initial is None else {"num_initialization_trials": initial}
        ),
    )
    return client


def _ax_culprit(experiment: ExperimentSpec) -> Loc:
    """Which entry Ax objects to: each part alone, then the parts added one at a time."""
    from ax.service.utils.instantiation import InstantiationBase

    for index, parameter in enumerate(experiment.parameters):
        if _fails(InstantiationBase.parameter_from_json, dict(parameter)):
            return ("parameters", index)
    for loc, variant in _variants(experiment):
        if _fails(_new_client, variant, False):
            return loc
    return ()


def _variants(experiment: ExperimentSpec) -> Iterator[tuple[Loc, ExperimentSpec]]:
    bare = experiment.model_copy(update={"parameter_constraints": [], "outcome_constraints": []})
    yield ("objectives",), bare
    for key in ("parameter_constraints", "outcome_constraints"):
        for index, constraint in enumerate(getattr(experiment, key)):
            yield (key, index), bare.model_copy(update={key: [constraint]})


def _fails(fn: Callable[..., Any], *args: Any) -> bool:
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - any refusal
        return True
    return False
