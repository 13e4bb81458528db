"""How the scheduler asks Ax for candidates: one call for a wave of free slots while
Ax's generator ignores data (Sobol), one trial per call while it learns (BoTorch),
and the same trials Ax's own ask loop would give."""

from __future__ import annotations

from typing import Any

import pytest

from ax_scheduler import JobLibRunner
from conftest import legacy_client, modern_client, sobol_only, statuses
from objectives import fails_when_x_negative, rosenbrock, slow_rosenbrock


@pytest.fixture
def gen_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of trials each GenerationStrategy.gen call produced."""
    from ax.generation_strategy.generation_strategy import GenerationStrategy

    produced: list[int] = []
    original = GenerationStrategy.gen

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        runs = original(self, *args, **kwargs)
        produced.append(len(runs))
        return runs

    monkeypatch.setattr(GenerationStrategy, "gen", counted)
    return produced


@pytest.mark.parametrize("kind", ["legacy", "modern"])
def test_a_wave_of_free_slots_costs_one_ax_call_under_sobol(
    scheduler_factory: Any, gen_calls: list[int], kind: str
) -> None:
    client = legacy_client() if kind == "legacy" else modern_client()
    scheduler = scheduler_factory(client, JobLibRunner(n_jobs=4), slow_rosenbrock)
    scheduler.run_optimization(max_trials=12)
    # The first call fills the 4 free slots and the one prefetched candidate.
    assert gen_calls[0] == 5, gen_calls
    assert sum(gen_calls) == 12
    # One per trial would be 12 calls; waves of 4 ending together need about 3.
    assert len(gen_calls) <= 6, gen_calls


def test_a_generator_that_learns_gives_the_first_free_slot_its_own_call(
    scheduler_factory: Any, gen_calls: list[int]
) -> None:
    from ax.adapter.registry import Generators
    from ax.generation_strategy.generation_strategy import GenerationStep, GenerationStrategy

    strategy = GenerationStrategy(
        nodes=[
            GenerationStep(generator=Generators.SOBOL, num_trials=2),
            GenerationStep(generator=Generators.BOTORCH_MODULAR, num_trials=-1),
        ]
    )
    client = legacy_client(generation_strategy=strategy)
    scheduler = scheduler_factory(client, JobLibRunner(n_jobs=3), rosenbrock)
    scheduler.run_optimization(max_trials=5)
    kinds = [
        trial.generator_run._generator_key for _, trial in sorted(client.experiment.trials.items())
    ]
    assert kinds == ["Sobol"] * 2 + ["BoTorch"] * 3
    # Sobol's two come at once (its trial limit clips the wave of 4). BoTorch's
    # first comes alone, dispatched before the others' candidates are made; the
    # slots still free then share one call (one model fit).
    assert gen_calls[:2] == [2, 1], gen_calls
    assert sum(gen_calls) == 5
    assert len(gen_calls) < 5, gen_calls


@pytest.mark.parametrize("kind", ["legacy", "modern"])
def test_a_seeded_run_gets_the_trials_of_axs_own_ask_loop(
    scheduler_factory: Any, kind: str
) -> None:
    def seeded() -> Any:
        if kind == "legacy":
            return legacy_client(random_seed=7, generation_strategy=sobol_only())
        return modern_client()  # seeded: Client(random_seed=0)

    by_hand = seeded()
    if kind == "legacy":
        expected = [by_hand.get_next_trial()[0] for _ in range(9)]
    else:
        expected = [by_hand.get_next_trials(max_trials=1).popitem()[1] for _ in range(9)]
    client = seeded()
    scheduler_factory(client, JobLibRunner(n_jobs=4), rosenbrock).run_optimization(max_trials=9)
    experiment = client.experiment if kind == "legacy" else client._experiment
    got = [trial.arm.parameters for _, trial in sorted(experiment.trials.items())]
    assert got == expected


def test_the_legacy_clients_global_stopping_is_judged_for_a_joint_call() -> None:
    from ax.exceptions.core import OptimizationShouldStop

    from ax_scheduler._ax import AxAdapter

    class StopNow:
        def should_stop_optimization(self, experiment: Any) -> tuple[bool, str]:
            return True, "enough"

    client = legacy_client(global_stopping_strategy=StopNow())
    adapter = AxAdapter.wrap(client)
    generated = adapter.generate(4)
    assert generated.trials == []
    assert generated.stopped == "Ax's global stopping strategy: enough"
    with pytest.raises(OptimizationShouldStop):
        client.get_next_trial()  # what the joint call must agree with
    assert client.experiment.trials == {}


def test_every_trial_change_reaches_the_clients_own_database(
    scheduler_factory: Any, tmp_path: Any
) -> None:
    from ax.storage.sqa_store.db import (
        create_all_tables,
        get_engine,
        init_engine_and_session_factory,
    )
    from ax.storage.sqa_store.load import load_experiment
    from ax.storage.sqa_store.structs import DBSettings

    url = f"sqlite:///{tmp_path / 'ax.db'}"
    init_engine_and_session_factory(url=url, force_init=True)
    create_all_tables(get_engine())
    # Seeded: the same Sobol points every time, some with x < 0 (they fail).
    client = legacy_client(db_settings=DBSettings(url=url), random_seed=1)
    runner, objective = JobLibRunner(n_jobs=4), fails_when_x_negative
    scheduler = scheduler_factory(client, runner, objective, tolerated_failure_rate=1.0)
    scheduler.run_optimization(max_trials=6)
    stored = load_experiment("test_experiment")
    # What the scheduler changes past the client's own calls is saved too: the
    # failures with their reasons, each trial's job in its run metadata.
    assert {i: t.status.name for i, t in stored.trials.items()} == statuses(client)
    assert "FAILED" in statuses(client).values()
    for index, trial in stored.trials.items():
        ours = client.experiment.trials[index]
        assert trial.status_reason == ours.status_reason
        assert trial.run_metadata["ax_scheduler"] == ours.run_metadata["ax_scheduler"]
