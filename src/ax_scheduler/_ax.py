"""The one place that knows Ax's two client APIs.

``ax.service.ax_client.AxClient`` (legacy, the tutorial's) and ``ax.api.client.Client``
(modern) differ in how they generate, complete and serialize; everything else in
ax-scheduler talks to :class:`AxAdapter`. Adapter methods are blocking and must be
called from the scheduler's single Ax thread (see ``_axthread``), never from the loop.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from ax.adapter.registry import Generators
from ax.api.client import Client
from ax.core.base_trial import BaseTrial
from ax.core.data import Data
from ax.core.experiment import Experiment
from ax.core.parameter import ChoiceParameter, FixedParameter, ParameterType, RangeParameter
from ax.core.search_space import SearchSpace
from ax.core.trial_status import TrialStatus
from ax.exceptions.core import DataRequiredError, OptimizationComplete
from ax.exceptions.generation_strategy import MaxParallelismReachedException
from ax.generation_strategy.generation_node import GenerationNode
from ax.service.ax_client import AxClient
from ax.storage.json_store.decoder import object_from_json
from ax.storage.json_store.encoder import object_to_json
from ax.storage.json_store.encoders import experiment_to_dict
from ax.storage.json_store.registry import CORE_CLASS_ENCODER_REGISTRY, CORE_ENCODER_REGISTRY
from ax.storage.utils import data_to_data_by_trial

from ._exceptions import InvalidParametersError
from ._results import MetricSpec, MetricValues, ax_raw_data
from ._runmetadata import RUN_METADATA_KEY as RUN_METADATA_KEY  # cli.running imports it here

#: Ax generators whose candidates do not depend on trial results.
DATA_FREE_GENERATORS = frozenset({Generators.SOBOL, Generators.UNIFORM})

Parameters = dict[str, Any]


@dataclass(frozen=True)
class Generated:
    """What one generation request produced.

    Attributes:
        trials: ``(trial_index, parameters)`` of new trials, already RUNNING in Ax.
        exhausted: Ax will never produce more (generation strategy completed).
        blocked: Why Ax produced nothing now but may after more data, or None.
        data_free: Ax's next candidates will not depend on trial results (its
            current generator is quasi-random), so generating them early loses nothing.
    """

    trials: list[tuple[int, Parameters]]
    exhausted: bool = False
    blocked: str | None = None
    data_free: bool = False


class AxAdapter:
    """Blocking operations on an Ax client, the same for both client APIs.

    Attributes:
        generates_jointly: Whether asking for n trials in one call is cheaper than
            n calls (one model fit for all). If not, the scheduler asks for one at
            a time and dispatches each as soon as it exists.
    """

    generates_jointly = False

    def __init__(self, client: AxClient | Client) -> None:
        self.client = client
        self._data_json: dict[tuple[Any, ...], Any] = {}  # see _trial_data_json

    # Ax's snapshot re-encodes every trial's data each time: it splits the
    # experiment's data into per-trial DataFrames and builds, sorts and encodes
    # each (about 7 ms a trial: 8 s for a snapshot of 1,000 trials, and twice,
    # as the generation strategy embeds the experiment too). A trial's encoding
    # only changes with its data rows, so it is computed once per distinct rows.
    def _trial_data_json(self, rows: list[Any]) -> Any:
        key = tuple(tuple(vars(row).values()) for row in rows)
        encoded = self._data_json.get(key)
        if encoded is None:
            (by_timestamp,) = data_to_data_by_trial(Data(data_rows=rows)).values()
            encoded = self._data_json[key] = object_to_json(by_timestamp)
        return encoded

    def _encode_experiment(self, experiment: Experiment) -> dict[str, Any]:
        """``experiment_to_dict``, with each trial's data encoding cached."""
        if type(experiment) is not Experiment:  # a subclass: Ax's own way
            return CORE_ENCODER_REGISTRY[type(experiment)](experiment)
        encoded = experiment_to_dict(cast(Experiment, _WithoutData(experiment)))
        rows_by_trial: dict[int, list[Any]] = {}
        for row in experiment.data._data_rows:
            rows_by_trial.setdefault(row.trial_index, []).append(row)
        encoded["data_by_trial"] = {
            index: self._trial_data_json(rows) for index, rows in sorted(rows_by_trial.items())
        }
        return encoded

    def _to_json(self, obj: Any) -> Any:
        registry = {**CORE_ENCODER_REGISTRY, Experiment: self._encode_experiment}
        return object_to_json(
            obj, encoder_registry=registry, class_encoder_registry=CORE_CLASS_ENCODER_REGISTRY
        )

    def _encode_pair(self, experiment: Experiment, strategy: Any) -> tuple[Any, Any]:
        """The experiment's and the generation strategy's JSON.

        The strategy embeds the same experiment (its top-level ``experiment``):
        that part is encoded once and shared, not walked a second time.
        """
        encoded = self._to_json(experiment)
        if strategy is None:
            return encoded, None
        stubs: list[Any] = []

        def stub(embedded: Experiment) -> dict[str, Any]:
            stubs.append(embedded)
            return {"__type": "ax_scheduler.shared_experiment"}

        registry = {**CORE_ENCODER_REGISTRY, Experiment: stub}
        strategy_json = object_to_json(
            strategy, encoder_registry=registry, class_encoder_registry=CORE_CLASS_ENCODER_REGISTRY
        )
        if stubs != [experiment] or not isinstance(strategy_json.get("experiment"), dict):
            return encoded, self._to_json(strategy)  # embedded elsewhere: Ax's full way
        strategy_json["experiment"] = encoded
        return encoded, strategy_json

    @staticmethod
    def wrap(client: Any) -> AxAdapter:
        """Pick the adapter for ``client``.

        Raises:
            TypeError: ``client`` is neither Ax client.
        """
        if isinstance(client, AxClient):
            return LegacyAdapter(client)
        if isinstance(client, Client):
            return ModernAdapter(client)
        raise TypeError(
            "AxScheduler needs an ax.service.ax_client.AxClient or an ax.api.client.Client"
            f" with an experiment, got {type(client).__module__}.{type(client).__qualname__}"
        )

    # -- experiment facts (cheap, read-only) ------------------------------------
    @property
    def experiment(self) -> Any:
        raise NotImplementedError

    @property
    def experiment_name(self) -> str:
        return str(self.experiment.name or "experiment")

    def metric_spec(self) -> MetricSpec:
        """The metrics a trial result must contain (the optimization config's)."""
        config = self.experiment.optimization_config
        required = tuple(sorted(config.metric_names)) if config is not None else ()
        optional = frozenset(self.experiment.metrics) - set(required)
        return MetricSpec(required=required, optional=optional)

    @property
    def is_multi_objective(self) -> bool:
        config = self.experiment.optimization_config
        return bool(config is not None and config.is_moo_problem)

    def validate_parameters(self, parameters: Any) -> Parameters:
        """Check ``parameters`` against the search space; return them normalized."""
        return validate_parameters(self.experiment.search_space, parameters)

    # -- trial lifecycle ----------------------------------------------------------
    def generate(self, n: int) -> Generated:
        """Ask Ax for up to ``n`` new trials (RUNNING, not yet dispatched)."""
        try:
            trials, exhausted = self._generate(n)
        except (MaxParallelismReachedException, DataRequiredError) as exc:
            return Generated([], blocked=f"{type(exc).__name__}: {exc}")
        except OptimizationComplete:
            return Generated([], exhausted=True)
        if not trials and not exhausted:
            return Generated([], blocked="Ax's generation strategy produced no trial now")
        return Generated(trials, exhausted=exhausted, data_free=self._generates_without_data())

    def _generation_strategy(self) -> Any:
        raise NotImplementedError

    def _generates_without_data(self) -> bool:
        """Whether Ax's current generation node ignores data (Sobol, uniform)."""
        node = getattr(self._generation_strategy(), "current_node", None)
        specs = getattr(node, "generator_specs", None)
        if type(node) is not GenerationNode or not specs:
            return False  # a custom or external node: assume it learns from data
        return all(getattr(spec, "generator_enum", None) in DATA_FREE_GENERATORS for spec in specs)

    def _generate(self, n: int) -> tuple[list[tuple[int, Parameters]], bool]:
        raise NotImplementedError

    def attach(self, parameters: Parameters) -> int:
        """Attach a user-specified trial (RUNNING in Ax) and return its index."""
        raise NotImplementedError

    def find_undispatched_trial(self, parameters: Parameters) -> int | None:
        """A trial created by the user's own ``get_next_trial`` with these parameters.

        Such a trial is RUNNING in Ax, has no data and was never run by a scheduler.
        """
        for index, trial in self.experiment.trials.items():
            if trial.status != TrialStatus.RUNNING:
                continue
            if RUN_METADATA_KEY in trial.run_metadata or trial.arm is None:
                continue
            if trial.arm.parameters == parameters and not self._has_data(index):
                return int(index)
        return None

    def _has_data(self, index: int) -> bool:
        return not self.experiment.lookup_data(trial_indices=[index]).df.empty

    def mark_dispatched(self, index: int, info: Mapping[str, Any]) -> None:
        """Record in the trial's run metadata that a scheduler runs it, and how."""
        self.trial(index).update_run_metadata({RUN_METADATA_KEY: dict(info)})

    def complete(self, index: int, values: MetricValues) -> None:
        """Attach the trial's data and mark it COMPLETED."""
        if self.trial(index).status.is_terminal:
            return
        self.client.complete_trial(trial_index=index, raw_data=ax_raw_data(values))

    def fail(self, index: int, reason: str) -> None:
        """Mark the trial FAILED, keeping the reason in Ax (status_reason, run metadata)."""
        trial = self.trial(index)
        if trial.status.is_terminal:
            return
        self._note(trial, failure_reason=reason)
        trial.mark_failed(reason=reason)

    def abandon(self, index: int, reason: str) -> None:
        """Mark the trial ABANDONED (cancelled before it produced a result)."""
        trial = self.trial(index)
        if trial.status.is_terminal:
            return
        self._note(trial, failure_reason=reason)
        trial.mark_abandoned(reason=reason)

    def note(self, index: int, **info: Any) -> None:
        """Add ``info`` (job id, host, log paths) to the trial's run metadata."""
        if info:
            self._note(self.trial(index), **info)

    def _note(self, trial: BaseTrial, **info: Any) -> None:
        current = dict(trial.run_metadata.get(RUN_METADATA_KEY, {}))
        current.update(info)
        trial.update_run_metadata({RUN_METADATA_KEY: current})

    def trial(self, index: int) -> BaseTrial:
        trial: BaseTrial = self.experiment.trials[index]
        return trial

    def stale_dispatched_trials(self) -> list[int]:
        """Trials a scheduler dispatched that never finished (the driver died)."""
        return [
            int(index)
            for index, trial in self.experiment.trials.items()
            if trial.status == TrialStatus.RUNNING and RUN_METADATA_KEY in trial.run_metadata
        ]

    # -- results and persistence -------------------------------------------------
    def best(self) -> Parameters | list[Parameters] | None:
        """Best parameters, or the Pareto set for multi-objective; None without data."""
        if not self._completed_with_data():
            return None
        if self.is_multi_objective:
            return self._pareto()
        return self._best()

    def _completed_with_data(self) -> bool:
        completed = self.experiment.trial_indices_by_status[TrialStatus.COMPLETED]
        return bool(completed) and not self.experiment.lookup_data(trial_indices=completed).df.empty

    def _best(self) -> Parameters | None:
        raise NotImplementedError

    def _pareto(self) -> list[Parameters]:
        raise NotImplementedError

    def snapshot(self) -> dict[str, Any]:
        """A JSON-safe snapshot of client, experiment and generation strategy."""
        raise NotImplementedError

    def snapshot_json(self) -> str:
        return json.dumps(self.snapshot())


class _WithoutData:
    """An experiment seen without its data, for ``experiment_to_dict``.

    The encoder reads ``experiment.__class__.__name__`` and attributes; this view
    passes all of them through except ``data``, which is empty, so Ax skips the
    per-trial data encoding that :class:`AxAdapter` does itself (cached).
    """

    data = Data()

    def __init__(self, experiment: Experiment) -> None:
        self._wrapped = experiment

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self._wrapped)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


class LegacyAdapter(AxAdapter):
    """``ax.service.ax_client.AxClient``."""

    client: AxClient
    # get_next_trials(n) is n get_next_trial() calls: asking for one at a time
    # dispatches the first candidate without waiting for the n-th.
    generates_jointly = False

    @property
    def experiment(self) -> Any:
        return self.client.experiment

    def _generate(self, n: int) -> tuple[list[tuple[int, Parameters]], bool]:
        # get_next_trials(n) is these n calls plus two generation-limit checks that
        # walk every trial (2 ms each at 1,500 trials); get_next_trial raises what
        # they would report, and is caught here or in generate().
        trials: list[tuple[int, Parameters]] = []
        try:
            for _ in range(n):
                parameters, index = self.client.get_next_trial()
                trials.append((index, dict(parameters)))
        except (MaxParallelismReachedException, DataRequiredError, OptimizationComplete):
            if not trials:
                raise
        return trials, False

    def _generation_strategy(self) -> Any:
        return self.client._generation_strategy

    def attach(self, parameters: Parameters) -> int:
        _, index = self.client.attach_trial(parameters=parameters)
        return index

    def _best(self) -> Parameters | None:
        best = self.client.get_best_parameters()
        return None if best is None else dict(best[0])

    def _pareto(self) -> list[Parameters]:
        frontier = self.client.get_pareto_optimal_parameters()
        return [dict(params) for params, _ in frontier.values()]

    def snapshot(self) -> dict[str, Any]:
        # What AxClient.to_json_snapshot() writes, encoded faster (_encode_pair).
        experiment, strategy = self._encode_pair(self.experiment, self.client._generation_strategy)
        return {
            "_type": "AxClient",
            "experiment": experiment,
            "generation_strategy": strategy,
            "_enforce_sequential_optimization": self.client._enforce_sequential_optimization,
        }


class ModernAdapter(AxAdapter):
    """``ax.api.client.Client``."""

    client: Client
    # get_next_trials(n) is one GenerationStrategy.gen(num_trials=n) call, but in
    # Ax 1.3 that optimizes each candidate in turn (the model fit is shared, as it
    # is between single calls on unchanged data): measured on 2 cores, 4 BoTorch
    # candidates took 0.87-1.32 s jointly against 1.06-1.07 s one by one, and
    # jointly the first one waits for the last. So: one at a time here too.
    generates_jointly = False

    @property
    def experiment(self) -> Any:
        return self.client._experiment

    def _generate(self, n: int) -> tuple[list[tuple[int, Parameters]], bool]:
        trials = self.client.get_next_trials(max_trials=n)
        return [(index, dict(params)) for index, params in trials.items()], False

    def _generation_strategy(self) -> Any:
        return self.client._maybe_generation_strategy

    def attach(self, parameters: Parameters) -> int:
        return self.client.attach_trial(parameters=parameters)

    def _best(self) -> Parameters | None:
        params, *_ = self.client.get_best_parameterization()
        return dict(params)

    def _pareto(self) -> list[Parameters]:
        return [dict(params) for params, *_ in self.client.get_pareto_frontier()]

    def snapshot(self) -> dict[str, Any]:
        # What Client._to_json_snapshot() writes, encoded faster (_encode_pair).
        experiment, strategy = self._encode_pair(
            self.client._experiment, self.client._maybe_generation_strategy
        )
        return {"_type": "Client", "experiment": experiment, "generation_strategy": strategy}


def client_from_snapshot(snapshot: dict[str, Any]) -> AxClient | Client:
    """Rebuild the client a snapshot was written from.

    Accepts what :meth:`AxAdapter.snapshot` writes for either client, and a bare
    experiment written by Ax's ``json_store.save_experiment`` (loaded into a
    legacy ``AxClient`` with a default generation strategy).
    """
    kind = snapshot.get("_type") or snapshot.get("__type")
    if kind == "Client":
        return Client._from_json_snapshot(snapshot=snapshot)
    if kind == "AxClient":
        return AxClient.from_json_snapshot(serialized=dict(snapshot))
    if kind == "Experiment":
        client = AxClient()
        client._set_experiment(experiment=object_from_json(snapshot))
        client._set_generation_strategy()
        return client
    raise ValueError(
        f"not an ax-scheduler or Ax JSON snapshot: its type is {kind!r};"
        " expected 'AxClient', 'Client' or 'Experiment'"
    )


def validate_parameters(space: SearchSpace, parameters: Any) -> Parameters:
    """Check a parameterization against a search space with messages naming the culprit.

    Returns:
        The parameters, with ints widened to float for float parameters.

    Raises:
        InvalidParametersError: Unknown or missing names, wrong types, out of bounds,
            not one of the choices, or a parameter constraint violated.
    """
    if not isinstance(parameters, Mapping):
        raise InvalidParametersError(
            f"parameters must be a dict of name -> value, got {type(parameters).__name__}"
        )
    known = space.parameters
    unknown = [name for name in parameters if name not in known]
    if unknown:
        raise InvalidParametersError(
            f"unknown parameter {unknown[0]!r} (value {parameters[unknown[0]]!r});"
            f" the search space has: {', '.join(known)}"
        )
    missing = [name for name in known if name not in parameters]
    if missing:
        raise InvalidParametersError(
            f"missing parameter {missing[0]!r}; every trial needs: {', '.join(known)}"
        )
    checked = {name: _check_value(known[name], value) for name, value in parameters.items()}
    try:
        space.check_membership(checked, raise_error=True)
    except ValueError as exc:
        raise InvalidParametersError(f"parameters {checked!r} are not allowed: {exc}") from None
    return checked


def _check_value(parameter: Any, value: Any) -> Any:
    name = parameter.name
    if isinstance(parameter, RangeParameter):
        number = _range_number(parameter, value)
        if not parameter.lower <= number <= parameter.upper:
            raise InvalidParametersError(
                f"parameter {name!r} = {value!r} is out of bounds"
                f" [{parameter.lower}, {parameter.upper}]"
            )
        return number
    if isinstance(parameter, ChoiceParameter) and value not in parameter.values:
        raise InvalidParametersError(
            f"parameter {name!r} = {value!r} is not one of its choices {parameter.values!r}"
        )
    if isinstance(parameter, FixedParameter) and value != parameter.value:
        raise InvalidParametersError(
            f"parameter {name!r} is fixed to {parameter.value!r}, got {value!r}"
        )
    return value


def _range_number(parameter: RangeParameter, value: Any) -> int | float:
    is_int = parameter.parameter_type == ParameterType.INT
    expected = "an int" if is_int else "a float"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParametersError(
            f"parameter {parameter.name!r} must be {expected},"
            f" got {value!r} ({type(value).__name__})"
        )
    if is_int:
        if not isinstance(value, numbers.Integral) and not float(value).is_integer():
            raise InvalidParametersError(
                f"parameter {parameter.name!r} must be an int, got {value!r}"
            )
        return int(value) if isinstance(value, numbers.Integral) else int(float(value))
    if not math.isfinite(value):
        raise InvalidParametersError(f"parameter {parameter.name!r} must be finite, got {value!r}")
    return float(value)
