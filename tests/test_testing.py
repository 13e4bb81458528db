"""ax_scheduler.testing: FakeRunner and FakeClock run whole campaigns in virtual time."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import objectives
from ax_scheduler import AxScheduler, InfrastructureError, Runner, testing
from ax_scheduler.testing import FakeClock, FakeRunner
from conftest import experiment_of, legacy_client, statuses

A = {"x": 0.5, "y": 0.5}
B = {"x": -0.5, "y": 0.5}


def rosenbrock_in_ten_seconds(parameters: dict[str, Any]) -> tuple[float, Any]:
    return 10.0, {"objective": objectives.rosenbrock(parameters)}


async def run_batch(runner: FakeRunner, clock: FakeClock, *points: dict[str, Any]) -> Any:
    client = legacy_client()
    async with AxScheduler(client, runner, {"max_retries": 1}, clock=clock) as scheduler:
        scheduler.set_objective_function(objectives.rosenbrock_dict)
        async with scheduler.batch_trial_context_async() as batch:
            for point in points:
                batch.add_trial(point)
    return client


def test_testing_exports_its_fakes_with_docstrings() -> None:
    assert {"FakeClock", "FakeRunner"} <= set(testing.__all__)
    assert issubclass(FakeRunner, Runner)
    assert "Example" in (FakeRunner.__doc__ or "")


def ask_and_tell(client: Any, trials: int) -> float:
    """Seconds Ax alone takes to generate and complete ``trials`` trials, one by one."""
    started = time.perf_counter()
    for _ in range(trials):
        parameters, index = client.get_next_trial()
        client.complete_trial(index, {"objective": (objectives.rosenbrock(parameters), None)})
    return time.perf_counter() - started


async def test_fifty_ten_second_trials_cost_no_more_real_time_than_ax_itself() -> None:
    # 500 s of trials in virtual time. What is left is Ax's own generating and
    # recording (about 30 ms a trial here, 80 ms on a loaded machine), measured
    # first with a bare ask/tell loop: a run must not cost much more than that.
    ax_alone = await asyncio.to_thread(ask_and_tell, legacy_client(), 50)
    clock = FakeClock()
    runner = FakeRunner(rosenbrock_in_ten_seconds, capacity=4, clock=clock)
    client = legacy_client()
    started = time.perf_counter()
    async with AxScheduler(client, runner, {"trial_timeout": 60}, clock=clock) as scheduler:
        scheduler.set_objective_function(objectives.rosenbrock_dict)
        best = await scheduler.run_optimization_async(max_trials=50)
    elapsed = time.perf_counter() - started

    assert statuses(client) == dict.fromkeys(range(50), "COMPLETED")
    assert set(best) == {"x", "y"}
    assert len(runner.calls) == 50
    assert 1 <= runner.max_concurrency <= 4
    assert clock.now() == 500  # ten virtual seconds a trial (FakeClock adds them up)
    assert elapsed < 2 * ax_alone + 0.5, f"{elapsed:.2f} s, Ax alone {ax_alone:.2f} s"


async def test_rows_are_played_in_order_per_parameterization_the_last_repeating() -> None:
    clock = FakeClock()
    rows = [
        (A, 5, InfrastructureError("node lost")),
        (A, 5, {"objective": 1.0}),
        (B, 2, {"objective": 2.0}),
    ]
    runner = FakeRunner(rows, capacity=2, clock=clock)
    client = await run_batch(runner, clock, A, B, B)

    assert statuses(client) == {0: "COMPLETED", 1: "COMPLETED", 2: "COMPLETED"}
    assert [t.objective_mean for t in experiment_of(client).trials.values()] == [1.0, 2.0, 2.0]
    assert sorted(runner.calls, key=str) == sorted([A, A, B, B], key=str)
    assert sorted(clock.sleeps) == [1.0, 2, 2, 5, 5]  # the runs and one retry_delay


async def test_an_exception_outcome_fails_the_trial_as_a_failing_objective_would() -> None:
    clock = FakeClock()
    runner = FakeRunner([(A, 0, ValueError("diverged"))], clock=clock)
    client = await run_batch(runner, clock, A)
    trial = experiment_of(client).trials[0]
    assert trial.status.name == "FAILED"
    assert trial.status_reason == "ValueError: diverged"
    assert trial.run_metadata["ax_scheduler"]["failure_kind"] == "objective"


async def test_a_parameterization_without_a_row_fails_naming_its_parameters() -> None:
    clock = FakeClock()
    runner = FakeRunner([(A, 0, {"objective": 1.0})], clock=clock)
    client = await run_batch(runner, clock, B)
    reason = experiment_of(client).trials[0].status_reason
    assert "FakeRunner has no row for the parameters {'x': -0.5, 'y': 0.5}" in reason


async def test_cancelling_a_run_cancels_its_fake_jobs() -> None:
    # The real clock: the hour-long jobs end only by being cancelled.
    runner = FakeRunner(lambda parameters: (3600.0, {"objective": 0.0}), capacity=2)
    client = legacy_client()
    async with AxScheduler(client, runner) as scheduler:
        scheduler.set_objective_function(objectives.rosenbrock_dict)
        run = asyncio.create_task(scheduler.run_optimization_async(max_trials=4))
        while runner.running < 2:  # noqa: ASYNC110 - a counter, not an event
            await asyncio.sleep(0.01)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
    assert set(statuses(client).values()) == {"ABANDONED"}
    assert runner.running == 0
    assert len(runner.cancelled) == 2  # the two that held a slot
    assert runner.max_concurrency == 2


def test_capacity_must_be_a_positive_count() -> None:
    with pytest.raises(ValueError, match="capacity must be an int >= 1, got 0"):
        FakeRunner(rosenbrock_in_ten_seconds, capacity=0)
