"""The objective a user sets, made and checked for the runner that will run it."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import cloudpickle

from ._config import ContainerOptions, ScriptOptions
from ._container import make_container_objective
from ._jobs import FunctionObjective, Objective
from ._script import make_script_objective
from .runners._base import Runner


def function_objective(fn: Callable[[dict[str, Any]], Any], runner: Runner) -> Objective:
    """``fn`` as an objective ``runner`` can send where it runs trials.

    Raises:
        TypeError: ``fn`` is not callable, or cannot be pickled for a runner that
            sends it to worker processes.
    """
    if not callable(fn):
        raise TypeError(f"objective_fn must be callable, got {fn!r}")
    objective = FunctionObjective(fn)
    if runner.needs_pickling and not objective.is_async:
        _check_picklable(fn, runner)
    return accepted_by(runner, objective)


def script_objective(
    path: str | os.PathLike[str], options: Mapping[str, Any] | None, runner: Runner
) -> Objective:
    """A script objective, its interpreter looked up here if ``runner`` runs it here."""
    checked = ScriptOptions.from_user(options)
    here = runner.objectives_run_here  # else the runner looks where its jobs run
    return accepted_by(runner, make_script_objective(path, checked, find_interpreter=here))


def container_objective(
    image: str,
    command: str | list[str] | None,
    options: Mapping[str, Any] | None,
    runner: Runner,
) -> Objective:
    """A container objective, its volumes checked here if ``runner`` runs it here."""
    checked = ContainerOptions.from_user(options)
    here = runner.objectives_run_here  # else the runner checks volumes where jobs run
    return accepted_by(
        runner, make_container_objective(image, command, checked, check_volumes=here)
    )


def accepted_by(runner: Runner, objective: Objective) -> Objective:
    """``objective``, if ``runner`` runs its kind.

    Raises:
        TypeError: It does not.
    """
    accepted = runner.objective_types
    if accepted and not isinstance(objective, accepted):
        kinds = ", ".join(kind.__name__ for kind in accepted)
        raise TypeError(f"{runner!r} cannot run a {type(objective).__name__}; it runs: {kinds}")
    return objective


def _check_picklable(fn: Callable[..., Any], runner: Runner) -> None:
    try:
        cloudpickle.dumps(fn)
    except Exception as exc:
        raise TypeError(
            f"objective {getattr(fn, '__qualname__', fn)!r} cannot be pickled to send to"
            f" {runner!r}'s worker processes ({type(exc).__name__}: {exc}); define it at"
            " module level without unpicklable captured state"
        ) from exc
