"""The JOB_* rule: ax-scheduler's names, built in one place, refused in a user's env.

``JOB_PARAMS_FILE``, ``JOB_OUTPUT_FILE``, ``JOB_TRIAL_INDEX`` and ``JOB_WORKDIR`` say
where a trial's files are. A script's ``env`` or a container's ``env_vars`` that
names a ``JOB_*`` variable is a ConfigError when the objective is set, on every
runner the environment reaches; every runner gives the trial the user's
variables and the ``JOB_*`` ones with the trial's paths as the program sees them.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ax_scheduler import (
    AxScheduler,
    ConfigError,
    DockerRunner,
    JobLibRunner,
    Runner,
    SlurmRunner,
    SSHRunner,
)
from ax_scheduler._config import ContainerOptions, ScriptOptions
from ax_scheduler._container import apptainer_exec_argv, docker_run_argv, make_container_objective
from ax_scheduler._jobs import Job
from ax_scheduler._script import make_script_objective
from ax_scheduler.testing import FakeClock, FakeTransport
from conftest import experiment_of, legacy_client, statuses
from test_ssh_logic import Hosts

JOB_NAMES = [
    "JOB_PARAMS_FILE",
    "JOB_OUTPUT_FILE",
    "JOB_TRIAL_INDEX",
    "JOB_WORKDIR",
    "JOB_PROGRESS_FILE",
]

RUNNERS: dict[str, Callable[[], Runner]] = {
    "local": lambda: JobLibRunner(n_jobs=1),
    "ssh": lambda: SSHRunner(["gpu-a"], transports=Hosts(), clock=FakeClock()),
    "slurm": lambda: SlurmRunner(transport=FakeTransport(), clock=FakeClock()),
    "docker": lambda: DockerRunner(),
}


@pytest.fixture
def script(tmp_path: Path) -> Path:
    """Writes the JOB_* variables and MODE it sees to env.json, and a result."""
    path = tmp_path / "sim.py"
    path.write_text(
        "import json, os\n"
        "names = ['MODE', *(n for n in os.environ if n.startswith('JOB_'))]\n"
        "json.dump({n: os.environ[n] for n in names}, open('env.json', 'w'))\n"
        "json.dump({'objective': 1.0}, open(os.environ['JOB_OUTPUT_FILE'], 'w'))\n"
    )
    return path


@pytest.mark.parametrize("kind", ["local", "ssh", "slurm"])
def test_a_scripts_env_may_not_set_a_job_variable(kind: str, script: Path) -> None:
    with AxScheduler(legacy_client(), RUNNERS[kind]()) as scheduler:
        with pytest.raises(ConfigError) as raised:
            scheduler.set_script_objective(
                script, {"interpreter": "python3", "env": {"MODE": "x", "JOB_WORKDIR": "/tmp"}}
            )
    assert "script_options['env']: 'JOB_WORKDIR' cannot be set" in str(raised.value)
    assert "JOB_* variables are ax-scheduler's, they tell the trial where its files are" in str(
        raised.value
    )


@pytest.mark.parametrize(("kind", "engine"), [("docker", "docker"), ("slurm", "apptainer")])
def test_a_containers_env_vars_may_not_set_a_job_variable(kind: str, engine: str) -> None:
    with AxScheduler(legacy_client(), RUNNERS[kind]()) as scheduler:
        with pytest.raises(ConfigError, match=r"env_vars'\]: 'JOB_OUTPUT_FILE' cannot be set"):
            scheduler.set_container_objective(
                "sim:latest", "run", {"engine": engine, "env_vars": {"JOB_OUTPUT_FILE": "/x"}}
            )


def test_names_that_only_look_alike_are_the_users() -> None:
    options = ScriptOptions.from_user({"env": {"job_workdir": "a", "MY_JOB_DIR": "b"}})
    assert options.env == {"job_workdir": "a", "MY_JOB_DIR": "b"}


def test_a_local_script_sees_the_users_variables_and_its_trials_paths(
    script: Path, tmp_path: Path
) -> None:
    client = legacy_client()
    config = {"job_output_dir": str(tmp_path / "out")}
    with AxScheduler(client, JobLibRunner(n_jobs=1), config) as scheduler:
        scheduler.set_script_objective(
            script, {"interpreter": sys.executable, "env": {"MODE": "fast"}}
        )
        with scheduler.batch_trial_context() as batch:
            batch.add_trial({"x": 0.5, "y": 0.5})
    assert set(statuses(client).values()) == {"COMPLETED"}
    [folder] = (tmp_path / "out").iterdir()
    seen = json.loads((folder / "env.json").read_text())
    assert seen == {
        "MODE": "fast",
        "JOB_PARAMS_FILE": str(folder / "params.json"),
        "JOB_OUTPUT_FILE": str(folder / "result.json"),
        "JOB_TRIAL_INDEX": "0",
        "JOB_WORKDIR": str(folder),
        "JOB_PROGRESS_FILE": str(folder / "progress.jsonl"),
    }
    assert experiment_of(client).trials[0].status.is_completed


def remote_env(workdir: str, index: int) -> dict[str, str]:
    return {
        "MODE": "fast",
        "JOB_PARAMS_FILE": f"{workdir}/params.json",
        "JOB_OUTPUT_FILE": f"{workdir}/result.json",
        "JOB_TRIAL_INDEX": str(index),
        "JOB_WORKDIR": workdir,
        "JOB_PROGRESS_FILE": f"{workdir}/progress.jsonl",
    }


def scripted(script: Path) -> Any:
    options = ScriptOptions.from_user({"interpreter": "python3", "env": {"MODE": "fast"}})
    return make_script_objective(script, options, find_interpreter=False)


async def test_an_ssh_script_gets_the_users_variables_and_its_paths_on_the_host(
    script: Path,
) -> None:
    hosts = Hosts()
    runner = SSHRunner(["gpu-a"], transports=hosts, clock=FakeClock())
    objective = scripted(script)
    await runner.check_objective(objective)
    await runner.run(Job(3, {"x": 0.5}, objective, "exp-trial-3"))
    [task] = hosts["gpu-a"].trial_files(3)["tasks"]
    assert list(task["env"]) == ["MODE", *JOB_NAMES]  # JOB_* last: they are the runner's
    assert task["env"] == remote_env(task["workdir"], 3)
    await runner.aclose()


async def test_a_slurm_script_gets_the_users_variables_and_its_paths_on_the_cluster(
    script: Path,
) -> None:
    cluster = FakeTransport()
    runner = SlurmRunner(transport=cluster, clock=FakeClock(), config={"submit_window": 0})
    cluster.on_sacct = lambda cluster: cluster.complete(lambda parameters: {"objective": 1.0})
    objective = scripted(script)
    await runner.check_objective(objective)
    await asyncio.gather(*await runner.run_batch([Job(2, {"x": 0.5}, objective, "exp-trial-2")]))
    [task] = cluster.manifest("100")["tasks"]
    assert task["env"] == remote_env(task["workdir"], 2)
    await runner.aclose()


def container_env(argv: list[str]) -> dict[str, str]:
    """The ``--env NAME=VALUE`` pairs of a container command line, in order."""
    pairs = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--env"]
    return dict(pair.split("=", 1) for pair in pairs)


def test_a_docker_container_gets_the_users_variables_and_its_paths_inside(tmp_path: Path) -> None:
    options = ContainerOptions.from_user({"env_vars": {"MODE": "fast"}})
    objective = make_container_objective("sim:latest", "run {output_file}", options)
    job = Job(4, {"x": 0.5}, objective, "exp-trial-4", workdir=tmp_path / "exp-trial-4")
    argv = docker_run_argv("docker", objective, job, "axs-exp-trial-4-ab", "1000:1000")
    assert list(container_env(argv)) == ["MODE", *JOB_NAMES]
    assert container_env(argv) == remote_env("/job", 4)


def test_an_apptainer_container_gets_the_users_variables_and_its_paths_inside() -> None:
    options = ContainerOptions.from_user({"engine": "apptainer", "env_vars": {"MODE": "fast"}})
    objective = make_container_objective("sim.sif", "run", options, check_volumes=False)
    argv = apptainer_exec_argv(objective, "/scratch/a0/5", 5)
    assert "--cleanenv" in argv  # nothing of the login node's environment leaks in
    assert list(container_env(argv)) == ["MODE", *JOB_NAMES]
    assert container_env(argv) == remote_env("/job", 5)
