"""Script objectives: any executable, run per trial as a subprocess, never via a shell."""

from __future__ import annotations

import json
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ax_scheduler import AxScheduler, ConfigError, JobLibRunner
from conftest import PARAMETERS, alive, experiment_of, statuses

SCRIPTS = Path(__file__).parent / "scripts"


def alive_from(pid_file: Path) -> bool:
    return alive(int(pid_file.read_text()))


HOSTILE = [
    "two words",
    "it's",
    'say "hi"',
    "a; touch pwned",
    "$(touch pwned)",
    "`touch pwned`",
    "-n",
]


def client_with_label() -> Any:
    from ax.service.ax_client import AxClient, ObjectiveProperties

    client = AxClient(verbose_logging=False)
    client.create_experiment(
        name="script_demo",
        parameters=[
            *PARAMETERS,
            {
                "name": "label",
                "type": "choice",
                "values": HOSTILE,
                "is_ordered": False,
                "sort_values": False,
            },
        ],
        objectives={"objective": ObjectiveProperties(minimize=True)},
    )
    return client


@pytest.fixture
def shell_hostile_dir(tmp_path: Path) -> Path:
    """Paths with spaces and quotes, as users' home directories sometimes have."""
    where = tmp_path / "my runs" / 'it\'s "here"'
    where.mkdir(parents=True)
    return where


#: The test script's options: Rosenbrock from params.json, an extra env variable.
ROSENBROCK_OPTIONS = {
    "interpreter": "python3",
    "args": ["{params_file}", "{output_file}"],
    "env": {"SIM_MODE": "fast"},
}


def run_hostile_batch(scheduler: Any) -> None:
    """One trial per HOSTILE label; trial 0 is Rosenbrock's (0.5, 0.5) = 6.5."""
    with scheduler.batch_trial_context() as batch:
        for i, label in enumerate(HOSTILE):
            batch.add_trial({"x": 0.5, "y": 0.5 if i == 0 else 0.0, "label": label})


def assert_hostile_values_stayed_data(client: Any, workdir_of: Callable[[int], Path]) -> None:
    """Every label reached the script as one argument, and no shell ran any of them."""
    assert set(statuses(client).values()) == {"COMPLETED"}
    assert experiment_of(client).trials[0].objective_mean == 6.5
    for index, label in enumerate(HOSTILE):
        workdir = workdir_of(index)
        assert json.loads((workdir / "params.json").read_text())["label"] == label
        assert (workdir / "stdout.log").read_text() == f"trial {index} label={label}\n"
        assert (workdir / "stderr.log").read_text() == "extra env fast\n"
        assert not (workdir / "pwned").exists()


def dispatcher(tmp_path: Path, modes: list[str]) -> Path:
    """A script that runs misbehaves.sh in the mode of its trial index ($1)."""
    script = tmp_path / "dispatch.sh"
    cases = " ".join(f"{i}) mode={mode} ;;" for i, mode in enumerate(modes))
    script.write_text(
        f'#!/bin/sh\ncase "$1" in {cases} esac\nexec sh {SCRIPTS / "misbehaves.sh"} "$mode"\n'
    )
    return script


def test_script_trials_exchange_files_and_hostile_values_stay_data(shell_hostile_dir: Path) -> None:
    script = shell_hostile_dir / "sim script.py"
    shutil.copy(SCRIPTS / "rosenbrock.py", script)
    client = client_with_label()
    config = {"job_output_dir": str(shell_hostile_dir / "out")}
    with AxScheduler(client, JobLibRunner(n_jobs=3), config) as scheduler:
        scheduler.set_script_objective(script, ROSENBROCK_OPTIONS)
        run_hostile_batch(scheduler)
    assert_hostile_values_stayed_data(
        client, lambda index: shell_hostile_dir / "out" / f"script_demo-trial-{index}"
    )


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("exit3", "script exited with code 3; stderr ends: simulation diverged at step 42"),
        ("noresult", "script exited 0 but wrote no result file"),
        ("badjson", "is not valid JSON"),
    ],
)
def test_failing_scripts_fail_their_trial_with_exit_code_and_stderr(
    tmp_path: Path, mode: str, reason: str
) -> None:
    from conftest import legacy_client

    client = legacy_client()
    with AxScheduler(
        client, JobLibRunner(n_jobs=1), {"job_output_dir": str(tmp_path)}
    ) as scheduler:
        scheduler.set_script_objective(SCRIPTS / "misbehaves.sh", {"args": [mode]})
        with scheduler.batch_trial_context() as batch:
            batch.add_trial({"x": 0.5, "y": 0.5})
    trial = experiment_of(client).trials[0]
    assert trial.status.name == "FAILED"
    assert reason in trial.status_reason


def test_script_timeout_kills_its_whole_process_group(tmp_path: Path) -> None:

    from conftest import legacy_client

    client = legacy_client()
    with AxScheduler(
        client, JobLibRunner(n_jobs=1), {"job_output_dir": str(tmp_path)}
    ) as scheduler:
        scheduler.set_script_objective(SCRIPTS / "misbehaves.sh", {"args": ["hang"], "timeout": 1})
        started = time.monotonic()
        with scheduler.batch_trial_context() as batch:
            batch.add_trial({"x": 0.5, "y": 0.5})
    assert time.monotonic() - started < 10
    trial = experiment_of(client).trials[0]
    assert trial.status_reason == "timeout: ran longer than its timeout of 1 s"
    workdir = tmp_path / "test_experiment-trial-0"
    for name in ("script.pid", "child.pid"):
        assert not alive_from(workdir / name)


def test_closing_kills_a_running_script_and_its_children(tmp_path: Path) -> None:

    from conftest import legacy_client

    client = legacy_client()
    config = {"job_output_dir": str(tmp_path), "synchronous": False}
    scheduler = AxScheduler(client, JobLibRunner(n_jobs=1), config)
    scheduler.set_script_objective(SCRIPTS / "misbehaves.sh", {"args": ["hang"]})
    with scheduler.batch_trial_context() as batch:
        batch.add_trial({"x": 0.5, "y": 0.5})
    child = tmp_path / "test_experiment-trial-0" / "child.pid"
    deadline = time.monotonic() + 20
    while not child.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    scheduler.close()
    assert statuses(client) == {0: "ABANDONED"}
    assert not alive_from(child)


def test_script_problems_are_reported_when_the_objective_is_set(tmp_path: Path) -> None:
    from conftest import legacy_client

    not_executable = tmp_path / "sim.py"
    not_executable.write_text("print('hi')\n")
    not_executable.chmod(stat.S_IRUSR | stat.S_IWUSR)
    with AxScheduler(legacy_client(), JobLibRunner(n_jobs=1)) as scheduler:
        with pytest.raises(FileNotFoundError, match="does not exist"):
            scheduler.set_script_objective(tmp_path / "missing.py")
        with pytest.raises(PermissionError, match="is not executable: chmod \\+x it"):
            scheduler.set_script_objective(not_executable)
        with pytest.raises(FileNotFoundError, match="interpreter 'pyhton3' is not on PATH"):
            scheduler.set_script_objective(not_executable, {"interpreter": "pyhton3"})
        with pytest.raises(ValueError, match=r"unknown placeholder \{param_file\}"):
            scheduler.set_script_objective(
                not_executable, {"interpreter": "python3", "args": ["{param_file}"]}
            )
        with pytest.raises(ConfigError, match="unknown script_options key 'timout'"):
            scheduler.set_script_objective(not_executable, {"timout": 5})
