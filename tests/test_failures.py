"""Failure handling: infrastructure failures retried, objective failures not, and
what a trial's and a run's timeout do to running trials."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import objectives
from ax_scheduler import AxScheduler, InfrastructureError, JobLibRunner, ObjectiveError
from ax_scheduler.testing import FakeClock, FakeRunner
from conftest import experiment_of, legacy_client, statuses


def metadata(client: Any, index: int) -> dict[str, Any]:
    return dict(experiment_of(client).trials[index].run_metadata["ax_scheduler"])


def attempts(directory: Path) -> dict[str, int]:
    return {f.name: len(f.read_text().split()) for f in directory.iterdir()}


# -- with real worker processes ----------------------------------------------------
def test_a_worker_that_dies_once_is_retried_on_a_fresh_worker(
    scheduler_factory: Any, tmp_path: Path
) -> None:
    client = legacy_client()
    flaky = functools.partial(objectives.dies_on_first_attempt, str(tmp_path))
    scheduler = scheduler_factory(client, JobLibRunner(n_jobs=2), flaky, retry_delay=0.05)
    with scheduler.batch_trial_context() as batch:
        batch.add_trial({"x": 0.5, "y": 0.5})
        batch.add_trial({"x": -0.5, "y": 0.5})

    assert statuses(client) == {0: "COMPLETED", 1: "COMPLETED"}
    assert attempts(tmp_path) == {"0.500000": 2, "-0.500000": 2}
    for index in (0, 1):
        info = metadata(client, index)
        assert info["retries"] == 1
        assert "worker process died" in info["last_retry_reason"]


def test_a_trial_whose_worker_always_dies_fails_after_max_retries(scheduler_factory: Any) -> None:
    client = legacy_client()
    scheduler = scheduler_factory(
        client, JobLibRunner(n_jobs=2), objectives.dies_when_x_negative, retry_delay=0.05
    )
    with scheduler.batch_trial_context() as batch:
        batch.add_trial({"x": -1.0, "y": 1.0})
        batch.add_trial({"x": 1.0, "y": 1.0})

    assert statuses(client) == {0: "FAILED", 1: "COMPLETED"}
    reason = experiment_of(client).trials[0].status_reason
    assert "worker process died" in reason
    assert reason.endswith("(after 2 retries)")
    assert metadata(client, 0)["failure_kind"] == "infrastructure"
    assert metadata(client, 0)["retries"] == 2


def test_objective_failures_are_never_retried(scheduler_factory: Any, tmp_path: Path) -> None:
    client = legacy_client()
    scheduler = scheduler_factory(client, JobLibRunner(n_jobs=1), objectives.fails_when_x_negative)
    with scheduler.batch_trial_context() as batch:
        batch.add_trial({"x": -1.0, "y": 1.0})
    assert statuses(client) == {0: "FAILED"}
    info = metadata(client, 0)
    assert "retries" not in info
    assert info["failure_kind"] == "objective"
    assert "ZeroDivisionError: simulated crash at x=-1.0" in info["failure_reason"]


def test_trial_timeouts_are_classified_as_timeouts(scheduler_factory: Any) -> None:
    client = legacy_client()
    scheduler = scheduler_factory(client, objective=objectives.sleep_forever, trial_timeout=0.3)
    with scheduler.batch_trial_context() as batch:
        batch.add_trial({"x": 0.0, "y": 0.0})
    assert metadata(client, 0)["failure_kind"] == "timeout"
    assert metadata(client, 0)["failure_reason"].startswith("timeout: trial 0")


# -- the retry logic and trial timeouts, in virtual time ------------------------------
POINT = {"x": 1.0, "y": 1.0}


async def run_one(
    outcomes: Sequence[Any], delay: float = 0.0, **config: Any
) -> tuple[Any, FakeRunner, FakeClock]:
    """One trial at POINT whose successive runs end as ``outcomes`` say."""
    client = legacy_client()
    clock = FakeClock()
    runner = FakeRunner([(POINT, delay, outcome) for outcome in outcomes], clock=clock)
    async with AxScheduler(client, runner, config, clock=clock) as scheduler:
        scheduler.set_objective_function(objectives.rosenbrock_dict)
        async with scheduler.batch_trial_context_async() as batch:
            batch.add_trial(POINT)
    return client, runner, clock


async def test_retries_back_off_exponentially_and_then_give_up() -> None:
    lost = [InfrastructureError(f"node {n} failed") for n in range(4)]
    client, runner, clock = await run_one(lost, max_retries=3, retry_delay=2.0)
    assert runner.calls == [POINT] * 4
    assert clock.sleeps == [2.0, 4.0, 8.0]
    assert experiment_of(client).trials[0].status_reason == "node 3 failed (after 3 retries)"
    assert metadata(client, 0)["retries"] == 3
    assert metadata(client, 0)["last_retry_reason"] == "node 2 failed"
    assert metadata(client, 0)["failure_kind"] == "infrastructure"


async def test_a_retry_that_succeeds_completes_the_trial() -> None:
    client, runner, clock = await run_one([InfrastructureError("preempted"), {"objective": 0.0}])
    assert statuses(client) == {0: "COMPLETED"}
    assert clock.sleeps == [1.0]  # the default retry_delay
    assert runner.calls == [POINT] * 2
    assert metadata(client, 0)["last_retry_reason"] == "preempted"


@pytest.mark.parametrize(
    ("failure", "config"),
    [
        (InfrastructureError("gave up after 2 resubmissions", retryable=False), {}),
        (InfrastructureError("host down"), {"max_retries": 0}),
        (ObjectiveError("ValueError: bad input"), {}),
    ],
    ids=["runner-already-resubmitted", "max_retries-0", "objective-error"],
)
async def test_failures_that_are_not_retried(failure: Exception, config: dict[str, Any]) -> None:
    client, runner, clock = await run_one([failure], **config)
    assert runner.calls == [POINT]
    assert clock.sleeps == []
    assert experiment_of(client).trials[0].status_reason == str(failure)
    assert "retries" not in metadata(client, 0)


async def test_a_trial_longer_than_trial_timeout_is_stopped_at_the_timeout() -> None:
    client, runner, clock = await run_one([{"objective": 0.0}], delay=3600, trial_timeout=30)
    assert statuses(client) == {0: "FAILED"}
    assert metadata(client, 0)["failure_reason"] == (
        "timeout: trial 0 ran longer than trial_timeout=30 s"
    )
    assert metadata(client, 0)["failure_kind"] == "timeout"
    assert runner.cancelled == [POINT]  # the job was stopped, not left running
    assert clock.sleeps == [3600]  # in virtual time: the test took milliseconds


async def test_trial_timeout_counts_across_retries_and_their_back_off() -> None:
    # Runs of 3 s, each lost: 0-3 run, 3-7 back-off, 7-10 run: the 10 s are up.
    lost = InfrastructureError("node lost")
    client, runner, clock = await run_one(
        [lost], delay=3, trial_timeout=10, retry_delay=4, max_retries=5
    )
    assert metadata(client, 0)["failure_kind"] == "timeout"
    assert runner.calls == [POINT] * 2
    assert runner.cancelled == [POINT]
    assert clock.sleeps == [3, 4, 3]
    assert clock.now() == 10


# -- a run's timeout -----------------------------------------------------------------
@pytest.mark.parametrize("on_timeout", ["cancel", "finish"])
def test_run_timeout_cancels_or_lets_running_trials_finish(
    scheduler_factory: Any, tmp_path: Path, on_timeout: str
) -> None:
    client = legacy_client()
    counted = functools.partial(objectives.one_second_counted, str(tmp_path))
    scheduler = scheduler_factory(client, JobLibRunner(n_jobs=2), counted, prefetch_trials=0)
    scheduler.run_optimization(max_trials=6, timeout=0.5, on_timeout=on_timeout)

    summary = scheduler.last_run
    assert summary.timed_out
    assert summary.on_timeout == on_timeout
    assert summary.trials == [0, 1]  # no trial started after the timeout
    if on_timeout == "finish":
        assert statuses(client) == {0: "COMPLETED", 1: "COMPLETED"}
        assert summary.completed == [0, 1]
        assert summary.abandoned == {}
    else:
        assert statuses(client) == {0: "ABANDONED", 1: "ABANDONED"}
        assert set(summary.abandoned) == {0, 1}
        assert "timeout of 0.5 s reached" in summary.abandoned[0]


async def test_a_run_timeout_stops_starting_trials_in_virtual_time() -> None:
    # One slot, 100 s trials, a 250 s run: trials 0 and 1 end, trial 2 runs at 250 s
    # and is let finish (the cancelling variant is tested with real workers above:
    # a fake sleep that passes the deadline ends at once, before it can be cancelled).
    client = legacy_client()
    clock = FakeClock()
    runner = FakeRunner(lambda parameters: (100.0, {"objective": 1.0}), clock=clock)
    async with AxScheduler(client, runner, {"prefetch_trials": 0}, clock=clock) as scheduler:
        scheduler.set_objective_function(objectives.rosenbrock_dict)
        await scheduler.run_optimization_async(10, timeout=250, on_timeout="finish")
        summary = scheduler.last_run
    assert statuses(client) == dict.fromkeys(range(3), "COMPLETED")
    assert (summary.timed_out, summary.on_timeout, summary.trials) == (True, "finish", [0, 1, 2])
    assert clock.now() == 300


def test_a_run_without_timeout_says_so(scheduler_factory: Any) -> None:
    client = legacy_client()
    scheduler = scheduler_factory(client, objective=objectives.rosenbrock_dict)
    assert scheduler.last_run is None
    scheduler.run_optimization(max_trials=3)
    summary = scheduler.last_run
    assert (summary.timed_out, summary.on_timeout) == (False, None)
    assert summary.completed == [0, 1, 2]


def test_on_timeout_is_validated(scheduler_factory: Any) -> None:
    scheduler = scheduler_factory(legacy_client(), objective=objectives.rosenbrock_dict)
    with pytest.raises(ValueError, match=r"on_timeout must be 'cancel'.*or 'finish'.*got 'wait'"):
        scheduler.run_optimization(max_trials=1, timeout=1, on_timeout="wait")


def test_a_run_whose_every_trial_failed_says_so_and_returns_none(
    scheduler_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Three failures: below min_failed_trials_for_failure_rate_check (5), so the run
    # ends normally; its None must not be silent.
    client = legacy_client()
    scheduler = scheduler_factory(client, JobLibRunner(n_jobs=2), objectives.always_fails)
    with caplog.at_level("WARNING", logger="ax_scheduler"):
        assert scheduler.run_optimization(max_trials=3) is None

    assert statuses(client) == {0: "FAILED", 1: "FAILED", 2: "FAILED"}
    (warning,) = [r for r in caplog.records if "no trial of this run completed" in r.message]
    assert warning.levelname == "WARNING"
    assert "3 failed, 0 abandoned, of 3" in warning.message
    assert "returns None" in warning.message
    for index in range(3):
        assert f"trial {index}: RuntimeError" in warning.message
    assert sorted(scheduler.last_run.failed) == [0, 1, 2]


def test_a_run_with_a_completed_trial_does_not_warn(
    scheduler_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = scheduler_factory(legacy_client(), JobLibRunner(n_jobs=2), objectives.rosenbrock)
    with caplog.at_level("WARNING", logger="ax_scheduler"):
        assert scheduler.run_optimization(max_trials=2) is not None
    assert not [r for r in caplog.records if "no trial of this run completed" in r.message]
