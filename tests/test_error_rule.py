"""One rule for what is raised: a bad value is a ConfigError (a ValueError), a call
the API does not support a UsageError (a RuntimeError), whichever runner or method."""

from __future__ import annotations

from typing import Any

import pytest

import objectives
from ax_scheduler import (
    AxScheduler,
    ConfigError,
    DockerRunner,
    JobLibRunner,
    SlurmRunner,
    UsageError,
)
from ax_scheduler.testing import FakeRunner
from conftest import legacy_client


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: JobLibRunner(n_jobs=0), "n_jobs"),
        (lambda: JobLibRunner(n_jobs=2, backend="dask"), "backend"),
        (lambda: DockerRunner(max_parallel=0), "max_parallel"),
        (lambda: DockerRunner(command_timeout=float("nan")), "command_timeout"),
        (lambda: SlurmRunner(cpus_per_task=0), "cpus_per_task"),
        (lambda: SlurmRunner(time_limit="soon"), "time_limit"),
        (lambda: FakeRunner({}, capacity=0), "capacity"),
    ],
)
def test_bad_runner_arguments_are_config_errors_naming_them(make: Any, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        make()


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"max_trials": -1}, "max_trials"),
        ({"max_trials": True}, "max_trials"),
        ({"timeout": 0}, "timeout"),
        ({"on_timeout": "wait"}, "on_timeout"),
    ],
)
def test_bad_run_arguments_are_config_errors_naming_them(
    scheduler_factory: Any, arguments: dict[str, Any], named: str
) -> None:
    scheduler = scheduler_factory(legacy_client(), objective=objectives.rosenbrock)
    with pytest.raises(ConfigError, match=named):
        scheduler.run_optimization(**{"max_trials": 1, **arguments})


def test_bad_objective_options_are_config_errors(scheduler_factory: Any, tmp_path: Any) -> None:
    scheduler = scheduler_factory(legacy_client())
    with pytest.raises(ConfigError, match="container_image"):
        scheduler.set_container_objective("  ")
    script = tmp_path / "sim.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    with pytest.raises(ConfigError, match="unknown placeholder"):
        scheduler.set_script_objective(script, {"args": ["{param_file}"]})


def test_a_nested_batch_is_a_usage_error(scheduler_factory: Any) -> None:
    scheduler = scheduler_factory(legacy_client(), objective=objectives.rosenbrock)
    with scheduler.batch_trial_context(), pytest.raises(UsageError, match="cannot be nested"):
        with scheduler.batch_trial_context():
            pass


async def test_closing_a_loop_bound_scheduler_from_sync_code_is_a_usage_error() -> None:
    scheduler = AxScheduler(legacy_client(), JobLibRunner(n_jobs=1))
    scheduler.set_objective_function(objectives.rosenbrock)
    async with scheduler.batch_trial_context_async() as batch:
        batch.add_trial({"x": 0.5, "y": 0.5})
    with pytest.raises(UsageError, match="aclose"):
        scheduler.close()
    await scheduler.aclose()
