"""batch_trial_context: validation, ordering, duplicates, synchronous and not."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

import objectives
from ax_scheduler import InvalidParametersError
from conftest import experiment_of, legacy_client, statuses

POINTS = [
    {"x": 0.5, "y": 0.5},
    {"x": -0.5, "y": 0.5},
    {"x": 0.5, "y": -0.5},
    {"x": -0.5, "y": -0.5},
]


def test_batch_trials_are_attached_in_add_order_and_recorded(
    make_client: Any, scheduler_factory: Any
) -> None:
    client = make_client()
    scheduler = scheduler_factory(client, objective=objectives.rosenbrock_dict)

    with scheduler.batch_trial_context() as batch:
        for point in POINTS:
            batch.add_trial(point)

    experiment = experiment_of(client)
    assert batch.trial_indices == [0, 1, 2, 3]
    assert [experiment.trials[i].arm.parameters for i in range(4)] == POINTS
    assert [experiment.trials[i].objective_mean for i in range(4)] == [6.5, 8.5, 56.5, 58.5]
    assert set(statuses(client).values()) == {"COMPLETED"}


def test_batch_runs_in_parallel_up_to_capacity(scheduler_factory: Any) -> None:
    from ax_scheduler import JobLibRunner

    client = legacy_client()
    scheduler = scheduler_factory(client, JobLibRunner(n_jobs=4), objectives.slow_rosenbrock)
    scheduler.run_optimization(max_trials=4)  # starts the workers

    started = time.monotonic()
    with scheduler.batch_trial_context() as batch:
        for point in POINTS:
            batch.add_trial(point)
    elapsed = time.monotonic() - started

    assert elapsed < 4 * 0.3  # four 0.3 s trials side by side, not one after another


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"x": 0.5, "z": 1.0}, "unknown parameter 'z'"),
        ({"x": 0.5}, "missing parameter 'y'"),
        ({"x": 3.0, "y": 0.0}, "'x' = 3.0 is out of bounds [-2.0, 2.0]"),
        ({"x": "0.5", "y": 0.0}, "'x' must be a float, got '0.5' (str)"),
        ({"x": True, "y": 0.0}, "'x' must be a float, got True (bool)"),
        ({"x": float("nan"), "y": 0.0}, "'x' must be finite"),
        ([0.5, 0.5], "parameters must be a dict"),
    ],
)
def test_add_trial_rejects_bad_parameters_at_once_and_attaches_nothing(
    scheduler_factory: Any, params: Any, message: str
) -> None:
    client = legacy_client()
    scheduler = scheduler_factory(client, objective=objectives.rosenbrock_dict)

    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        with scheduler.batch_trial_context() as batch:
            batch.add_trial({"x": 0.1, "y": 0.1})
            batch.add_trial(params)

    assert isinstance(raised.value, InvalidParametersError)
    assert experiment_of(client).trials == {}


def test_int_values_are_accepted_for_float_parameters(scheduler_factory: Any) -> None:
    client = legacy_client()
    scheduler = scheduler_factory(client, objective=objectives.rosenbrock_dict)
    with scheduler.batch_trial_context() as batch:
        batch.add_trial({"x": 1, "y": 1})
    assert experiment_of(client).trials[0].objective_mean == 0.0


def test_batch_is_dropped_when_body_raises(scheduler_factory: Any) -> None:
    client = legacy_client()
    scheduler = scheduler_factory(client, objective=objectives.rosenbrock_dict)

    with pytest.raises(KeyError, match="user bug"), scheduler.batch_trial_context() as batch:
        batch.add_trial({"x": 0.5, "y": 0.5})
        raise KeyError("user bug")

    assert experiment_of(client).trials == {}
    with scheduler.batch_trial_context() as batch:  # the scheduler is still usable
        batch.add_trial({"x": 0.5, "y": 0.5})
    assert statuses(client) == {0: "COMPLETED"}


def test_nested_batches_are_refused(scheduler_factory: Any) -> None:
    scheduler = scheduler_factory(legacy_client(), objective=objectives.rosenbrock_dict)
    with pytest.raises(RuntimeError, match="cannot be nested"), scheduler.batch_trial_context():
        with scheduler.batch_trial_context():
            pass


def test_trials_from_get_next_trial_are_run_not_duplicated(
    make_client: Any, scheduler_factory: Any
) -> None:
    client = make_client()
    scheduler = scheduler_factory(client, objective=objectives.rosenbrock_dict)

    with scheduler.batch_trial_context() as batch:
        for _ in range(3):
            if hasattr(client, "get_next_trial"):
                parameters, _index = client.get_next_trial()
            else:
                ((_index, parameters),) = client.get_next_trials(max_trials=1).items()
            batch.add_trial(parameters)
        batch.add_trial(dict(parameters))  # the same point again: a new trial

    assert batch.trial_indices == [0, 1, 2, 3]
    assert len(experiment_of(client).trials) == 4
    assert set(statuses(client).values()) == {"COMPLETED"}


def test_unsynchronous_batch_returns_at_once_and_wait_completes_it(scheduler_factory: Any) -> None:
    from ax_scheduler import JobLibRunner

    client = legacy_client()
    scheduler = scheduler_factory(
        client, JobLibRunner(n_jobs=2), objectives.one_second_rosenbrock, synchronous=False
    )

    with scheduler.batch_trial_context() as batch:
        for point in POINTS:
            batch.add_trial(point)

    # returned before even the first 1 s trial could finish
    assert scheduler.running_trials == [0, 1, 2, 3]
    assert set(statuses(client).values()) == {"RUNNING"}

    assert scheduler.wait_for_completed_trials() == [0, 1, 2, 3]
    assert set(statuses(client).values()) == {"COMPLETED"}
    assert scheduler.running_trials == []


def test_unsynchronous_trials_progress_between_sync_calls(scheduler_factory: Any) -> None:
    client = legacy_client()
    scheduler = scheduler_factory(client, objective=objectives.slow_rosenbrock, synchronous=False)
    with scheduler.batch_trial_context() as batch:
        batch.add_trial({"x": 0.5, "y": 0.5})

    deadline = time.monotonic() + 20
    while statuses(client)[0] != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(0.05)  # no scheduler call: the loop thread runs on its own
    assert statuses(client)[0] == "COMPLETED"


def test_wait_for_completed_trials_timeout_leaves_trials_running(scheduler_factory: Any) -> None:
    client = legacy_client()
    scheduler = scheduler_factory(client, objective=objectives.sleep_forever, synchronous=False)
    with scheduler.batch_trial_context() as batch:
        batch.add_trial({"x": 0.5, "y": 0.5})

    with pytest.raises(TimeoutError, match=r"1 trials still running after 0.2 s: \[0\]"):
        scheduler.wait_for_completed_trials(timeout=0.2)
    assert statuses(client) == {0: "RUNNING"}

    scheduler.close()
    assert statuses(client) == {0: "ABANDONED"}
    assert "closed" in experiment_of(client).trials[0].status_reason
