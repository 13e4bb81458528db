"""The Ax client of an experiment file, and which entry of the file Ax refuses.

Ax is imported here only when a client is made, after the file was checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .models import ExperimentSpec
from .yamlspec import Loc

if TYPE_CHECKING:
    from .spec import RunSpec


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
