"""The experiment file's objective: imported or checked when the file is loaded, then set.

A script's or a container's options are checked one at a time, each with the
library's own check of it, so a refusal is reported at the key that was checked.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle

from .._config import ContainerOptions
from .._container import _check_volume, make_container_objective
from .._jobs import FunctionObjective, Objective
from .._script import _find_program, check_placeholders, make_script_objective
from .models import ContainerSpec, ScriptSpec
from .yamlspec import Loc, Source

if TYPE_CHECKING:
    from .spec import RunSpec

#: One option's check: its key, and a call that raises OSError or ValueError if it is wrong.
Check = tuple[str, Callable[[], object]]


def check_objective(spec: RunSpec) -> Callable[..., Any] | None:
    """Import the function, or check the script or container; the function if any.

    Raises:
        SpecError: The objective cannot be imported, an option of it is wrong, or
            the runner cannot run its kind.
    """
    objective = spec.experiment.objective
    function = None
    if objective.function is not None:
        function = import_function(objective.function, spec.base_dir, spec.source)
        checked: Objective = FunctionObjective(function)
    elif objective.script is not None:
        checked = _checked_script(spec, objective.script)
    else:
        assert objective.container is not None
        checked = _checked_container(spec, objective.container)
    accepted = spec.runner.objective_types
    if accepted and not isinstance(checked, accepted):
        kinds = ", ".join(kind.__name__ for kind in accepted)
        raise spec.source.fail(
            ("objective",),
            f"{spec.runner!r} cannot run a {type(checked).__name__}; it runs: {kinds}",
        )
    return function


def _checked_script(spec: RunSpec, script: ScriptSpec) -> Objective:
    path = spec.resolve(script.path)
    here = spec.runner.objectives_run_here  # else the runner looks where its jobs run
    # The script alone first: its interpreter and args are checked next, each on its own.
    alone = script.model_copy(update={"args": []})
    checks: list[Check] = [
        ("path", partial(make_script_objective, path, alone, find_interpreter=False))
    ]
    if here and script.interpreter is not None:
        checks.append(("interpreter", partial(_find_program, script.interpreter)))
    checks += [("args", partial(check_placeholders, arg)) for arg in script.args]
    loc: Loc = ("objective", "script")
    _run_checks(spec.source, loc, checks)
    with _refused_at(spec.source, loc):  # each option passed: cannot happen, but say where
        return make_script_objective(path, script, find_interpreter=here)


def _checked_container(spec: RunSpec, container: ContainerSpec) -> Objective:
    options = container_options(spec)
    here = spec.runner.objectives_run_here  # else the runner checks volumes where jobs run
    # The image alone, then with the command: volumes are checked next, each on its own.
    bare = options.model_copy(update={"volumes": {}})
    image, command = container.image, container.command
    checks: list[Check] = [
        ("image", partial(make_container_objective, image, None, bare, check_volumes=here)),
        ("command", partial(make_container_objective, image, command, bare, check_volumes=here)),
    ]
    checks += [
        ("volumes", partial(_check_volume, host, inside, here=here))
        for host, inside in options.volumes.items()
    ]
    loc: Loc = ("objective", "container")
    _run_checks(spec.source, loc, checks)
    with _refused_at(spec.source, loc):
        return make_container_objective(image, command, options, check_volumes=here)


def _run_checks(source: Source, loc: Loc, checks: list[Check]) -> None:
    """Run the checks in order; the first refusal is reported at its option's key."""
    for key, check in checks:
        with _refused_at(source, (*loc, key)):
            check()


@contextmanager
def _refused_at(source: Source, loc: Loc) -> Iterator[None]:
    """The library's refusal (OSError, ValueError) as a problem of the file at ``loc``."""
    try:
        yield
    except (OSError, ValueError) as exc:
        raise source.fail(loc, str(exc)) from None


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


# -- a function objective -----------------------------------------------------------------
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
