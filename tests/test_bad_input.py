"""Bad input, table by table: each row is one mistake a user makes.

Every row checks two things. The error is clear: its message names the bad value
and, where the code knows it, what would be valid. The experiment is intact
afterwards: no trial was created (and the same client or scheduler still runs a
good trial), or the trial that ran is FAILED in Ax with the reason in its run
metadata while the other trials are unaffected.

Rows that need the local Slurm cluster and sshd are marked ``slurm`` and reuse the
helpers of cluster.py, test_slurm.py and test_ssh.py; the missing-image rows are
marked ``docker`` and need the engine test_docker.py uses. Checkpoint files that
are corrupt or another run's are tried in test_resume.py.
"""

from __future__ import annotations

import functools
import logging
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import cluster_objectives
import objectives
from ax_scheduler import (
    AxScheduler,
    ConfigError,
    DockerRunner,
    InvalidParametersError,
    JobLibRunner,
    Runner,
    RunnerError,
    SlurmRunner,
    SSHRunner,
)
from cluster import cluster_env, job_config, queue, ssh_options
from conftest import PARAMETERS, experiment_of, legacy_client, sobol_only, statuses
from test_docker import our_containers
from test_slurm import new_key, slurm_runner
from test_ssh import free_port, host

GOOD_XY = {"x": 0.5, "y": 0.5}  # Rosenbrock's value there is 6.5


# -- helpers --------------------------------------------------------------------------
def threads() -> JobLibRunner:
    """A runner without worker processes, for checking that a good trial still runs."""
    return JobLibRunner(n_jobs=1, backend="threading")


def assert_names(message: str, names: Sequence[str]) -> None:
    missing = [name for name in names if name not in message]
    assert not missing, f"the message does not name {missing}: {message!r}"


def run_batch(scheduler: AxScheduler, *parameters: dict[str, Any]) -> None:
    with scheduler.batch_trial_context() as batch:
        for each in parameters:
            batch.add_trial(each)


def failure_reason(client: Any, index: int) -> str:
    return str(experiment_of(client).trials[index].run_metadata["ax_scheduler"]["failure_reason"])


def assert_a_good_trial_still_runs(client: Any) -> None:
    """A fresh scheduler on the same client runs a good trial as the next index."""
    before = statuses(client)
    with AxScheduler(client, threads()) as scheduler:
        scheduler.set_objective_function(objectives.rosenbrock_dict)
        run_batch(scheduler, GOOD_XY)
    assert statuses(client) == {**before, len(before): "COMPLETED"}
    assert experiment_of(client).trials[len(before)].objective_mean == 6.5


# -- parameters of batch.add_trial() ---------------------------------------------------
SOLVERS = ["cg", "gmres"]
GOOD = {"x": 0.5, "y": 0.5, "solver": "cg", "steps": 3}
SPACE = "x, y, solver, steps"


def client_with_choice(kind: str) -> Any:
    """x, y floats in [-2, 2], ``solver`` a choice of SOLVERS, ``steps`` an int in [1, 10]."""
    if kind == "legacy":
        from ax.service.ax_client import AxClient
        from ax.service.utils.instantiation import ObjectiveProperties

        parameters: list[dict[str, Any]] = list(PARAMETERS)
        client = AxClient(verbose_logging=False, generation_strategy=sobol_only())
        client.create_experiment(
            name="bad_input",
            parameters=[
                *parameters,
                {
                    "name": "solver",
                    "type": "choice",
                    "values": SOLVERS,
                    "value_type": "str",
                    "is_ordered": False,
                    "sort_values": False,
                },
                {"name": "steps", "type": "range", "bounds": [1, 10], "value_type": "int"},
            ],
            objectives={"objective": ObjectiveProperties(minimize=True)},
        )
        return client
    from ax.api.client import Client
    from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig

    modern = Client(random_seed=0)
    modern.configure_experiment(
        name="bad_input",
        parameters=[
            RangeParameterConfig(name="x", parameter_type="float", bounds=(-2.0, 2.0)),
            RangeParameterConfig(name="y", parameter_type="float", bounds=(-2.0, 2.0)),
            ChoiceParameterConfig(
                name="solver", values=SOLVERS, parameter_type="str", is_ordered=False
            ),
            RangeParameterConfig(name="steps", parameter_type="int", bounds=(1, 10)),
        ],
    )
    modern.configure_optimization(objective="-objective")
    return modern


PARAMETER_ROWS = [
    pytest.param(
        {**GOOD, "x": 2.5}, ["parameter 'x' = 2.5", "out of bounds [-2.0, 2.0]"], id="above-bounds"
    ),
    pytest.param(
        {**GOOD, "y": -2.000001},
        ["parameter 'y' = -2.000001", "out of bounds [-2.0, 2.0]"],
        id="just-below-bounds",
    ),
    pytest.param(
        {**GOOD, "steps": 11}, ["parameter 'steps' = 11", "out of bounds"], id="int-above"
    ),
    pytest.param(
        {**GOOD, "z": 1.0}, ["unknown parameter 'z'", "value 1.0", SPACE], id="unknown-name"
    ),
    pytest.param(
        {"X": 0.5, "y": 0.5, "solver": "cg", "steps": 3},
        ["unknown parameter 'X'", SPACE],
        id="misspelled-name",
    ),
    pytest.param(
        {"x": 0.5, "solver": "cg", "steps": 3}, ["missing parameter 'y'", SPACE], id="missing-name"
    ),
    pytest.param(
        {**GOOD, "x": "0.5"},
        ["parameter 'x' must be a float", "got '0.5' (str)"],
        id="string-for-float",
    ),
    pytest.param(
        {**GOOD, "x": True},
        ["parameter 'x' must be a float", "got True (bool)"],
        id="bool-for-float",
    ),
    pytest.param(
        {**GOOD, "x": None}, ["parameter 'x' must be a float", "got None"], id="none-for-float"
    ),
    pytest.param({**GOOD, "x": math.nan}, ["parameter 'x' must be finite", "nan"], id="nan"),
    pytest.param(
        {**GOOD, "steps": 2.5}, ["parameter 'steps' must be an int", "got 2.5"], id="float-for-int"
    ),
    pytest.param(
        {**GOOD, "solver": "lu"},
        ["parameter 'solver' = 'lu'", "not one of its choices", "'cg'", "'gmres'"],
        id="not-a-choice",
    ),
    pytest.param(
        {**GOOD, "solver": "CG"},
        ["parameter 'solver' = 'CG'", "not one of its choices", "'cg'"],
        id="choice-in-wrong-case",
    ),
    pytest.param(
        [("x", 0.5), ("y", 0.5)],
        ["parameters must be a dict of name -> value", "got list"],
        id="not-a-dict",
    ),
]


@pytest.mark.parametrize(("parameters", "names"), PARAMETER_ROWS)
def test_bad_parameters_are_refused_and_no_trial_is_created(
    client_kind: str, parameters: Any, names: list[str]
) -> None:
    client = client_with_choice(client_kind)
    with AxScheduler(client, threads()) as scheduler:
        scheduler.set_objective_function(objectives.rosenbrock_dict)
        with pytest.raises(InvalidParametersError) as raised:
            with scheduler.batch_trial_context() as batch:
                batch.add_trial(GOOD)  # a good trial first: the whole batch is dropped
                batch.add_trial(parameters)
        assert isinstance(raised.value, ValueError)
        assert_names(str(raised.value), names)
        assert statuses(client) == {}
        run_batch(scheduler, GOOD)  # the same scheduler goes on
    assert statuses(client) == {0: "COMPLETED"}
    assert experiment_of(client).trials[0].arm.parameters == GOOD


# -- AxScheduler(config={...}) ----------------------------------------------------------
CONFIG_ROWS = [
    pytest.param(
        {"bogus": 1},
        ["unknown config key 'bogus'", "allowed keys:", "monitoring_interval", "trial_timeout"],
        id="unknown-key",
    ),
    pytest.param(
        {"synchronus": False},
        ["unknown config key 'synchronus'", "allowed keys:", "synchronous"],
        id="misspelled-key",
    ),
    pytest.param(
        {"monitoring_interval": -1},
        ["config['monitoring_interval']", "greater than 0", "got -1"],
        id="negative-monitoring_interval",
    ),
    pytest.param(
        {"monitoring_interval": 0},
        ["config['monitoring_interval']", "greater than 0", "got 0"],
        id="zero-monitoring_interval",
    ),
    pytest.param(
        {"trial_timeout": "soon"},
        ["config['trial_timeout']", "valid number", "got 'soon'"],
        id="string-trial_timeout",
    ),
    pytest.param(
        {"max_trial_monitoring_time": -5},
        ["config['max_trial_monitoring_time']", "greater than 0", "got -5"],
        id="negative-trial_timeout-by-its-old-name",
    ),
    pytest.param(
        {"tolerated_failure_rate": 1.5},
        ["config['tolerated_failure_rate']", "less than or equal to 1", "got 1.5"],
        id="failure-rate-above-1",
    ),
    pytest.param(
        {"tolerated_failure_rate": -0.1},
        ["config['tolerated_failure_rate']", "greater than or equal to 0", "got -0.1"],
        id="negative-failure-rate",
    ),
    pytest.param(
        {"max_parallel_trials": 0},
        ["config['max_parallel_trials']", "greater than 0", "got 0"],
        id="zero-max_parallel_trials",
    ),
    pytest.param(
        {"max_parallel_trials": 2.5},
        ["config['max_parallel_trials']", "valid integer", "got 2.5"],
        id="fractional-max_parallel_trials",
    ),
    pytest.param(
        {"prefetch_trials": -1},
        ["config['prefetch_trials']", "greater than or equal to 0", "got -1"],
        id="negative-prefetch_trials",
    ),
    pytest.param(
        {"min_failed_trials_for_failure_rate_check": 0},
        ["config['min_failed_trials_for_failure_rate_check']", "greater than 0", "got 0"],
        id="zero-min_failed_trials",
    ),
    pytest.param(
        {"synchronous": "sometimes"},
        ["config['synchronous']", "valid boolean", "got 'sometimes'"],
        id="string-synchronous",
    ),
    pytest.param(
        [("synchronous", False)],
        ["config must be a dict of options", "got list"],
        id="not-a-dict",
    ),
    pytest.param(
        {"trial_timeout": True},
        ["config['trial_timeout']", "got True"],
        id="bool-trial_timeout",
    ),
    pytest.param(
        {"trial_timeout": 10, "max_trial_monitoring_time": 20},
        ["'trial_timeout'", "'max_trial_monitoring_time'", "10", "20"],
        id="trial_timeout-and-its-old-name-both",
    ),
]


@pytest.mark.parametrize(("config", "names"), CONFIG_ROWS)
def test_bad_config_is_a_config_error_naming_key_and_value(config: Any, names: list[str]) -> None:
    client = legacy_client()
    with pytest.raises(ConfigError) as raised:
        AxScheduler(client, threads(), config=config).close()
    assert isinstance(raised.value, ValueError)
    assert_names(str(raised.value), names)
    assert statuses(client) == {}
    assert_a_good_trial_still_runs(client)


# -- runner options -------------------------------------------------------------------
# JobLibRunner and DockerRunner document a plain ValueError; the others a ConfigError
# (also a ValueError).
RUNNER_OPTION_ROWS = [
    pytest.param(
        lambda: JobLibRunner(n_jobs=0),
        ValueError,
        ["n_jobs must be a positive int or -1 for all cores", "got 0"],
        id="joblib-n_jobs-0",
    ),
    pytest.param(
        lambda: JobLibRunner(n_jobs="4"),  # type: ignore[arg-type]
        ValueError,
        ["n_jobs must be a positive int", "got '4'"],
        id="joblib-n_jobs-string",
    ),
    pytest.param(
        lambda: JobLibRunner(n_jobs=2, backend="dask"),
        ValueError,
        ["backend must be one of loky, threading", "got 'dask'"],
        id="joblib-unknown-backend",
    ),
    pytest.param(
        lambda: DockerRunner(max_parallel=0),
        ValueError,
        ["max_parallel must be a positive int", "got 0"],
        id="docker-max_parallel-0",
    ),
    pytest.param(
        lambda: SlurmRunner(time_limit="soon"),
        ConfigError,
        ["time_limit 'soon'", "'HH:MM:SS'", "'D-HH:MM'"],
        id="slurm-time_limit-soon",
    ),
    pytest.param(
        lambda: SlurmRunner(memory="lots"),
        ConfigError,
        ["memory 'lots'", "'4G'"],
        id="slurm-memory-lots",
    ),
    pytest.param(
        lambda: SlurmRunner(cpus_per_task=0),
        ConfigError,
        ["cpus_per_task must be a positive int", "got 0"],
        id="slurm-cpus_per_task-0",
    ),
    pytest.param(
        lambda: SlurmRunner(config={"bogus": 1}),
        ConfigError,
        ["unknown config key 'bogus'", "allowed keys:", "sbatch_options"],
        id="slurm-config-unknown-key",
    ),
    pytest.param(
        lambda: SlurmRunner(config={"max_parallel": 0}),
        ConfigError,
        ["config['max_parallel']", "greater than 0", "got 0"],
        id="slurm-config-max_parallel-0",
    ),
    pytest.param(
        lambda: SlurmRunner(config={"sbatch_options": {"partition": "gpu"}}),
        ConfigError,
        ["sbatch option 'partition' is set by the runner", "SlurmRunner(partition=...)"],
        id="slurm-sbatch-option-the-runner-sets",
    ),
    pytest.param(
        lambda: SlurmRunner(ssh={"host": "login", "port": 0}),
        ConfigError,
        ["ssh['port']", "greater than or equal to 1", "got 0"],
        id="slurm-ssh-port-0",
    ),
    pytest.param(
        lambda: SlurmRunner(ssh={"host": "login", "prot": 22}),
        ConfigError,
        ["unknown ssh key 'prot'", "port"],
        id="slurm-ssh-misspelled-key",
    ),
    pytest.param(
        lambda: SSHRunner(hosts="gpu1"),
        ConfigError,
        ["hosts must be a list", "got 'gpu1'"],
        id="ssh-hosts-a-string",
    ),
    pytest.param(
        lambda: SSHRunner(hosts=[]),
        ConfigError,
        ["hosts is empty"],
        id="ssh-hosts-empty",
    ),
    pytest.param(
        lambda: SSHRunner(hosts=[{"host": "gpu1"}, 42]),  # type: ignore[list-item]
        ConfigError,
        ["hosts[1] must be a dict", "got 42"],
        id="ssh-host-a-number",
    ),
    pytest.param(
        lambda: SSHRunner(hosts=[{"port": 22}]),
        ConfigError,
        ["hosts[0]['host']", "field required"],
        id="ssh-host-without-host",
    ),
    pytest.param(
        lambda: SSHRunner(hosts=[{"host": "gpu1", "port": 70000}]),
        ConfigError,
        ["hosts[0]['port']", "less than or equal to 65535", "got 70000"],
        id="ssh-host-port-70000",
    ),
    pytest.param(
        lambda: SSHRunner(hosts=[{"host": "gpu1", "slots": "many"}]),
        ConfigError,
        ["hosts[0]['slots']", "valid integer", "got 'many'"],
        id="ssh-host-slots-string",
    ),
    pytest.param(
        lambda: SSHRunner(hosts=[{"host": "gpu1", "slotz": 2}]),
        ConfigError,
        ["unknown hosts[0] key 'slotz'", "slots"],
        id="ssh-host-misspelled-key",
    ),
    pytest.param(
        lambda: SSHRunner(hosts=["gpu1"], config={"max_resubmitz": 1}),
        ConfigError,
        ["unknown config key 'max_resubmitz'", "max_resubmits"],
        id="ssh-config-misspelled-key",
    ),
]


@pytest.mark.parametrize(("make", "error", "names"), RUNNER_OPTION_ROWS)
def test_bad_runner_options_are_refused_naming_option_and_value(
    make: Callable[[], Runner], error: type[Exception], names: list[str]
) -> None:
    with pytest.raises(error) as raised:
        make()
    assert_names(str(raised.value), names)


# -- what objectives return -----------------------------------------------------------
RESULT_ROWS = [
    pytest.param(
        [1.0, 2.0, 3.0],
        ["metric 'objective'", "a number or a (mean, sem) pair", "got [1.0, 2.0, 3.0]"],
        id="a-list",
    ),
    pytest.param(math.nan, ["metric 'objective'", "must be finite", "got nan"], id="nan"),
    pytest.param(
        {"objective": math.inf}, ["metric 'objective'", "must be finite", "got inf"], id="inf"
    ),
    pytest.param(
        "6.5", ["metric 'objective'", "must be a number", "got '6.5' (str)"], id="a-string"
    ),
    pytest.param(
        {"loss": 1.0},
        ["missing metric 'objective'", "returned keys: ['loss']"],
        id="dict-without-the-metric",
    ),
    pytest.param(None, ["metric 'objective'", "must be a number", "got None"], id="none-no-return"),
]


@pytest.mark.parametrize(("returned", "names"), RESULT_ROWS)
def test_a_bad_result_fails_its_trial_naming_the_value_and_the_run_goes_on(
    scheduler_factory: Any, make_client: Any, returned: Any, names: list[str]
) -> None:
    client = make_client()
    scheduler = scheduler_factory(client, JobLibRunner(n_jobs=2))
    scheduler.set_objective_function(functools.partial(objectives.returns_for_negative_x, returned))
    run_batch(scheduler, {"x": -0.5, "y": 0.5}, GOOD_XY)

    assert statuses(client) == {0: "FAILED", 1: "COMPLETED"}
    reason = failure_reason(client, 0)
    assert_names(reason, names)
    trials = experiment_of(client).trials
    assert trials[0].status_reason == reason
    assert trials[1].objective_mean == 6.5
    assert "failure_reason" not in trials[1].run_metadata["ax_scheduler"]


def test_an_extra_metric_is_no_error_the_trial_completes_and_a_warning_names_it(
    scheduler_factory: Any, make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    scheduler = scheduler_factory(client, JobLibRunner(n_jobs=2))
    extra = {"objective": 1.0, "not_tracked": 2.0}
    scheduler.set_objective_function(functools.partial(objectives.returns_for_negative_x, extra))
    with caplog.at_level(logging.WARNING, logger="ax_scheduler"):
        run_batch(scheduler, {"x": -0.5, "y": 0.5}, GOOD_XY)

    assert statuses(client) == {0: "COMPLETED", 1: "COMPLETED"}
    trials = experiment_of(client).trials
    assert (trials[0].objective_mean, trials[1].objective_mean) == (1.0, 6.5)
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "ax_scheduler" and r.levelno >= logging.WARNING
    ]
    assert len(warnings) == 1, warnings
    assert_names(warnings[0], ["trial 0", "does not track", "'not_tracked'"])
    metrics = set(experiment_of(client).lookup_data().df["metric_name"])
    assert metrics == {"objective"}


# -- script objectives ----------------------------------------------------------------
def make_script(tmp_path: Path, kind: str) -> Path:
    """A script path: ``missing``, ``not-executable``, ``executable`` or ``directory``."""
    path = tmp_path / "my sims" / "sim.py"
    path.parent.mkdir()
    if kind == "directory":
        path.mkdir()
    elif kind != "missing":
        shutil.copy(Path(__file__).parent / "scripts" / "rosenbrock.py", path)
        path.chmod(0o755 if kind == "executable" else 0o644)
    return path


SCRIPT_ROWS = [
    pytest.param("missing", None, FileNotFoundError, ["<script>", "does not exist"], id="missing"),
    pytest.param(
        "not-executable",
        None,
        PermissionError,
        ["<script>", "is not executable", "chmod +x", "'interpreter'"],
        id="not-executable-no-interpreter",
    ),
    pytest.param(
        "executable",
        {"interpreter": "pyhton3"},
        FileNotFoundError,
        ["interpreter 'pyhton3'", "not on PATH"],
        id="interpreter-not-on-path",
    ),
    pytest.param(
        "executable",
        {"timout": 5},
        ConfigError,
        ["unknown script_options key 'timout'", "timeout"],
        id="misspelled-option",
    ),
    pytest.param(
        "directory",
        None,
        OSError,
        ["<script>", "directory"],
        id="a-directory",
    ),
]


@pytest.mark.parametrize(("kind", "options", "error", "names"), SCRIPT_ROWS)
def test_a_bad_script_is_refused_when_set_naming_it(
    tmp_path: Path,
    kind: str,
    options: dict[str, Any] | None,
    error: type[Exception],
    names: list[str],
) -> None:
    script = make_script(tmp_path, kind)
    client = legacy_client()
    config = {"job_output_dir": str(tmp_path / "out")}
    with AxScheduler(client, threads(), config) as scheduler:
        scheduler.set_objective_function(objectives.rosenbrock_dict)
        with pytest.raises(error) as raised:
            scheduler.set_script_objective(script, options)
        assert_names(str(raised.value), [name.replace("<script>", str(script)) for name in names])
        assert statuses(client) == {}
        run_batch(scheduler, GOOD_XY)  # the objective set before is still the one
    assert statuses(client) == {0: "COMPLETED"}
    assert experiment_of(client).trials[0].objective_mean == 6.5


# -- runners that cannot run anything: a missing image, unreachable or untrusted hosts --
MISSING_IMAGE = "no-such-image:1.0"


@dataclass(frozen=True)
class Unusable:
    """A runner that cannot run trials, and what its error must name."""

    runner: Runner
    names: list[str]


def login(port: int | str) -> str:
    env = cluster_env()
    return f"{env['LOCALSLURM_SSH_USER']}@{env['LOCALSLURM_SSH_HOST']}:{port}"


def login_port() -> str:
    return cluster_env()["LOCALSLURM_SSH_PORT"]


def stranger_key(tmp_path: Path) -> str:
    """A client key the login node does not accept."""
    new_key(tmp_path / "stranger_key")
    return str(tmp_path / "stranger_key")


def impostor_known_hosts(tmp_path: Path) -> str:
    """A known_hosts file with another key for the login node: its key 'changed'."""
    path = tmp_path / "known_hosts"
    env = cluster_env()
    entry = f"[{env['LOCALSLURM_SSH_HOST']}]:{login_port()}"
    path.write_text(f"{entry} {new_key(tmp_path / 'other_host_key')}\n")
    return str(path)


def slurm_unreachable_port(tmp_path: Path) -> Unusable:
    port = free_port()
    runner = slurm_runner(tmp_path, ssh=ssh_options(port=port, reconnect_attempts=0))
    return Unusable(runner, [f"cannot connect to {login(port)}"])


def slurm_wrong_client_key(tmp_path: Path) -> Unusable:
    key = stranger_key(tmp_path)
    runner = slurm_runner(tmp_path, ssh=ssh_options(client_keys=[key]))
    return Unusable(runner, [f"{login(login_port())} rejected the login", key])


def slurm_changed_host_key(tmp_path: Path) -> Unusable:
    known_hosts = impostor_known_hosts(tmp_path)
    runner = slurm_runner(tmp_path, ssh=ssh_options(known_hosts=known_hosts))
    return Unusable(runner, [f"host key of {login(login_port())}", known_hosts])


def slurm_unknown_partition(tmp_path: Path) -> Unusable:
    runner = SlurmRunner(partition="nope", config=job_config(tmp_path), ssh=ssh_options())
    return Unusable(runner, ["'--partition=nope'", "invalid partition"])


def ssh_unreachable_port(tmp_path: Path) -> Unusable:
    port = free_port()
    runner = SSHRunner(hosts=[host(tmp_path, port=port, reconnect_attempts=0)])
    return Unusable(runner, ["none of the SSH hosts", f"cannot connect to {login(port)}"])


def ssh_unknown_host_name(tmp_path: Path) -> Unusable:
    entry = host(tmp_path, host="no-such-host.invalid", reconnect_attempts=0)
    runner = SSHRunner(hosts=[entry])
    return Unusable(runner, ["none of the SSH hosts", "no-such-host.invalid:"])


def ssh_wrong_client_key(tmp_path: Path) -> Unusable:
    key = stranger_key(tmp_path)
    runner = SSHRunner(hosts=[host(tmp_path, client_keys=[key])])
    return Unusable(runner, [f"{login(login_port())} rejected the login", key])


def ssh_changed_host_key(tmp_path: Path) -> Unusable:
    known_hosts = impostor_known_hosts(tmp_path)
    runner = SSHRunner(hosts=[host(tmp_path, known_hosts=known_hosts)])
    return Unusable(runner, [f"host key of {login(login_port())}", known_hosts])


def docker_missing_image(tmp_path: Path) -> Unusable:
    """Needs the engine (test_docker.py fails, not skips, without one)."""
    from test_docker import require_docker

    require_docker()
    return Unusable(DockerRunner(max_parallel=2), [f"image {MISSING_IMAGE!r} is not in the engine"])


UNUSABLE_CASES = [
    ("slurm-unreachable-port", slurm_unreachable_port, pytest.mark.slurm),
    ("slurm-wrong-client-key", slurm_wrong_client_key, pytest.mark.slurm),
    ("slurm-changed-host-key", slurm_changed_host_key, pytest.mark.slurm),
    ("slurm-unknown-partition", slurm_unknown_partition, pytest.mark.slurm),
    ("ssh-unreachable-port", ssh_unreachable_port, pytest.mark.slurm),
    ("ssh-unknown-host-name", ssh_unknown_host_name, pytest.mark.slurm),
    ("ssh-wrong-client-key", ssh_wrong_client_key, pytest.mark.slurm),
    ("ssh-changed-host-key", ssh_changed_host_key, pytest.mark.slurm),
    ("docker-missing-image", docker_missing_image, pytest.mark.docker),
]
#: How the trials are asked for; in every way, the error is raised before any trial
#: exists. A background batch (synchronous=False) returns as soon as its trials are
#: submitted, but it checks the runner and the objective first, like the others.
RAISING = ["batch", "run_optimization"]
#: One background case per runner kind.
BACKGROUND_TOO = {"slurm-unknown-partition", "ssh-unreachable-port", "docker-missing-image"}

UNUSABLE_ROWS = [
    pytest.param(
        make,
        entry,
        id=f"{name}-{entry}",
        marks=[mark],
    )
    for name, make, mark in UNUSABLE_CASES
    for entry in [*RAISING, *(["background-batch"] if name in BACKGROUND_TOO else [])]
]


@pytest.mark.parametrize(("make", "entry"), UNUSABLE_ROWS)
def test_a_runner_that_cannot_run_names_why_and_leaves_no_trial_running(
    tmp_path: Path, make: Callable[[Path], Unusable], entry: str
) -> None:
    case = make(tmp_path)
    is_slurm = isinstance(case.runner, SlurmRunner)
    jobs_before = set(queue()) if is_slurm else set()
    client = legacy_client()
    config = {"job_output_dir": str(tmp_path / "out"), "synchronous": entry != "background-batch"}
    with AxScheduler(client, case.runner, config) as scheduler:
        if isinstance(case.runner, DockerRunner):
            scheduler.set_container_objective(MISSING_IMAGE, "true")
        else:
            scheduler.set_objective_function(cluster_objectives.rosenbrock)
        with pytest.raises(RunnerError) as raised:
            if entry == "run_optimization":
                scheduler.run_optimization(max_trials=2)
            else:
                run_batch(scheduler, GOOD_XY, {"x": 0.1, "y": 0.2})
        assert_names(str(raised.value), case.names)
        assert statuses(client) == {}
    assert "RUNNING" not in statuses(client).values()
    if is_slurm:
        assert set(queue()) - jobs_before == set(), "a job was submitted"
    if isinstance(case.runner, DockerRunner):
        assert our_containers() == []
