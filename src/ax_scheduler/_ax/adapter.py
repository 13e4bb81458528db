"""The adapter's common part: Ax's trial lifecycle, the same for both client APIs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ax.adapter.registry import Generators
from ax.api.client import Client
from ax.core.base_trial import BaseTrial
from ax.core.data import Data
from ax.core.trial_status import TrialStatus
from ax.exceptions.core import DataRequiredError, OptimizationComplete, OptimizationShouldStop
from ax.exceptions.generation_strategy import MaxParallelismReachedException
from ax.generation_strategy.generation_node import GenerationNode
from ax.service.ax_client import AxClient
from ax.utils.common.random import with_rng_seed

from .._results import MetricSpec, MetricValues, ax_raw_data
from .._runmetadata import RUN_METADATA_KEY
from .parameters import Parameters, validate_parameters
from .snapshot import SnapshotEncoder


def first_line(text: str) -> str:
    """Ax's messages run over several lines; logs and summaries take the first."""
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else text


#: Ax generators whose candidates do not depend on trial results.
DATA_FREE_GENERATORS = frozenset({Generators.SOBOL, Generators.UNIFORM})


@dataclass(frozen=True)
class Generated:
    """What one generation request produced.

    Attributes:
        trials: ``(trial_index, parameters)`` of new trials, already RUNNING in Ax.
        exhausted: Ax will never produce more (generation strategy completed).
        blocked: Why Ax produced nothing now but may after more data, or None.
        stopped: Why Ax will produce no more (with ``exhausted``): its generation
            strategy completed, or its global-stopping strategy ended the run.
        data_free: Ax's next candidates will not depend on trial results (its
            current generator is quasi-random), so generating them early loses nothing.
    """

    trials: list[tuple[int, Parameters]]
    exhausted: bool = False
    blocked: str | None = None
    data_free: bool = False
    stopped: str | None = None


class AxAdapter:
    """Blocking operations on an Ax client, the same for both client APIs.

    Attributes:
        client_type: ``"AxClient"`` or ``"Client"`` (what a checkpoint rebuilds).
    """

    client_type = ""

    def __init__(self, client: AxClient | Client) -> None:
        self.client = client
        self._encoder = SnapshotEncoder()
        #: Trials changed through this adapter since :meth:`take_touched` (for
        #: stores that save only what changed).
        self._touched: set[int] = set()

    def take_touched(self) -> set[int]:
        """The trials changed since the last call (and forget them)."""
        touched, self._touched = self._touched, set()
        return touched

    def touch(self, indices: Any) -> None:
        """Count ``indices`` as changed again (a store that failed to save them)."""
        self._touched.update(indices)

    def _changed(self, *indices: int) -> None:
        """Trials this adapter changed past the client's own calls.

        A client with a database of its own (``db_settings``, ``storage_config``)
        saves them now, as its own calls save theirs: its database then holds
        every state change, the scheduler's included.
        """
        self._touched.update(indices)
        trials = [self.experiment.trials[index] for index in indices]
        self.client._save_or_update_trials_in_db_if_possible(
            experiment=self.experiment, trials=trials
        )

    def _encode_pair(self, experiment: Any, strategy: Any) -> tuple[Any, Any]:
        return self._encoder.encode_pair(experiment, strategy)

    @staticmethod
    def wrap(client: Any) -> AxAdapter:
        """Pick the adapter for ``client``.

        Raises:
            TypeError: ``client`` is neither Ax client.
        """
        from .clients import LegacyAdapter, ModernAdapter  # they derive from this class

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
    def generate(self, n: int, first: bool = False) -> Generated:
        """Ask Ax for up to ``n`` new trials (RUNNING, not yet dispatched).

        All ``n`` come from ONE generation-strategy call, as Ax's Orchestrator
        asks for its free slots: pending points, data and deduplication are then
        worked out once, and a model is fitted once, not once per candidate
        (measured with Sobol, 8 candidates after 200 trials: 7 ms each jointly
        against 31 ms one by one; after 1,000: 25 against 67). While the
        generator learns from data (BoTorch), a ``first`` call gives ONE trial:
        a candidate costs a model fit and an optimization (0.3 s and more), and
        the first free slot should not wait for the last one's candidate.

        Args:
            n: How many trials are wanted now.
            first: The first call since slots freed (the scheduler waited).
        """
        if first and not self._generates_without_data():
            n = 1
        try:
            trials, exhausted = self._generate(n)
        except (MaxParallelismReachedException, DataRequiredError) as exc:
            return Generated([], blocked=f"{type(exc).__name__}: {exc}")
        except OptimizationShouldStop as exc:
            message = first_line(str(exc.message or exc))
            return Generated(
                [], exhausted=True, stopped=f"Ax's global stopping strategy: {message}"
            )
        except OptimizationComplete:
            return Generated([], exhausted=True, stopped="Ax's generation strategy is complete")
        if not trials and not exhausted:
            return Generated([], blocked="Ax's generation strategy produced no trial now")
        self._touched.update(index for index, _ in trials)
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
        if n > 1:
            return self._generate_jointly(n), False
        return self._generate_one(), False

    def _generate_one(self) -> list[tuple[int, Parameters]]:
        """One trial from the client's own call (which raises what blocks it)."""
        raise NotImplementedError

    def _generate_jointly(self, n: int) -> list[tuple[int, Parameters]]:
        """Up to ``n`` trials (fewer at a generation node's trial limit) from one
        ``GenerationStrategy.gen`` call: what the modern client's
        ``get_next_trials`` does, without its warning when the limit clips ``n``.

        It saves to the client's database (``storage_config`` / ``db_settings``),
        as the client's own calls do.
        """
        strategy = self._generation_strategy_or_choose()
        with with_rng_seed(seed=self.client._random_seed):
            runs = strategy.gen(experiment=self.experiment, n=1, num_trials=n)
        trials = []
        for generator_runs in runs:
            trial = self.experiment.new_trial(generator_run=generator_runs[0])
            trial.mark_running(no_runner_required=True)
            trials.append(trial)
        self.client._save_generation_strategy_to_db_if_possible(generation_strategy=strategy)
        self.client._save_or_update_trials_in_db_if_possible(
            experiment=self.experiment, trials=trials
        )
        return [(trial.index, dict(trial.arm.parameters)) for trial in trials]

    def _generation_strategy_or_choose(self) -> Any:
        """The generation strategy, chosen by the client if it has none yet."""
        return self._generation_strategy()

    def attach(self, parameters: Parameters) -> int:
        """Attach a user-specified trial (RUNNING in Ax) and return its index."""
        index = self._attach(parameters)
        self._touched.add(index)
        return index

    def _attach(self, parameters: Parameters) -> int:
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
        self._changed(index)

    def complete(self, index: int, values: MetricValues, progression: float | None = None) -> None:
        """Attach the trial's data (at ``progression``, its last reported step) and
        mark it COMPLETED."""
        if self.trial(index).status.is_terminal:
            return
        self._complete(index, ax_raw_data(values), progression)
        self._touched.add(index)  # the client's complete_trial saved it

    def _complete(self, index: int, raw: dict[str, Any], progression: float | None) -> None:
        raise NotImplementedError

    # -- intermediate data and early stopping ----------------------------------------------
    def attach_progress(self, batch: Mapping[int, list[tuple[float, MetricValues]]]) -> None:
        """Attach running trials' reports as their curves: trial -> ``(step, values)``.

        The same for both clients (what ``attach_data(progression=...)`` and
        ``update_running_trial_with_intermediate_data`` do), in ONE
        ``Experiment.attach_data`` for every trial of the batch: each attach
        rebuilds the experiment's data, and ``Trial.update_trial_data`` also
        builds a DataFrame per call only to log unknown metrics at debug level
        (19 ms a trial, measured), while the values here are already checked
        against the experiment's metrics. A step reported again replaces the
        earlier value.
        """
        parts, attached = [], []
        for index, reports in batch.items():
            trial: Any = self.trial(index)  # a Trial: one arm
            if trial.status.is_terminal or not reports or trial.arm is None:
                continue
            raw = [(step, ax_raw_data(values)) for step, values in reports]
            parts.append(trial._raw_evaluations_to_data(raw_data={trial.arm.name: raw}))
            attached.append(index)
        if parts:
            self.experiment.attach_data(Data.from_multiple_data(parts))
            self._changed(*attached)

    def client_early_stopping_strategy(self) -> Any:
        """The early-stopping strategy set on the client itself, or None."""
        raise NotImplementedError

    def should_stop(self, strategy: Any, indices: set[int]) -> dict[int, str]:
        """Which of the RUNNING ``indices`` ``strategy`` stops now, and why.

        The strategy is asked directly, for all of them at once (the modern
        client's ``should_stop_trial_early`` asks about one trial and installs a
        default strategy when none is set).
        """
        running = {i for i in indices if self.trial(i).status == TrialStatus.RUNNING}
        if not running:
            return {}
        node = getattr(self._generation_strategy(), "_curr", None)
        decided = strategy.should_stop_trials_early(
            trial_indices=running, experiment=self.experiment, current_node=node
        )
        return {
            int(i): str(reason or "stopped by the early-stopping strategy")
            for i, reason in decided.items()
        }

    def should_stop_optimization(self, strategy: Any) -> str | None:
        """Why the global-stopping ``strategy`` ends the run now, or None."""
        stop, message = strategy.should_stop_optimization(experiment=self.experiment)
        return f"global stopping: {first_line(message)}" if stop else None

    def completed_count(self) -> int:
        """How many trials are COMPLETED (cheap: Ax keeps them by status)."""
        return len(self.experiment.trial_indices_by_status[TrialStatus.COMPLETED])

    def has_data(self, index: int) -> bool:
        """Whether the trial has any data (Ax refuses EARLY_STOPPED without)."""
        return self._has_data(index)

    def early_stop(self, index: int, reason: str) -> None:
        """Mark the trial EARLY_STOPPED (it has data), keeping the reason."""
        trial = self.trial(index)
        if trial.status.is_terminal:
            return
        self._note(trial, early_stop_reason=reason)
        trial.mark_early_stopped()
        self._changed(index)

    def progress_steps(self) -> dict[int, float]:
        """The last reported step of each trial with curve data (for a resumed run)."""
        df = self.experiment.lookup_data().full_df
        if df.empty or "step" not in df.columns:
            return {}
        steps = df.dropna(subset=["step"]).groupby("trial_index")["step"].max()
        return {int(i): float(s) for i, s in steps.items()}

    def fail(self, index: int, reason: str) -> None:
        """Mark the trial FAILED, keeping the reason in Ax (status_reason, run metadata)."""
        trial = self.trial(index)
        if trial.status.is_terminal:
            return
        self._note(trial, failure_reason=reason)
        trial.mark_failed(reason=reason)
        self._changed(index)

    def abandon(self, index: int, reason: str) -> None:
        """Mark the trial ABANDONED (cancelled before it produced a result)."""
        trial = self.trial(index)
        if trial.status.is_terminal:
            return
        self._note(trial, failure_reason=reason)
        trial.mark_abandoned(reason=reason)
        self._changed(index)

    def note(self, index: int, **info: Any) -> None:
        """Add ``info`` (job id, host, log paths) to the trial's run metadata."""
        if info:
            self._note(self.trial(index), **info)
            self._changed(index)

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
