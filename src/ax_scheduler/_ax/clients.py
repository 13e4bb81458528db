"""The two Ax client APIs: the legacy ``AxClient`` and the modern ``Client``."""

from __future__ import annotations

from typing import Any

from ax.api.client import Client
from ax.exceptions.core import OptimizationShouldStop
from ax.service.ax_client import AxClient

from .adapter import AxAdapter
from .parameters import Parameters


class LegacyAdapter(AxAdapter):
    """``ax.service.ax_client.AxClient``."""

    client: AxClient
    client_type = "AxClient"

    @property
    def experiment(self) -> Any:
        return self.client.experiment

    def _generate_one(self) -> list[tuple[int, Parameters]]:
        # get_next_trial raises what blocks it (caught in generate()); it also
        # judges the client's global-stopping strategy, as _generate_jointly does.
        parameters, index = self.client.get_next_trial()
        return [(index, dict(parameters))]

    def _generate_jointly(self, n: int) -> list[tuple[int, Parameters]]:
        # AxClient.get_next_trials(n) is n get_next_trial() calls; the one call
        # here must judge the client's global-stopping strategy as each of them does.
        strategy = self.client.global_stopping_strategy
        if strategy is not None:
            stop, message = strategy.should_stop_optimization(experiment=self.experiment)
            if stop:
                raise OptimizationShouldStop(message=message)
        return super()._generate_jointly(n)

    def _generation_strategy(self) -> Any:
        return self.client._generation_strategy

    def _attach(self, parameters: Parameters) -> int:
        _, index = self.client.attach_trial(parameters=parameters)
        return index

    def client_early_stopping_strategy(self) -> Any:
        return self.client.early_stopping_strategy

    def _complete(self, index: int, raw: dict[str, Any], progression: float | None) -> None:
        # update_running_trial_with_intermediate_data's form: [(progression, data)]
        data: Any = raw if progression is None else [(progression, raw)]
        self.client.complete_trial(trial_index=index, raw_data=data)

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
    client_type = "Client"

    @property
    def experiment(self) -> Any:
        return self.client._experiment

    def _generate_one(self) -> list[tuple[int, Parameters]]:
        trials = self.client.get_next_trials(max_trials=1)
        return [(index, dict(params)) for index, params in trials.items()]

    def _generation_strategy(self) -> Any:
        return self.client._maybe_generation_strategy

    def _generation_strategy_or_choose(self) -> Any:
        return self.client._generation_strategy_or_choose()

    def _attach(self, parameters: Parameters) -> int:
        return self.client.attach_trial(parameters=parameters)

    def client_early_stopping_strategy(self) -> Any:
        return self.client._maybe_early_stopping_strategy

    def _complete(self, index: int, raw: dict[str, Any], progression: float | None) -> None:
        step = (
            None
            if progression is None
            else int(progression)
            if progression.is_integer()
            else progression
        )
        self.client.complete_trial(trial_index=index, raw_data=raw, progression=step)  # type: ignore[arg-type]

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
