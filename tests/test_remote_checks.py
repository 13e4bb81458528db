"""Remote runners check remote things remotely, before any trial exists, and run the
objective that is set now: against the real Slurm cluster and sshd over real SSH.

- Uploads are keyed by content: a new objective never runs an earlier one's pickle,
  even when CPython hands it the freed objective's address (``id``).
- A batch checks the runner and objective first, ``synchronous`` or not: a bad
  partition or a missing container engine raises with no trial created.
- A script's interpreter and a container's engine are looked up where the jobs
  run, in the jobs' environment (Slurm: after ``modules`` and ``setup``; SSH: with
  the host's ``env``), not on the driver's PATH.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from ax_scheduler import AxScheduler, RunnerError, SlurmRunner, SSHRunner
from ax_scheduler._config import ContainerOptions
from ax_scheduler._container import make_container_objective
from cluster import TESTS, cluster_env, job_config, queue, ssh_options
from conftest import experiment_of, legacy_client, statuses, wait_until
from test_ssh import host

pytestmark = pytest.mark.slurm

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # closures travel by value

ROSENBROCK_SCRIPT = TESTS / "scripts" / "rosenbrock.py"
SCRIPT_ARGS = ["{params_file}", "{output_file}"]


@pytest.fixture(autouse=True)
def empty_queue_after() -> Iterator[None]:
    before = set(queue())
    yield
    assert wait_until(lambda: not (set(queue()) - before), 10), f"jobs left: {queue()}"


def constant(value: float) -> Callable[[dict[str, Any]], dict[str, float]]:
    def objective(parameters: dict[str, Any]) -> dict[str, float]:
        return {"objective": value}

    return objective


def slurm_runner(tmp_path: Path, partition: str | None = None, **config: Any) -> SlurmRunner:
    return SlurmRunner(
        partition=partition or cluster_env()["LOCALSLURM_PARTITION"],
        time_limit="00:05:00",
        memory="300M",
        config=job_config(tmp_path, **config),
        ssh=ssh_options(),
    )


def ssh_runner(tmp_path: Path, **overrides: Any) -> SSHRunner:
    return SSHRunner([host(tmp_path, **overrides)])


def private_bin(tmp_path: Path, **programs: str) -> Path:
    """A directory that is on no PATH, holding ``name -> target`` symlinks."""
    directory = tmp_path / "private bin"
    directory.mkdir(exist_ok=True)
    for name, target in programs.items():
        (directory / name.replace("_", "-")).symlink_to(target)
    return directory


def trial_values(client: Any) -> dict[int, float]:
    df = experiment_of(client).lookup_data().df
    return {int(row["trial_index"]): float(row["mean"]) for _, row in df.iterrows()}


# -- uploads ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["slurm", "ssh"])
def test_each_trial_runs_the_objective_set_when_it_started(tmp_path: Path, kind: str) -> None:
    # set f, g, h ... on one runner: each FunctionObjective replaced is freed, and
    # CPython gives its address to a later one (seen within three).
    runner = slurm_runner(tmp_path) if kind == "slurm" else ssh_runner(tmp_path)
    client = legacy_client()
    with AxScheduler(client, runner) as scheduler:
        for value in range(8):
            scheduler.set_objective_function(constant(float(value)))
            with scheduler.batch_trial_context() as batch:
                batch.add_trial({"x": value / 10, "y": 0.0})
    assert trial_values(client) == {value: float(value) for value in range(8)}


# -- checks before any trial exists -------------------------------------------------------
@pytest.mark.parametrize("synchronous", [True, False])
def test_a_bad_partition_is_refused_before_any_trial_exists(
    tmp_path: Path, synchronous: bool
) -> None:
    client = legacy_client()
    runner = slurm_runner(tmp_path, partition="physics")
    with AxScheduler(client, runner, {"synchronous": synchronous}) as scheduler:
        scheduler.set_objective_function(constant(1.0))
        with pytest.raises(RunnerError, match=r"sbatch refused the job options.*physics"):
            with scheduler.batch_trial_context() as batch:
                batch.add_trial({"x": 0.5, "y": 0.5})
        assert statuses(client) == {}


@pytest.mark.parametrize("synchronous", [True, False])
def test_a_missing_container_engine_is_refused_before_any_trial_exists(
    tmp_path: Path, synchronous: bool
) -> None:
    client = legacy_client()
    with AxScheduler(client, slurm_runner(tmp_path), {"synchronous": synchronous}) as scheduler:
        scheduler.set_container_objective("sim.sif", "run {output_file}", {"engine": "apptainer"})
        with pytest.raises(RunnerError, match="container engine 'apptainer' is not found"):
            with scheduler.batch_trial_context() as batch:
                batch.add_trial({"x": 0.5, "y": 0.5})
        assert statuses(client) == {}


# -- remote things, checked remotely ----------------------------------------------------
def test_a_slurm_script_interpreter_from_the_jobs_setup_is_found_and_used(
    tmp_path: Path,
) -> None:
    # The driver's PATH has no "axs-test-python"; the job's setup line puts it there.
    bin_dir = private_bin(tmp_path, axs_test_python=sys.executable)
    assert shutil.which("axs-test-python") is None
    setup = [f'export PATH="{bin_dir}:$PATH"', f"export PYTHONPATH={TESTS}"]
    client = legacy_client()
    with AxScheduler(client, slurm_runner(tmp_path, setup=setup)) as scheduler:
        scheduler.set_script_objective(
            ROSENBROCK_SCRIPT, {"interpreter": "axs-test-python", "args": SCRIPT_ARGS}
        )
        with scheduler.batch_trial_context() as batch:
            batch.add_trial({"x": 1.0, "y": 1.0})
    assert statuses(client) == {0: "COMPLETED"}
    assert trial_values(client) == {0: 0.0}


def test_a_slurm_script_interpreter_missing_on_the_cluster_is_refused_naming_it(
    tmp_path: Path,
) -> None:
    client = legacy_client()
    with AxScheduler(client, slurm_runner(tmp_path), {"synchronous": False}) as scheduler:
        scheduler.set_script_objective(
            ROSENBROCK_SCRIPT, {"interpreter": "axs-no-such-python", "args": SCRIPT_ARGS}
        )
        with pytest.raises(RunnerError) as raised:
            with scheduler.batch_trial_context() as batch:
                batch.add_trial({"x": 1.0, "y": 1.0})
        assert statuses(client) == {}
    message = str(raised.value)
    assert "interpreter 'axs-no-such-python' is not found" in message
    assert "module load" in message
    assert "setup" in message


async def test_a_container_engine_from_the_jobs_setup_is_found_on_the_cluster(
    tmp_path: Path,
) -> None:
    """A site that provides apptainer through its environment set-up is not refused."""
    bin_dir = private_bin(tmp_path, apptainer="/bin/true")
    container = make_container_objective(
        "sim.sif", "run", ContainerOptions.from_user({"engine": "apptainer"})
    )
    without = slurm_runner(tmp_path)
    with_setup = slurm_runner(tmp_path, setup=[f'export PATH="{bin_dir}:$PATH"'])
    try:
        await without.start()
        with pytest.raises(RunnerError, match=r"'apptainer' is not found.*jobs' environment"):
            await without.check_objective(container)
        await with_setup.start()
        await with_setup.check_objective(container)  # no error: the job would find it
    finally:
        await without.aclose()
        await with_setup.aclose()


def test_an_ssh_script_interpreter_on_the_hosts_path_is_found_and_used(tmp_path: Path) -> None:
    bin_dir = private_bin(tmp_path, axs_test_python=sys.executable)
    path = f"{bin_dir}:{os.environ['PATH']}"
    client = legacy_client()
    with AxScheduler(client, ssh_runner(tmp_path, env={"PATH": path})) as scheduler:
        scheduler.set_script_objective(
            ROSENBROCK_SCRIPT, {"interpreter": "axs-test-python", "args": SCRIPT_ARGS}
        )
        with scheduler.batch_trial_context() as batch:
            batch.add_trial({"x": 1.0, "y": 1.0})
    assert statuses(client) == {0: "COMPLETED"}


def test_an_ssh_script_interpreter_missing_on_the_host_is_refused_naming_it(
    tmp_path: Path,
) -> None:
    client = legacy_client()
    with AxScheduler(client, ssh_runner(tmp_path)) as scheduler:
        scheduler.set_script_objective(
            ROSENBROCK_SCRIPT, {"interpreter": "axs-no-such-python", "args": SCRIPT_ARGS}
        )
        with pytest.raises(RunnerError, match="interpreter 'axs-no-such-python' is not found"):
            with scheduler.batch_trial_context() as batch:
                batch.add_trial({"x": 1.0, "y": 1.0})
        assert statuses(client) == {}


def test_container_volumes_are_checked_on_the_cluster_not_on_the_driver(tmp_path: Path) -> None:
    bin_dir = private_bin(tmp_path, apptainer="/bin/true")
    runner = slurm_runner(tmp_path, setup=[f'export PATH="{bin_dir}:$PATH"'])
    client = legacy_client()
    with AxScheduler(client, runner) as scheduler:
        with pytest.raises(ValueError, match=r"'data' must be absolute.*where the jobs run"):
            scheduler.set_container_objective(
                "sim.sif", "run", {"engine": "apptainer", "volumes": {"data": "/data"}}
            )
        # A path the driver does not have is no error when the objective is set ...
        missing = "/cluster-only/axs-data"
        scheduler.set_container_objective(
            "sim.sif", "run", {"engine": "apptainer", "volumes": {missing: "/data"}}
        )
        # ... but the cluster does not have it either: refused before any trial.
        with pytest.raises(RunnerError, match=r"do not exist on .*cluster-only/axs-data"):
            with scheduler.batch_trial_context() as batch:
                batch.add_trial({"x": 1.0, "y": 1.0})
        assert statuses(client) == {}
