"""run_optimization: keeps slots full, records every outcome, returns the best."""

from __future__ import annotations

import time
from typing import Any

import pytest

import objectives
from ax_scheduler import JobLibRunner, ObjectiveNotSetError, OptimizationStalledError
from conftest import experiment_of, legacy_client, modern_client, statuses


def test_runs_n_new_trials_and_returns_best_parameters(
    make_client: Any, scheduler_factory: Any
) -> None:
    client = make_client()
    scheduler = scheduler_factory(client, objective=objectives.rosenbrock_dict)

    best = scheduler.run_optimization(max_trials=6)
    best_again = scheduler.run_optimization(max_trials=2)

    experiment = experiment_of(client)
    assert set(statuses(client).values()) == {"COMPLETED"}
    assert len(experiment.trials) == 8
    values = {i: t.objective_mean for i, t in experiment.trials.items()}
    assert set(best_again) == {"x", "y"}
    assert objectives.rosenbrock(best_again) == min(values.values())
    assert objectives.rosenbrock(best) <= min(values[i] for i in range(6))


@pytest.mark.parametrize("objective", [objectives.rosenbrock_bare, objectives.rosenbrock_with_sem])
def test_bare_numbers_and_mean_sem_pairs_are_accepted(
    objective: Any, scheduler_factory: Any
) -> None:
    client = legacy_client()
    scheduler_factory(client, objective=objective).run_optimization(max_trials=2)
    assert set(statuses(client).values()) == {"COMPLETED"}


def test_keeps_every_slot_busy(scheduler_factory: Any) -> None:
    client = legacy_client()
    scheduler = scheduler_factory(client, JobLibRunner(n_jobs=4), objectives.slow_rosenbrock)
    scheduler.run_optimization(max_trials=4)  # warm the pool

    started = time.monotonic()
    scheduler.run_optimization(max_trials=8)
    elapsed = time.monotonic() - started

    # 8 trials of 0.3 s on 4 slots is 0.6 s when the slots never idle;
    # a scheduler running them one at a time would take 2.4 s.
    assert elapsed < 1.5


def test_failing_objective_marks_trial_failed_and_run_goes_on(
    scheduler_factory: Any, caplog: Any
) -> None:
    client = legacy_client()
    scheduler = scheduler_factory(client, objective=objectives.fails_when_x_negative)

    with scheduler.batch_trial_context() as batch:
        batch.add_trial({"x": -1.0, "y": 0.0})
        batch.add_trial({"x": 1.0, "y": 1.0})
    scheduler.run_optimization(max_trials=3)

    trials = experiment_of(client).trials
    assert trials[0].status.name == "FAILED"
    assert trials[0].status_reason == "ZeroDivisionError: simulated crash at x=-1.0"
    assert trials[0].run_metadata["ax_scheduler"]["failure_reason"] == trials[0].status_reason
    assert trials[1].status.name == "COMPLETED"
    assert len(trials) == 5
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "ax_scheduler")
    assert "trial 0 failed" in logged
    assert 'raise ZeroDivisionError(f"simulated crash' in logged  # the worker's traceback


@pytest.mark.parametrize(
    ("x", "reason"),
    [
        (-1.0, "objective result is missing metric 'objective'"),
        (-0.5, "metric 'objective': value must be finite, got nan"),
        (0.0, "metric 'objective': value must be a number, got 'high' (str)"),
    ],
)
def test_bad_results_fail_the_trial_naming_metric_and_value(
    x: float, reason: str, scheduler_factory: Any
) -> None:
    client = legacy_client()
    scheduler = scheduler_factory(client, objective=objectives.returns_by_x)
    with scheduler.batch_trial_context() as batch:
        batch.add_trial({"x": x, "y": 0.0})
        batch.add_trial({"x": 1.0, "y": 1.0})  # extra unknown key: kept going, ignored

    trials = experiment_of(client).trials
    assert trials[0].status.name == "FAILED"
    assert reason in trials[0].status_reason
    assert trials[1].status.name == "COMPLETED"
    assert set(experiment_of(client).lookup_data().df["metric_name"]) == {"objective"}


def test_dead_worker_fails_only_its_trial_and_pool_recovers(scheduler_factory: Any) -> None:
    client = legacy_client()
    scheduler = scheduler_factory(client, JobLibRunner(n_jobs=3), objectives.dies_when_x_negative)
    with scheduler.batch_trial_context() as batch:
        batch.add_trial({"x": 1.0, "y": 1.0})
        batch.add_trial({"x": -1.0, "y": 1.0})
        batch.add_trial({"x": 0.5, "y": 0.5})

    trials = experiment_of(client).trials
    assert [trials[i].status.name for i in range(3)] == ["COMPLETED", "FAILED", "COMPLETED"]
    assert (
        "worker process died while running trial 1 (exit code EXIT(13))" in trials[1].status_reason
    )

    with scheduler.batch_trial_context() as batch:  # the dead slot got a fresh worker
        for x in (0.1, 0.2, 0.3):
            batch.add_trial({"x": x, "y": 0.0})
    assert set(statuses(client).values()) == {"COMPLETED", "FAILED"}
    assert list(statuses(client).values()).count("COMPLETED") == 5


def test_segfault_in_objective_fails_only_that_trial(scheduler_factory: Any) -> None:
    client = legacy_client()
    scheduler = scheduler_factory(
        client, JobLibRunner(n_jobs=2), objectives.segfaults_when_x_negative
    )
    with scheduler.batch_trial_context() as batch:
        batch.add_trial({"x": -1.0, "y": 1.0})
        batch.add_trial({"x": 1.0, "y": 1.0})
    trials = experiment_of(client).trials
    assert trials[0].status.name == "FAILED"
    assert "SIGSEGV" in trials[0].status_reason
    assert trials[1].status.name == "COMPLETED"


def test_trial_timeout_kills_the_worker_and_fails_the_trial(scheduler_factory: Any) -> None:
    client = legacy_client()
    scheduler = scheduler_factory(client, objective=objectives.sleep_forever, trial_timeout=0.5)

    started = time.monotonic()
    scheduler.run_optimization(max_trials=2)

    assert time.monotonic() - started < 10
    trials = experiment_of(client).trials
    assert [t.status.name for t in trials.values()] == ["FAILED", "FAILED"]
    assert trials[0].status_reason == "timeout: trial 0 ran longer than trial_timeout=0.5 s"


def test_run_timeout_cancels_running_trials_and_returns(scheduler_factory: Any) -> None:
    client = legacy_client()
    scheduler = scheduler_factory(client, objective=objectives.sleep_forever)

    started = time.monotonic()
    best = scheduler.run_optimization(max_trials=5, timeout=0.5)

    assert time.monotonic() - started < 10
    assert best is None
    assert set(statuses(client).values()) == {"ABANDONED"}
    assert "timeout of 0.5 s" in experiment_of(client).trials[0].status_reason


def test_waits_when_ax_refuses_candidates_instead_of_crashing(scheduler_factory: Any) -> None:
    from ax.adapter.registry import Generators
    from ax.generation_strategy.generation_strategy import GenerationStep, GenerationStrategy

    strategy = GenerationStrategy(
        nodes=[GenerationStep(generator=Generators.SOBOL, num_trials=-1, max_parallelism=1)]
    )
    client = legacy_client(generation_strategy=strategy)
    scheduler = scheduler_factory(client, JobLibRunner(n_jobs=3), objectives.slow_rosenbrock)

    scheduler.run_optimization(max_trials=3)

    assert list(statuses(client).values()) == ["COMPLETED"] * 3


def test_stalls_with_a_clear_error_when_pending_trials_block_ax(scheduler_factory: Any) -> None:
    client = legacy_client(sobol=False)  # default strategy: BoTorch allows 3 pending
    scheduler = scheduler_factory(client, objective=objectives.rosenbrock_dict)
    for _ in range(5):
        client.get_next_trial()  # Sobol, never completed

    with pytest.raises(OptimizationStalledError, match="get_next_trial"):
        scheduler.run_optimization(max_trials=1)


def test_stops_when_the_generation_strategy_is_complete(scheduler_factory: Any) -> None:
    from ax.adapter.registry import Generators
    from ax.generation_strategy.generation_strategy import GenerationStep, GenerationStrategy

    strategy = GenerationStrategy(nodes=[GenerationStep(generator=Generators.SOBOL, num_trials=3)])
    client = legacy_client(generation_strategy=strategy)
    scheduler = scheduler_factory(client, objective=objectives.rosenbrock_dict)

    assert scheduler.run_optimization(max_trials=10) is not None
    assert list(statuses(client).values()) == ["COMPLETED"] * 3


def test_multi_objective_returns_pareto_parameterizations(scheduler_factory: Any) -> None:
    from ax.service.ax_client import ObjectiveProperties

    client = legacy_client(
        objectives={
            "a": ObjectiveProperties(minimize=True, threshold=20.0),
            "b": ObjectiveProperties(minimize=True, threshold=20.0),
        }
    )
    scheduler = scheduler_factory(client, objective=objectives.two_objectives)
    front = scheduler.run_optimization(max_trials=6)

    assert isinstance(front, list)
    assert front
    assert all(set(params) == {"x", "y"} for params in front)


def test_bare_number_for_multi_objective_fails_with_advice(scheduler_factory: Any) -> None:
    from ax.service.ax_client import ObjectiveProperties

    client = legacy_client(
        objectives={
            "a": ObjectiveProperties(minimize=True, threshold=20.0),
            "b": ObjectiveProperties(minimize=True, threshold=20.0),
        }
    )
    scheduler_factory(client, objective=objectives.rosenbrock_bare).run_optimization(max_trials=1)
    reason = experiment_of(client).trials[0].status_reason
    assert "needs metrics ['a', 'b']: return a dict like {'a': value, 'b': value}" in reason


def test_modern_client_multi_objective(scheduler_factory: Any) -> None:
    client = modern_client(objective="-a, -b", outcome_constraints=["a <= 20", "b <= 20"])
    front = scheduler_factory(client, objective=objectives.two_objectives).run_optimization(
        max_trials=4
    )
    assert isinstance(front, list)
    assert all(set(p) == {"x", "y"} for p in front)


def test_running_without_objective_is_a_clear_error(scheduler_factory: Any) -> None:
    scheduler = scheduler_factory(legacy_client())
    with pytest.raises(ObjectiveNotSetError, match="set_objective_function"):
        scheduler.run_optimization(max_trials=1)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_max_trials_must_be_a_count(scheduler_factory: Any, bad: Any) -> None:
    scheduler = scheduler_factory(legacy_client(), objective=objectives.rosenbrock_dict)
    with pytest.raises(ValueError, match=f"max_trials must be an int >= 0, got {bad!r}"):
        scheduler.run_optimization(max_trials=bad)


def test_lambdas_and_closures_run_in_worker_processes(scheduler_factory: Any) -> None:
    offset = 10.0
    client = legacy_client()
    scheduler = scheduler_factory(client, objective=lambda p: {"objective": p["x"] + offset})
    with scheduler.batch_trial_context() as batch:
        batch.add_trial({"x": 1.0, "y": 0.0})
    assert experiment_of(client).trials[0].objective_mean == 11.0


def test_unpicklable_objective_is_refused_when_set(scheduler_factory: Any) -> None:
    import threading

    lock = threading.Lock()
    scheduler = scheduler_factory(legacy_client())
    with pytest.raises(TypeError, match="cannot be pickled"):
        scheduler.set_objective_function(lambda p: {"objective": float(lock.locked())})


def test_a_run_whose_trials_keep_failing_stops_and_lists_every_failure(
    scheduler_factory: Any,
) -> None:
    from ax_scheduler import FailureRateExceededError

    client = legacy_client()
    scheduler = scheduler_factory(client, objective=objectives.always_fails)
    with pytest.raises(FailureRateExceededError) as raised:
        scheduler.run_optimization(max_trials=30)
    failures = raised.value.failures
    assert len(failures) >= 5  # Ax's default min_failed_trials_for_failure_rate_check
    assert all("solver diverged at x=" in reason for reason in failures.values())
    message = str(raised.value)
    assert "more than tolerated_failure_rate=0.5" in message
    assert all(f"trial {index}: RuntimeError: solver diverged" in message for index in failures)
    states = statuses(client)
    assert len(states) < 30  # stopped early, not after burning the whole budget
    assert set(states.values()) <= {"FAILED", "ABANDONED"}  # nothing left RUNNING
    # (a trial that failed while the others were being cancelled is FAILED too)
    assert set(failures) <= {i for i, s in states.items() if s == "FAILED"}


def test_failures_are_tolerated_below_the_minimum_count(scheduler_factory: Any) -> None:
    client = legacy_client()
    scheduler = scheduler_factory(
        client, objective=objectives.always_fails, min_failed_trials_for_failure_rate_check=7
    )
    scheduler.run_optimization(max_trials=6)  # every trial fails, but only 6 < 7 of them
    assert statuses(client) == dict.fromkeys(range(6), "FAILED")


def test_failure_rate_options_are_validated() -> None:
    from ax_scheduler import ConfigError, SchedulerConfig

    with pytest.raises(ConfigError, match="tolerated_failure_rate"):
        SchedulerConfig.from_user({"tolerated_failure_rate": 1.5})
    with pytest.raises(ConfigError, match="min_failed_trials_for_failure_rate_check"):
        SchedulerConfig.from_user({"min_failed_trials_for_failure_rate_check": 0})
