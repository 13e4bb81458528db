"""``cleanup_after_completion``: a completed trial's folder goes once its result is
safe; failed trials keep theirs. On every runner, with real processes, the real
Slurm cluster and sshd over SSH, and the real Docker engine."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import objectives
from ax_scheduler import AxScheduler, DockerRunner, JobLibRunner, SSHRunner
from conftest import experiment_of, legacy_client, statuses
from test_remote_checks import slurm_runner
from test_resume import checkpoint_statuses
from test_ssh import host

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # for the remote runners

POINTS = [{"x": 0.5, "y": 0.5}, {"x": -0.5, "y": 0.5}]  # the second fails

#: A script objective that fails (exit 3) for negative x, like fails_when_x_negative.
SCRIPT = """\
import json, sys
p = json.load(open(sys.argv[1]))
if p["x"] < 0:
    sys.exit("diverged")
json.dump({"objective": p["x"] ** 2}, open(sys.argv[2], "w"))
"""


def fails_when_x_negative(parameters: dict[str, Any]) -> dict[str, float]:
    if parameters["x"] < 0:
        raise ValueError(f"diverged at x={parameters['x']}")
    return {"objective": parameters["x"] ** 2}


def folders(client: Any) -> dict[int, str | None]:
    return {
        index: trial.run_metadata["ax_scheduler"].get("job_dir")
        for index, trial in experiment_of(client).trials.items()
    }


def run_two(runner: Any, objective: Any, **config: Any) -> tuple[Any, AxScheduler]:
    client = legacy_client()
    with AxScheduler(client, runner, {"cleanup_after_completion": True, **config}) as scheduler:
        objective(scheduler)
        with scheduler.batch_trial_context() as batch:
            for point in POINTS:
                batch.add_trial(point)
        assert statuses(client) == {0: "COMPLETED", 1: "FAILED"}
        table = scheduler.results()
    assert table["workdir"].isna().tolist() == [True, False]  # the removed one shows none
    return client, scheduler


def assert_completed_removed_failed_kept(client: Any) -> None:
    done, failed = folders(client)[0], folders(client)[1]
    assert done
    assert failed
    assert not Path(done).exists(), "the completed trial's folder is still there"
    assert (Path(failed) / "stderr.log").exists(), "the failed trial's folder must stay"


def test_local_function_trials(tmp_path: Path) -> None:
    client, _ = run_two(
        JobLibRunner(n_jobs=2),
        lambda s: s.set_objective_function(objectives.fails_when_x_negative),
        job_output_dir=str(tmp_path / "out"),
    )
    assert_completed_removed_failed_kept(client)
    assert (Path(folders(client)[1]) / "error.json").exists()


def script_objective(tmp_path: Path) -> Any:
    script = tmp_path / "sim.py"
    script.write_text(SCRIPT)
    options = {"interpreter": "python3", "args": ["{params_file}", "{output_file}"]}
    return lambda scheduler: scheduler.set_script_objective(script, options)


def test_local_script_trials(tmp_path: Path) -> None:
    client, _ = run_two(
        JobLibRunner(n_jobs=2), script_objective(tmp_path), job_output_dir=str(tmp_path / "out")
    )
    assert_completed_removed_failed_kept(client)


def test_without_the_option_every_folder_stays(tmp_path: Path) -> None:
    client = legacy_client()
    config = {"job_output_dir": str(tmp_path / "out")}
    with AxScheduler(client, JobLibRunner(n_jobs=2), config) as scheduler:
        scheduler.set_objective_function(objectives.fails_when_x_negative)
        with scheduler.batch_trial_context() as batch:
            for point in POINTS:
                batch.add_trial(point)
    assert all(Path(folder).is_dir() for folder in folders(client).values())


def test_a_folder_goes_only_once_the_checkpoint_on_disk_has_the_result(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    client, _ = run_two(
        JobLibRunner(n_jobs=2),
        lambda s: s.set_objective_function(objectives.fails_when_x_negative),
        job_output_dir=str(tmp_path / "out"),
        checkpoint_path=str(path),
    )
    assert_completed_removed_failed_kept(client)
    (done, done_info), (failed, failed_info) = checkpoint_statuses(path).values()
    assert (done, done_info.get("files_removed")) == ("COMPLETED", True)
    assert (failed, failed_info.get("files_removed")) == ("FAILED", None)


@pytest.mark.slurm
def test_slurm_trials_over_ssh(tmp_path: Path) -> None:
    runner = slurm_runner(tmp_path)
    client, _ = run_two(runner, lambda s: s.set_objective_function(fails_when_x_negative))
    assert_completed_removed_failed_kept(client)  # the cluster's filesystem is this one
    array = Path(folders(client)[1]).parent
    assert (array / "manifest.json").exists()  # the array's own files stay with the failure


@pytest.mark.slurm
def test_slurm_script_trials_over_ssh(tmp_path: Path) -> None:
    runner = slurm_runner(tmp_path)
    client, _ = run_two(runner, script_objective(tmp_path))
    assert_completed_removed_failed_kept(client)


@pytest.mark.slurm
def test_ssh_host_trials(tmp_path: Path) -> None:
    client, _ = run_two(
        SSHRunner([host(tmp_path)]), lambda s: s.set_objective_function(fails_when_x_negative)
    )
    assert_completed_removed_failed_kept(client)


@pytest.mark.docker
def test_docker_trials(tmp_path: Path) -> None:
    client, _ = run_two(
        DockerRunner(max_parallel=2),
        lambda s: s.set_container_objective(
            "localtest:latest",
            ["sh", "-c", CONTAINER_SCRIPT, "sh", "{params_file}", "{output_file}"],
        ),
        job_output_dir=str(tmp_path / "out"),
    )
    assert_completed_removed_failed_kept(client)


#: busybox sh: negative x fails, else writes a result.
CONTAINER_SCRIPT = """
case "$(cat "$1")" in *'"x": -'*) echo diverged >&2; exit 3 ;; esac
echo '{{"objective": 0.25}}' > "$2"
"""
