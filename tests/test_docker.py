"""Container objectives on DockerRunner, against a real Docker engine.

The engine is started by `ci/start-docker.sh` (the README's test command does it);
it imports two local images, since no registry is reachable: `localtest:latest`
(static busybox) and `hostusr:latest` (an empty skeleton that runs the host's
/usr/bin/python3 through a read-only /usr mount). Without a running engine these
tests fail with instructions; deselect them explicitly with `-m "not docker"`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ax_scheduler import AxScheduler, ConfigError, DockerRunner, JobLibRunner, RunnerError
from conftest import experiment_of, legacy_client, statuses
from test_scripts import HOSTILE, SCRIPTS, client_with_label

pytestmark = pytest.mark.docker

PYTHON_IMAGE = "hostusr:latest"
HOST_PYTHON = {"/usr": "/usr:ro"}


def our_containers() -> list[str]:
    result = subprocess.run(
        ["docker", "ps", "-a", "--filter", "name=axs-", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()


def require_docker() -> None:
    """Fail (not skip) without a reachable engine, saying how to start one."""
    if (
        shutil.which("docker") is None
        or subprocess.run(["docker", "info"], capture_output=True).returncode
    ):
        pytest.fail(
            "no Docker engine: run `ci/start-docker.sh` as root and export"
            " DOCKER_HOST=unix:///tmp/localdocker/run/docker.sock (or deselect: -m 'not docker')"
        )


@pytest.fixture(autouse=True)
def docker_engine() -> Iterator[None]:
    """A reachable engine before each test; none of our containers left after it."""
    require_docker()
    yield
    assert our_containers() == [], "containers left behind"


def test_container_trials_run_end_to_end_and_hostile_values_stay_data(tmp_path: Path) -> None:
    app = tmp_path / "my app's dir"
    shutil.copytree(SCRIPTS, app)
    client = client_with_label()
    config = {"job_output_dir": str(tmp_path / "runs with spaces")}
    with AxScheduler(client, DockerRunner(max_parallel=3), config) as scheduler:
        scheduler.set_container_objective(
            container_image=PYTHON_IMAGE,
            container_command="/usr/bin/python3 /app/rosenbrock.py {params_file} {output_file}",
            container_options={
                "volumes": {**HOST_PYTHON, str(app): "/app:ro"},
                "env_vars": {"SIM_MODE": "fast"},
                "network": "none",
                "cpus": 1,
                "memory": "256m",
            },
        )
        with scheduler.batch_trial_context() as batch:
            for i, label in enumerate(HOSTILE):
                batch.add_trial({"x": 0.5 if i == 0 else -0.2 * i, "y": 0.5, "label": label})
        scheduler.run_optimization(max_trials=2)

    assert set(statuses(client).values()) == {"COMPLETED"}
    assert experiment_of(client).trials[0].objective_mean == 6.5
    table = scheduler.results()
    assert set(table["runner"]) == {"docker"}
    assert table["job_id"].str.startswith("axs-script_demo-trial-").all()  # container names
    assert all(Path(log).read_text().startswith("trial ") for log in table["stdout"])
    for index, label in enumerate(HOSTILE):
        workdir = tmp_path / "runs with spaces" / f"script_demo-trial-{index}"
        assert (workdir / "stdout.log").read_text() == f"trial {index} label={label}\n"
        assert (workdir / "stderr.log").read_text() == "extra env fast\n"
        assert (workdir / "result.json").stat().st_uid == os.getuid()
        assert not list(workdir.glob("pwned"))


def test_failing_container_fails_its_trial_with_exit_code(tmp_path: Path) -> None:
    client = legacy_client()
    with AxScheduler(
        client, DockerRunner(max_parallel=1), {"job_output_dir": str(tmp_path)}
    ) as scheduler:
        scheduler.set_container_objective(
            "localtest:latest", ["sh", "-c", "echo 'mesh exploded' >&2; exit 7"]
        )
        with scheduler.batch_trial_context() as batch:
            batch.add_trial({"x": 0.5, "y": 0.5})
    reason = experiment_of(client).trials[0].status_reason
    assert reason == "script exited with code 7; stderr ends: mesh exploded"


def test_container_timeout_stops_the_container(tmp_path: Path) -> None:
    client = legacy_client()
    runner = DockerRunner(max_parallel=1, stop_grace_seconds=1)
    with AxScheduler(client, runner, {"job_output_dir": str(tmp_path)}) as scheduler:
        scheduler.set_container_objective("localtest:latest", "sleep 600", {"timeout": 1})
        started = time.monotonic()
        with scheduler.batch_trial_context() as batch:
            batch.add_trial({"x": 0.5, "y": 0.5})
    assert time.monotonic() - started < 20
    assert (
        experiment_of(client).trials[0].status_reason
        == "timeout: ran longer than its timeout of 1 s"
    )
    assert our_containers() == []


def test_closing_stops_running_containers(tmp_path: Path) -> None:
    client = legacy_client()
    config = {"job_output_dir": str(tmp_path), "synchronous": False}
    scheduler = AxScheduler(client, DockerRunner(max_parallel=2, stop_grace_seconds=1), config)
    scheduler.set_container_objective("localtest:latest", "sleep 600")
    with scheduler.batch_trial_context() as batch:
        batch.add_trial({"x": 0.5, "y": 0.5})
        batch.add_trial({"x": 0.1, "y": 0.5})
    deadline = time.monotonic() + 20
    while len(our_containers()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    scheduler.close()
    assert statuses(client) == {0: "ABANDONED", 1: "ABANDONED"}
    assert our_containers() == []


def test_engine_down_is_reported_once_before_any_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = legacy_client()
    scheduler = AxScheduler(client, DockerRunner(), {"job_output_dir": str(tmp_path)})
    scheduler.set_container_objective("localtest:latest", "true")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(RunnerError, match="does not answer"):
        scheduler.run_optimization(max_trials=2)
    assert experiment_of(client).trials == {}
    scheduler.close()


def test_missing_image_is_reported_before_any_trial(tmp_path: Path) -> None:
    client = legacy_client()
    with AxScheduler(client, DockerRunner(), {"job_output_dir": str(tmp_path)}) as scheduler:
        scheduler.set_container_objective("no-such-image:1.0", "true")
        with pytest.raises(RunnerError, match=r"image 'no-such-image:1\.0' is not in the engine"):
            scheduler.run_optimization(max_trials=2)
    assert experiment_of(client).trials == {}


def test_bad_container_settings_are_refused_when_set(tmp_path: Path) -> None:
    with AxScheduler(legacy_client(), DockerRunner()) as scheduler:
        with pytest.raises(FileNotFoundError, match="volume host path '/no/such/dir'"):
            scheduler.set_container_objective(
                "localtest:latest", "true", {"volumes": {"/no/such/dir": "/data"}}
            )
        with pytest.raises(ConfigError, match="container_options\\['memory'\\]"):
            scheduler.set_container_objective("localtest:latest", "true", {"memory": "lots"})
        with pytest.raises(ValueError, match="unknown placeholder \\{input\\}"):
            scheduler.set_container_objective("localtest:latest", "cat {input}")
        with pytest.raises(TypeError, match="cannot run a FunctionObjective"):
            scheduler.set_objective_function(json.dumps)
    with AxScheduler(legacy_client(), JobLibRunner(n_jobs=1)) as scheduler:
        with pytest.raises(TypeError, match="cannot run a ContainerObjective"):
            scheduler.set_container_objective("localtest:latest", "true")


def test_docker_run_command_line(tmp_path: Path) -> None:
    from ax_scheduler._config import ContainerOptions
    from ax_scheduler._container import docker_run_argv, make_container_objective
    from ax_scheduler._jobs import Job

    objective = make_container_objective(
        "sim:latest",
        "python /app/simulate.py {params_file} {output_file} --tag 'a b'",
        ContainerOptions(
            volumes={str(tmp_path): "/app/data"},
            env_vars={"DEBUG": "1"},
            cpus=2,
            memory="4g",
            gpus="all",
            network="none",
        ),
    )
    job = Job(3, {"x": 1.0}, objective, "exp-trial-3", workdir=tmp_path / "exp-trial-3")
    argv = docker_run_argv("docker", objective, job, "axs-exp-trial-3-ab", "1000:1000")
    assert argv[:5] == ["docker", "run", "--name", "axs-exp-trial-3-ab", "--user"]
    assert ["--volume", f"{tmp_path}/exp-trial-3:/job", "--workdir", "/job"] == argv[6:10]
    assert ["--volume", f"{tmp_path}:/app/data"] == argv[10:12]
    assert "DEBUG=1" in argv
    assert "JOB_PARAMS_FILE=/job/params.json" in argv
    limits = ["--cpus", "2.0", "--memory", "4g", "--gpus", "all", "--network", "none"]
    assert argv[-15:-6] == [*limits, "sim:latest"]
    assert argv[-6:] == [
        "python",
        "/app/simulate.py",
        "/job/params.json",
        "/job/result.json",
        "--tag",
        "a b",
    ]


def test_apptainer_objective_on_docker_runner_is_refused_before_any_trial(tmp_path: Path) -> None:
    client = legacy_client()
    with AxScheduler(client, DockerRunner(), {"job_output_dir": str(tmp_path)}) as scheduler:
        scheduler.set_container_objective("localtest:latest", "true", {"engine": "apptainer"})
        with pytest.raises(RunnerError, match="engine 'apptainer' needs a cluster runner"):
            scheduler.run_optimization(max_trials=1)
    assert experiment_of(client).trials == {}
