"""The `ax-scheduler` command: run, status, report and resume, and errors in experiment files.

Fast checks drive the typer app in this process (typer's CliRunner); the run
end to end, Ctrl-C and resume go through the installed console script in a
process of their own, as a user's terminal would.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ax_scheduler.cli import app
from conftest import wait_until

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "examples"
DOC = ROOT / "docs" / "cli.md"
COMMANDS = ["run", "resume", "status", "report"]
SCRIPT = Path(sys.executable).parent / "ax-scheduler"  # the console script pip installed


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of examples/ as the current directory; what a command adds to the
    process (sys.path, PYTHONPATH, the objective modules) is undone afterwards."""
    for name in ["experiment.yaml", "cli_objective.py", "cli_script.yaml", "simulate.py"]:
        shutil.copy(EXAMPLES / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("COLUMNS", "200")  # a wide table: rows are not folded
    modules = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - modules:
        if name.startswith("cli_"):
            del sys.modules[name]


def invoke(*args: str) -> Any:
    """Run the app in this process, as `ax-scheduler ARGS`."""
    return CliRunner().invoke(app, list(args), prog_name="ax-scheduler")


def trial_statuses(path: Path) -> dict[int, str]:
    from ax_scheduler._ax import client_from_snapshot
    from ax_scheduler._checkpoint import read_checkpoint

    client = client_from_snapshot(read_checkpoint(path).client)
    return {index: trial.status.name for index, trial in client.experiment.trials.items()}


# -- help ------------------------------------------------------------------------------
def test_the_console_script_shows_help_with_an_example_for_every_command() -> None:
    for args in [[], *([command] for command in COMMANDS)]:
        result = subprocess.run(
            [str(SCRIPT), *args, "--help"], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert "Usage: ax-scheduler" in result.stdout
        assert "Example" in result.stdout or "Start with: ax-scheduler run" in result.stdout
        for command in args:
            assert f"ax-scheduler {command} " in result.stdout.split("Example")[1]


def test_help_needs_no_ax() -> None:
    code = "import sys; from ax_scheduler.cli import app; print('ax' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


# -- the docs' walk-through ---------------------------------------------------------------
def doc_commands() -> list[str]:
    blocks = re.findall(r"```(?:console|bash)\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    lines = [line for block in blocks for line in block.splitlines()]
    return [line.removeprefix("$ ") for line in lines if line.startswith("$ ax-scheduler ")]


def test_every_yaml_block_in_the_cli_page_is_in_an_example_the_tests_load() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    files = [path.read_text() for path in EXAMPLES.glob("*.yaml")]
    assert blocks
    for block in blocks:
        assert any(block in text for text in files), f"not in any examples/*.yaml:\n{block}"


@pytest.mark.slow
def test_the_commands_of_the_cli_page_run_in_order(workdir: Path) -> None:
    commands = doc_commands()
    assert commands[:2] == ["ax-scheduler run experiment.yaml", "ax-scheduler status run.json"]
    outputs = {}
    for command in commands:
        result = invoke(*shlex.split(command)[1:])
        assert result.exit_code == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
        outputs[command] = result.stdout

    assert trial_statuses(workdir / "run.json") == dict.fromkeys(range(6), "COMPLETED")
    assert "6 trials: 6 COMPLETED (max_trials 6)" in outputs["ax-scheduler run experiment.yaml"]
    table = outputs["ax-scheduler status run.json"]
    assert len(re.findall(r"│ +\d+ │ COMPLETED │ x=", table)) == 6
    assert re.search(r"best: trial \d, loss=\S+ \(x=\S+, y=\S+\)", table)
    assert (workdir / "report.html").read_text().lstrip().lower().startswith("<!doctype html")
    assert outputs["ax-scheduler resume run.json"].startswith("nothing left to do: 6 of")
    assert trial_statuses(workdir / "script_run.json") == dict.fromkeys(range(4), "COMPLETED")
    assert (workdir / "ax_scheduler_output" / "cli_script_demo-trial-0" / "result.json").exists()


@pytest.mark.slow
def test_status_reads_csv_json_and_save_experiment_files(workdir: Path) -> None:
    assert invoke("run", "experiment.yaml", "-q").exit_code == 0
    checkpoint = json.loads((workdir / "run.json").read_text())
    (workdir / "saved.json").write_text(json.dumps(checkpoint["client"]))  # an Ax snapshot

    rows = json.loads(invoke("status", "run.json", "--format", "json").stdout)
    assert [row["status"] for row in rows] == ["COMPLETED"] * 6
    assert {"trial_index", "x", "y", "loss", "runner", "duration_s"} <= set(rows[0])
    csv = invoke("status", "saved.json", "-f", "csv").stdout.splitlines()
    assert csv[0].startswith("trial_index,status,x,y,loss,loss_sem,")
    assert len(csv) == 7
    saved = invoke("status", "saved.json")
    assert "6 trials: 6 COMPLETED" in saved.stdout
    assert "max_trials" not in saved.stdout  # a snapshot has no spec


@pytest.mark.slow
def test_resume_needs_a_checkpoint_with_a_spec_or_the_file(workdir: Path) -> None:
    assert invoke("run", "experiment.yaml", "-q").exit_code == 0
    again = invoke("run", "experiment.yaml")
    assert again.exit_code == 2
    assert "run.json already holds a run: continue it with `ax-scheduler resume run.json`" in (
        again.stderr
    )
    checkpoint = json.loads((workdir / "run.json").read_text())
    (workdir / "saved.json").write_text(json.dumps(checkpoint["client"]))
    del checkpoint["spec"]  # as the library writes it
    (workdir / "library.json").write_text(json.dumps(checkpoint))

    saved = invoke("resume", "saved.json")
    assert saved.exit_code == 2
    assert "saved.json was written by save_experiment(), not a checkpoint: show its" in (
        saved.stderr
    )
    checkpoint_to_run = invoke("run", "run.json")
    assert checkpoint_to_run.exit_code == 2
    assert checkpoint_to_run.stderr == (
        "error: run.json is an ax-scheduler checkpoint, not an experiment file: continue it"
        " with `ax-scheduler resume run.json`\n"
    )
    library = invoke("resume", "library.json")
    assert library.exit_code == 2
    assert "give the experiment file with --experiment FILE" in library.stderr
    with_file = invoke("resume", "library.json", "--experiment", "experiment.yaml")
    assert with_file.exit_code == 0, with_file.stderr
    assert with_file.stdout.startswith("nothing left to do: 6 of max_trials 6")


# -- Ctrl-C and resume, through the console script ---------------------------------------
SLEEPY = """
import os, pathlib, time

def rosenbrock(parameters):
    pathlib.Path(os.environ["CLI_TEST_STARTED"], str(os.getpid())).touch()
    time.sleep(float(os.environ["CLI_TEST_SLEEP"]))
    return {"loss": (1 - parameters["x"]) ** 2 + 100 * (parameters["y"] - parameters["x"] ** 2) ** 2}
"""


def start_in_a_terminal(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """The console script as a terminal's foreground job: its own process group,
    which Ctrl-C reaches whole, and SIGINT not ignored even if this test runs as a
    background job."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(
            [str(SCRIPT), *args],
            cwd=cwd,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.slow
def test_ctrl_c_abandons_running_trials_exits_130_and_resume_completes_the_run(
    tmp_path: Path,
) -> None:
    experiment = (EXAMPLES / "experiment.yaml").read_text()
    (tmp_path / "slow.yaml").write_text(experiment.replace("cli_objective:", "sleepy:"))
    (tmp_path / "sleepy.py").write_text(SLEEPY)
    started = tmp_path / "started"
    started.mkdir()
    # faulthandler: a driver that does not exit is asked (SIGABRT) where each thread is.
    env = {"CLI_TEST_STARTED": str(started), "CLI_TEST_SLEEP": "120", "PYTHONFAULTHANDLER": "1"}

    driver = start_in_a_terminal(["run", "slow.yaml"], tmp_path, env)
    try:
        assert wait_until(lambda: len(list(started.iterdir())) == 2, 120), driver.stderr
        os.killpg(driver.pid, signal.SIGINT)
        try:
            stdout, stderr = driver.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            driver.send_signal(signal.SIGABRT)
            _, stacks = driver.communicate(timeout=30)
            pytest.fail(f"no exit 60 s after Ctrl-C; the driver's threads:\n{stacks[-8000:]}")
    finally:
        if driver.poll() is None:  # a failed test must not leave its driver behind
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()

    assert driver.returncode == 130, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted: the running trials were stopped"), stderr
    assert last.endswith("continue with: ax-scheduler resume run.json")
    statuses = trial_statuses(tmp_path / "run.json")
    assert {0, 1} <= set(statuses)
    assert set(statuses.values()) == {"ABANDONED"}, statuses

    env["CLI_TEST_SLEEP"] = "0"
    resumed = start_in_a_terminal(["resume", "run.json"], tmp_path, env)
    stdout, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    statuses = trial_statuses(tmp_path / "run.json")
    assert sorted(statuses.values()).count("COMPLETED") == 6, statuses
    assert set(statuses.values()) == {"ABANDONED", "COMPLETED"}
    assert f"{len(statuses)} trials: 6 COMPLETED" in stdout


# -- mistakes in the experiment file --------------------------------------------------------
BASE = """\
name: bad_files
parameters:
  - {name: x, type: range, bounds: [-2.0, 2.0]}
  - name: y
    type: range
    bounds: [-2.0, 2.0]
objectives:
  loss: minimize
objective:
  function: cli_objective:rosenbrock
runner:
  type: joblib
  n_jobs: 2
max_trials: 2
config:
  trial_timeout: 60
"""


DIRECTION_PROBLEM = (
    "'minimise' is not a direction; did you mean 'minimize'? Valid: minimize, maximize, or"
    " {minimize: true|false, threshold: NUMBER} (threshold optional)"
)


def edited(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new)


BAD_FILES = {
    "yaml syntax": (
        edited("  n_jobs: 2\n", "  n_jobs: [2\n"),
        14,
        "",
        "YAML syntax error: expected ',' or ']', but got ':' (while parsing a flow sequence"
        " that began on line 13)",
    ),
    "unknown key": (
        edited("max_trials:", "max_trails:"),
        14,
        "max_trails",
        "unknown key; did you mean 'max_trials'? Valid keys here: config, initial_trials,",
    ),
    "bad type at a nested key": (
        edited("trial_timeout: 60", "trial_timeout: soon"),
        16,
        "config.trial_timeout",
        "Input should be a valid number, unable to parse string as a number (got 'soon')",
    ),
    "bad runner option": (
        edited("n_jobs: 2", "n_jobs: four"),
        13,
        "runner.n_jobs",
        "n_jobs must be a positive int or -1 for all cores, got 'four'",
    ),
    "unknown runner option": (
        edited("n_jobs: 2", "njobs: 2"),
        13,
        "runner.njobs",
        "unknown key; did you mean 'n_jobs'? Valid keys here: backend, n_jobs, type",
    ),
    "unknown runner type": (
        edited("type: joblib", "type: lsf"),
        12,
        "runner.type",
        "unknown runner type 'lsf'; one of joblib, slurm, ssh, docker",
    ),
    "bad nested runner config": (
        edited("  type: joblib\n  n_jobs: 2", "  type: slurm\n  config: {max_parallel: 0}"),
        13,
        "runner.config.max_parallel",
        "Input should be greater than 0 (got 0)",
    ),
    "missing objective": (
        edited("objective:\n  function: cli_objective:rosenbrock\n", ""),
        1,
        "objective",
        "required key is missing",
    ),
    "module not found": (
        edited("cli_objective:rosenbrock", "cli_objectives:rosenbrock"),
        10,
        "objective.function",
        "no module named 'cli_objectives'",
    ),
    "no such function": (
        edited("cli_objective:rosenbrock", "cli_objective:rosenbrok"),
        10,
        "objective.function",
        "has no attribute 'rosenbrok'; did you mean 'rosenbrock'?",
    ),
    "not module:function": (
        edited("cli_objective:rosenbrock", "cli_objective.rosenbrock"),
        10,
        "objective.function",
        "String should match pattern",
    ),
    "two objective kinds": (
        edited(
            "  function: cli_objective:rosenbrock\n",
            "  function: cli_objective:rosenbrock\n  script: {path: simulate.py}\n",
        ),
        9,
        "objective",
        "give exactly one of function, script or container; got function and script",
    ),
    "missing script": (
        edited("  function: cli_objective:rosenbrock", "  script: {path: nowhere.py}"),
        10,
        "objective.script.path",
        "nowhere.py' does not exist",
    ),
    "objective direction": (
        edited("loss: minimize", "loss: minimise"),
        8,
        "objectives.loss",
        DIRECTION_PROBLEM,
    ),
    "duplicate key": (BASE + "name: again\n", 17, "name", "duplicate key (first on line 1)"),
    "parameter Ax rejects": (
        edited("    bounds: [-2.0, 2.0]", "    bounds: [2.0, -2.0]"),
        4,
        "parameters[1]",
        "Ax refused it: Upper bound of y must be strictly larger than lower",
    ),
    "constraint Ax rejects": (
        BASE + "parameter_constraints: [x + y <= 1, x + z <= 1]\n",
        17,
        "parameter_constraints[1]",
        "Ax refused it:",
    ),
    "ssh host option": (
        edited(
            "  type: joblib\n  n_jobs: 2",
            "  type: ssh\n  hosts:\n    - gpu1\n    - {host: gpu2, port: ssh}",
        ),
        15,
        "runner.hosts[1].port",
        "Input should be a valid integer",
    ),
}


@pytest.mark.parametrize(("text", "line", "key", "message"), BAD_FILES.values(), ids=BAD_FILES)
def test_a_mistake_in_the_file_names_its_line_and_key(
    workdir: Path, text: str, line: int, key: str, message: str
) -> None:
    (workdir / "bad.yaml").write_text(text)
    result = invoke("run", "bad.yaml")

    assert result.exit_code == 2, result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    where = f"bad.yaml:{line}: {key}: " if key else f"bad.yaml:{line}: "
    lines = [found for found in result.stderr.splitlines() if found.startswith(where)]
    assert lines, result.stderr
    assert any(message in found for found in lines), result.stderr
    assert not (workdir / "run.json").exists()


@pytest.mark.parametrize(
    ("direction", "key", "problem"),
    [
        ("minimise", "objectives.loss", DIRECTION_PROBLEM),
        (
            "1",
            "objectives.loss",
            "1 is not a direction; valid: minimize, maximize, or {minimize: true|false,"
            " threshold: NUMBER} (threshold optional)",
        ),
        (
            "{minimise: true}",
            "objectives.loss.minimise",
            "unknown key; did you mean 'minimize'? Valid keys here: minimize, threshold",
        ),
    ],
)
def test_a_bad_objective_direction_is_named_once_with_the_valid_ones(
    workdir: Path, direction: str, key: str, problem: str
) -> None:
    (workdir / "bad.yaml").write_text(edited("loss: minimize", f"loss: {direction}"))
    result = invoke("run", "bad.yaml")
    assert result.exit_code == 2
    assert result.stderr == f"bad.yaml:8: {key}: {problem}\n"


def test_every_problem_of_a_file_is_reported_in_line_order(workdir: Path) -> None:
    text = edited("n_jobs: 2", "n_jobs: four").replace("trial_timeout: 60", "trial_timeout: -1")
    (workdir / "bad.yaml").write_text(text.replace("max_trials: 2", "max_trials: 0"))
    problems = invoke("run", "bad.yaml").stderr.splitlines()
    assert [problem.split(": ")[0] for problem in problems] == [
        "bad.yaml:13",
        "bad.yaml:14",
        "bad.yaml:16",
    ], problems


def test_a_yaml_syntax_error_through_the_console_script_has_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: x\nobjectives:\n\tloss: minimize\n")
    result = subprocess.run(
        [str(SCRIPT), "run", "bad.yaml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr == (
        "bad.yaml:3: YAML syntax error: found character '\\t' that cannot start any token"
        " (while scanning for the next token)\n"
    )


# -- the runners' options, built without running them ----------------------------------------
def test_the_example_files_build_their_runners_and_ax_accepts_their_experiments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ax_scheduler import DockerRunner, JobLibRunner, SlurmRunner, SSHRunner
    from ax_scheduler.cli.axclient import create_client
    from ax_scheduler.cli.spec import load_file

    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    runners = {
        name: load_file(EXAMPLES / f"{name}.yaml")
        for name in ["experiment", "cli_script", "cli_slurm", "cli_ssh", "cli_docker"]
    }
    for spec in runners.values():
        assert create_client(spec).experiment.name == spec.experiment.name

    assert isinstance(runners["experiment"].runner, JobLibRunner)
    slurm = runners["cli_slurm"].runner
    assert isinstance(slurm, SlurmRunner)
    assert (slurm.partition, slurm.time_limit, slurm.memory, slurm.cpus_per_task) == (
        "short",
        "00:30:00",
        "4G",
        2,
    )
    assert slurm.config.sbatch_options == {"account": "my_project", "qos": "short"}
    assert slurm.config.max_parallel == 50
    assert slurm.ssh is not None
    assert slurm.ssh.address == "me@login.cluster.example.org:22"
    ssh = runners["cli_ssh"].runner
    assert isinstance(ssh, SSHRunner)
    assert [(host.host, host.slots) for host in ssh.hosts] == [
        ("gpu1.example.org", 1),
        ("gpu2.example.org", 2),
    ]
    assert ssh.config.max_resubmits == 1
    docker = runners["cli_docker"]
    assert isinstance(docker.runner, DockerRunner)
    assert docker.runner.max_parallel == 2
    options = docker.experiment.objective.container
    assert options is not None
    assert options.network == "none"


def test_a_runner_that_cannot_run_the_objective_is_refused(workdir: Path) -> None:
    text = edited("  type: joblib\n  n_jobs: 2", "  type: docker")
    (workdir / "bad.yaml").write_text(text)
    result = invoke("run", "bad.yaml")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "bad.yaml:9: objective: DockerRunner(max_parallel=4, engine='docker') cannot run a"
        " FunctionObjective; it runs: ContainerObjective"
    )


def test_every_runner_option_its_constructor_refuses_is_named_at_its_key(workdir: Path) -> None:
    text = edited("  n_jobs: 2", "  n_jobs: four\n  backend: nope")
    (workdir / "bad.yaml").write_text(text)
    result = invoke("run", "bad.yaml")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "bad.yaml:13: runner.n_jobs: n_jobs must be a positive int or -1 for all cores, got 'four'",
        "bad.yaml:14: runner.backend: backend must be one of loky, threading, got 'nope'",
    ]


@pytest.mark.parametrize(
    ("old", "new", "key", "message"),
    [
        ("interpreter: python3", "interpreter: no-such-python", "interpreter", "is not on PATH"),
        ('"{output_file}"', '"{out}"', "args", "unknown placeholder {out}"),
        ("path: simulate.py", "path: .", "path", "is a directory"),
    ],
)
def test_a_wrong_script_option_is_named_at_its_key(
    workdir: Path, old: str, new: str, key: str, message: str
) -> None:
    text = (workdir / "cli_script.yaml").read_text()
    assert old in text
    (workdir / "bad.yaml").write_text(text.replace(old, new))
    result = invoke("run", "bad.yaml")
    assert result.exit_code == 2
    assert f": objective.script.{key}: " in result.stderr, result.stderr
    assert message in result.stderr, result.stderr


def test_trials_lost_with_the_driver_do_not_count_toward_max_trials() -> None:
    from types import SimpleNamespace

    from ax_scheduler.cli.running import counted

    def trial(status: str, **facts: Any) -> Any:
        metadata = {"ax_scheduler": facts} if facts else {}
        return SimpleNamespace(status=SimpleNamespace(name=status), run_metadata=metadata)

    trials = [
        trial("COMPLETED"),
        trial("FAILED", failure_kind="objective"),
        trial("FAILED", failure_kind="infrastructure", lost_with_driver=True),
        trial("ABANDONED"),
        trial("RUNNING"),
    ]
    assert counted(SimpleNamespace(trials=dict(enumerate(trials)))) == 2


def test_the_stored_spec_rebuilds_the_run_without_the_file_and_keeps_no_secrets(
    workdir: Path,
) -> None:
    from ax_scheduler._exceptions import SpecError
    from ax_scheduler.cli.spec import load_file, load_stored

    text = (EXAMPLES / "cli_slurm.yaml").read_text().replace("username: me", "password: hunter2")
    (workdir / "secret.yaml").write_text(text)
    stored = load_file("secret.yaml").stored()
    assert "hunter2" not in json.dumps(stored)
    with pytest.raises(SpecError, match="does not keep passwords"):
        load_stored(stored, "run.json")

    stored = load_file("experiment.yaml").stored()
    rebuilt = load_stored(json.loads(json.dumps(stored)), "run.json")
    assert rebuilt.experiment == load_file("experiment.yaml").experiment
    assert rebuilt.checkpoint_path() == workdir / "run.json"
    assert rebuilt.base_dir == workdir


def test_relative_paths_in_the_file_start_at_its_directory(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ax_scheduler.cli.spec import load_file

    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec = load_file("../cli_script.yaml")
    assert spec.checkpoint_path() == workdir / "script_run.json"
    config = spec.scheduler_config(spec.checkpoint_path())
    assert config["job_output_dir"] == workdir / "ax_scheduler_output"
    assert spec.resolve("simulate.py") == workdir / "simulate.py"


def test_the_library_parts_of_the_file_are_the_library_models() -> None:
    from ax_scheduler import SchedulerConfig, SlurmConfig
    from ax_scheduler.cli.models import RUNNER_MODELS, ExperimentSpec
    from ax_scheduler.cli.yamlspec import valid_keys_at

    assert ExperimentSpec.model_fields["config"].annotation is SchedulerConfig
    assert valid_keys_at(ExperimentSpec, ("config",)) == SchedulerConfig.allowed_keys()
    assert valid_keys_at(RUNNER_MODELS["slurm"], ("config",)) == sorted(SlurmConfig.model_fields)
    assert set(RUNNER_MODELS["slurm"].model_fields) == {
        "type",
        "partition",
        "time_limit",
        "memory",
        "cpus_per_task",
        "config",
        "ssh",
    }


def test_quiet_and_verbose_logging_is_undone_after_the_command(workdir: Path) -> None:
    import logging

    ours = logging.getLogger("ax_scheduler")
    before = (ours.level, list(ours.handlers))
    (workdir / "bad.yaml").write_text(BASE.replace("n_jobs: 2", "n_jobs: 0"))
    assert invoke("run", "bad.yaml", "-v").exit_code == 2
    assert (ours.level, list(ours.handlers)) == before


FAILING = """
def rosenbrock(parameters):
    raise RuntimeError("the simulator crashed")
"""


def test_a_run_whose_trials_all_fail_exits_1_and_points_at_status(workdir: Path) -> None:
    (workdir / "cli_failing.py").write_text(FAILING)
    text = (workdir / "experiment.yaml").read_text().replace("cli_objective:", "cli_failing:")
    (workdir / "failing.yaml").write_text(text.replace("max_trials: 6", "max_trials: 8"))

    result = invoke("run", "failing.yaml", "-q")

    assert result.exit_code == 1, result.stderr
    message = result.stderr[result.stderr.index("\nerror: ") :]  # after the trials' log
    assert "FailureRateExceededError" not in message  # a message, not a traceback
    assert "trial 0: RuntimeError: the simulator crashed" in message
    assert message.rstrip().endswith(
        "the trials so far are in run.json: ax-scheduler status run.json"
    )
    status = invoke("status", "run.json")
    assert "FAILED" in status.stdout
    assert "RuntimeError: the simulator crashed" in status.stdout


def test_status_and_report_refuse_a_file_that_is_not_a_run(workdir: Path) -> None:
    (workdir / "other.json").write_text('{"__type": "Something"}')
    (workdir / "broken.json").write_text('{"experiment": ')
    for command in (["status", "other.json"], ["report", "other.json"]):
        result = invoke(*command)
        assert result.exit_code == 2
        assert result.stderr.startswith(
            "error: other.json is not a checkpoint or a save_experiment() file: it holds JSON"
            " with the key '__type'; expected the checkpoint `ax-scheduler run` keeps"
        )
    result = invoke("status", "broken.json")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: broken.json is not a checkpoint or a save_experiment() file: it is not valid"
        " JSON (Expecting value: line 1 column 16 (char 15)); expected the checkpoint"
    )


def test_status_of_a_snapshot_ax_cannot_load_says_so(workdir: Path) -> None:
    (workdir / "saved.json").write_text('{"_type": "AxClient", "experiment": "garbage"}')
    result = invoke("status", "saved.json")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: saved.json was written by save_experiment(), but Ax cannot load it ("
    ), result.stderr


@pytest.mark.slow
def test_resume_with_max_trials_extends_a_finished_run_and_remembers_the_new_total(
    workdir: Path,
) -> None:
    text = (
        (workdir / "experiment.yaml").read_text().replace("initial_trials: 6", "initial_trials: 8")
    )
    (workdir / "experiment.yaml").write_text(text)  # all Sobol: no model fit in this test
    assert invoke("run", "experiment.yaml", "-q").exit_code == 0

    extended = invoke("resume", "run.json", "--max-trials", "8", "-q")
    assert extended.exit_code == 0, extended.stderr
    assert "8 trials: 8 COMPLETED (max_trials 8)" in extended.stdout
    assert trial_statuses(workdir / "run.json") == dict.fromkeys(range(8), "COMPLETED")
    header = json.loads((workdir / "run.json").read_text())
    assert header["spec"]["experiment"]["max_trials"] == 8
    again = invoke("resume", "run.json")
    assert again.stdout.startswith("nothing left to do: 8 of max_trials 8 trials finished")


def test_a_run_kept_in_a_database_is_shown_reported_and_resumed(workdir: Path) -> None:
    text = (
        (workdir / "experiment.yaml").read_text().replace("initial_trials: 6", "initial_trials: 8")
    )
    (workdir / "experiment.yaml").write_text(text)  # all Sobol: no model fit in this test
    url = f"sqlite:///{workdir / 'run.db'}"
    ran = invoke("run", "experiment.yaml", "--checkpoint", url, "--max-trials", "4", "-q")
    assert ran.exit_code == 0, ran.stderr
    assert "4 trials: 4 COMPLETED (max_trials 4)" in ran.stdout
    shown = invoke("status", url)
    assert shown.exit_code == 0, shown.stderr
    assert "cli_demo" in shown.stdout
    assert "4 trials: 4 COMPLETED" in shown.stdout
    again = invoke("run", "experiment.yaml", "--checkpoint", url, "-q")
    assert again.exit_code == 2
    assert "already holds a run: continue it with `ax-scheduler resume" in again.stderr
    extended = invoke("resume", url, "--max-trials", "6", "-q")
    assert extended.exit_code == 0, extended.stderr
    assert "6 trials: 6 COMPLETED (max_trials 6)" in extended.stdout
    reported = invoke("report", url, "-o", "report.html")
    assert reported.exit_code == 0, reported.stderr
    assert "cli_demo" in (workdir / "report.html").read_text()
    missing = invoke("status", f"sqlite:///{workdir / 'other.db'}")
    assert missing.exit_code == 2
    assert "other.db does not exist" in missing.stderr
