"""Loading an experiment file: checked, its runner built, its objective checked.

Every problem is reported as ``file:line: key: message`` (see :mod:`.yamlspec`):
the models' errors by pydantic's ``loc``, a runner constructor's by the option
it refuses, the objective's by the option whose check failed.

Relative paths in the file (the objective's module, script or volumes, the
checkpoint and ``job_output_dir``) are taken from the file's directory, so a run
does not depend on where the command was started.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from ..runners import Runner
from .models import RUNNER_MODELS, RUNNERS, ExperimentSpec
from .objective import check_objective
from .yamlspec import Problem, Source, check_duplicate_keys, parse_yaml, problems_of

#: The checkpoint a run writes when the file names none, next to the file.
DEFAULT_CHECKPOINT = "run.json"
#: Version of the ``spec`` the command stores in a checkpoint's header.
STORED_SPEC_VERSION = 1


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
        function: The objective function, imported, if the objective is one.
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

    def checkpoint_path(self) -> Path | str:
        """``config.checkpoint_path`` (a database URL as given), or ``run.json`` next to
        the file."""
        given = self.experiment.config.checkpoint_path
        if isinstance(given, str):  # the config keeps database URLs as strings
            return given
        return self.resolve(given if given is not None else DEFAULT_CHECKPOINT)

    def scheduler_config(self, checkpoint: Path | str) -> dict[str, Any]:
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


def checkpoint_target(given: str) -> Path | str:
    """``--checkpoint``: a database URL as given, else an absolute path."""
    from .._sqlstore import is_database_url

    return given if is_database_url(given) else absolute(given)


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


# -- loading --------------------------------------------------------------------------
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
        raise source.error(problems)
    assert runner is not None
    assert runner_options is not None
    spec = RunSpec(experiment, runner, runner_options, base_dir, source, file)
    spec.function = check_objective(spec)
    return spec


# -- the runner ---------------------------------------------------------------------------
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
    runner = RUNNERS[options.model_dump(include={"type"})["type"]]
    given = _given(options)
    try:
        return runner(**given)
    except (TypeError, ValueError) as exc:  # the constructor's own checks
        # Refused only together (no option is refused alone): the runner's problem.
        problems += _refused_alone(runner, options, given) or [Problem(("runner",), str(exc))]
        return None


def _given(options: BaseModel) -> dict[str, Any]:
    """The constructor arguments the file gives, in the constructor's order."""
    given = options.model_fields_set - {"type"}
    return {name: getattr(options, name) for name in type(options).model_fields if name in given}


def _refused_alone(
    runner: type[Runner], options: BaseModel, given: dict[str, Any]
) -> list[Problem]:
    """Each option the constructor refuses on its own, at its key, with its refusal.

    A constructor raises for the first argument it finds wrong; built with the
    required arguments and one more given option at a time, it tells which.
    """
    fields = type(options).model_fields
    required = {name: value for name, value in given.items() if fields[name].is_required()}
    refusal = _refusal(runner, required)
    if refusal is not None:
        key = tuple(required) if len(required) == 1 else ()
        return [Problem(("runner", *key), str(refusal))]
    problems = []
    for name, value in given.items():
        refusal = None if name in required else _refusal(runner, {**required, name: value})
        if refusal is not None:
            problems.append(Problem(("runner", name), str(refusal)))
    return problems


def _refusal(runner: type[Runner], arguments: dict[str, Any]) -> Exception | None:
    """What the constructor raises for ``arguments``, if it refuses them."""
    try:
        runner(**arguments)
    except (TypeError, ValueError) as exc:
        return exc
    return None
