"""A driver SIGKILLed mid-run, then resumed from its checkpoint, on each backend.

Each test starts a real driver process running a few trials with ``checkpoint_path``,
kills it with SIGKILL once the checkpoint shows finished and running trials, and
resumes in this process with ``AxScheduler.resume``. Slurm and Docker jobs outlive
the driver: they are re-attached and their results used exactly once (each
objective counts its calls in a shared directory). Local-pool function trials cut
short die with their worker processes: they end FAILED ("driver restarted"), and
``requeue_lost_trials`` runs their parameters again; those that never started run
now (scripts, which outlive the driver, are in test_local_resume.py). Afterwards no
trial is RUNNING, no job is queued and no container or worker process is left.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import objectives
from ax_scheduler import (
    AxScheduler,
    CheckpointError,
    DockerRunner,
    JobLibRunner,
    SlurmRunner,
    SSHRunner,
)
from ax_scheduler._ax import client_from_snapshot
from ax_scheduler._checkpoint import read_checkpoint
from cluster import TESTS, job_config, queue, ssh_options
from conftest import legacy_client, statuses, wait_until

#: Trials of a run: enough for some finished, running and (SSH) waiting for a slot
#: at the kill; more would only make each test wait longer for the same kinds.
TRIALS = 6
#: The local pool's run: the lost trials' twins come on top of the trials the
#: driver had made by the kill (two finished, two running, two waiting under
#: Sobol; two more if the kill comes a wave late), and resuming fills up to this.
LOCAL_TRIALS = 12

DRIVER = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {tests!r})
    os.environ.update({env!r})
    from conftest import legacy_client
    from ax_scheduler import AxScheduler, DockerRunner, JobLibRunner, SlurmRunner, SSHRunner

    client = legacy_client()
    scheduler = AxScheduler(client, {runner}, config={config!r})
    {objective}
    print("pid", os.getpid(), flush=True)
    scheduler.run_optimization(max_trials={trials})
    print("finished before it was killed", flush=True)
    """
)


def start_driver(
    tmp_path: Path,
    runner: str,
    objective: str,
    config: dict[str, Any],
    env: dict[str, str],
    trials: int = TRIALS,
) -> subprocess.Popen[str]:
    script = tmp_path / "driver.py"
    script.write_text(
        DRIVER.format(
            tests=str(TESTS),
            env=env,
            runner=runner,
            config=config,
            objective=objective,
            trials=trials,
        )
    )
    return subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def checkpoint_statuses(path: Path) -> dict[int, tuple[str, dict[str, Any]]]:
    """Each trial's status and scheduler run metadata, as the checkpoint has them."""
    try:
        client = client_from_snapshot(read_checkpoint(path).client)
    except CheckpointError:
        return {}  # not written yet
    trials = client.experiment.trials
    return {
        i: (t.status.name, dict(t.run_metadata.get("ax_scheduler", {}))) for i, t in trials.items()
    }


def kill_when(
    driver: subprocess.Popen[str],
    path: Path,
    completed: int,
    running_with: str,
    started: Callable[[dict[str, Any]], bool] = lambda handle: True,
) -> dict[int, tuple[str, dict[str, Any]]]:
    """SIGKILL the driver once its checkpoint has ``completed`` COMPLETED trials and a
    RUNNING one whose handle has ``running_with`` and is ``started``; return what the
    checkpoint said."""
    seen: dict[int, tuple[str, dict[str, Any]]] = {}

    def ready() -> bool:
        nonlocal seen
        assert driver.poll() is None, driver.communicate()
        seen = checkpoint_statuses(path)
        done = sum(status == "COMPLETED" for status, _ in seen.values())
        live = [
            m
            for status, m in seen.values()
            if status == "RUNNING" and running_with in m and started(m)
        ]
        return done >= completed and bool(live)

    try:
        assert wait_until(ready, 180), seen
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        driver.communicate(timeout=30)
    return seen


def finish_resumed(
    path: Path, runner: Any, objective: Any, trials: int = TRIALS, **config: Any
) -> AxScheduler:
    """Resume, collect the re-attached trials, and run the rest of the ``trials``."""
    scheduler = AxScheduler.resume(path, runner, config=config or None)
    objective(scheduler)
    scheduler.wait_for_completed_trials()
    remaining = trials - len(scheduler.experiment.trials)
    scheduler.run_optimization(max_trials=max(remaining, 0))
    scheduler.close()
    return scheduler


def assert_nothing_running(scheduler: AxScheduler) -> None:
    assert "RUNNING" not in statuses(scheduler.ax_client).values()
    # The checkpoint on disk says the same.
    assert all(
        status != "RUNNING"
        for status, _ in checkpoint_statuses(
            scheduler.config.checkpoint_path  # type: ignore[arg-type]
        ).values()
    )


def calls(directory: Path) -> Counter[str]:
    """How often the objective ran per parameterization (one file line per call)."""
    return Counter({f.name: len(f.read_text().split()) for f in directory.iterdir()})


def key(parameters: dict[str, Any]) -> str:
    return f"{parameters['x']:.6f}"


@pytest.mark.slurm
@pytest.mark.slow
def test_a_killed_slurm_driver_resumes_and_uses_each_job_exactly_once(tmp_path: Path) -> None:
    counted = tmp_path / "calls"
    counted.mkdir()
    options = job_config(
        tmp_path, setup=[f"export PYTHONPATH={TESTS}", f"export AXS_TEST_CALLS={counted}"]
    )
    checkpoint = tmp_path / "run.json"
    runner = f"SlurmRunner(config={options!r}, ssh={ssh_options()!r})"
    set_objective = (
        "import cluster_objectives;"
        " scheduler.set_objective_function(cluster_objectives.counted_rosenbrock)"
    )
    driver = start_driver(tmp_path, runner, set_objective, {"checkpoint_path": str(checkpoint)}, {})
    seen = kill_when(driver, checkpoint, completed=2, running_with="slurm_job_id")
    in_flight = {i for i, (status, _) in seen.items() if status == "RUNNING"}

    def objective(scheduler: AxScheduler) -> None:
        import cluster_objectives

        scheduler.set_objective_function(cluster_objectives.counted_rosenbrock)

    resumed = finish_resumed(checkpoint, SlurmRunner(config=options, ssh=ssh_options()), objective)

    trials = resumed.experiment.trials
    assert len(trials) == TRIALS
    assert set(statuses(resumed.ax_client).values()) == {"COMPLETED"}, statuses(resumed.ax_client)
    ran = calls(counted)
    # Every trial's objective ran exactly once: the jobs in flight at the kill
    # were re-attached, not run again, and no trial is a duplicate.
    assert ran == Counter({key(t.arm.parameters): 1 for t in trials.values()}), ran
    for index in in_flight:
        metadata = trials[index].run_metadata["ax_scheduler"]
        assert metadata["slurm_job_id"] == seen[index][1]["slurm_job_id"]
    # A job whose trial has its result may still be COMPLETING (its epilog) a moment.
    assert wait_until(lambda: queue() == [], 10), f"jobs left: {queue()}"
    assert_nothing_running(resumed)


@pytest.mark.slurm
@pytest.mark.slow
def test_a_killed_ssh_driver_resumes_and_uses_each_worker_exactly_once(tmp_path: Path) -> None:
    from test_ssh import host

    counted = tmp_path / "calls"
    counted.mkdir()
    hosts = [
        host(tmp_path, slots=3, env={"AXS_TEST_CALLS": str(counted), "PYTHONPATH": str(TESTS)})
    ]
    checkpoint = tmp_path / "run.json"
    set_objective = (
        "import cluster_objectives;"
        " scheduler.set_objective_function(cluster_objectives.counted_rosenbrock)"
    )
    driver = start_driver(
        tmp_path,
        f"SSHRunner(hosts={hosts!r})",
        set_objective,
        {"checkpoint_path": str(checkpoint)},
        {},
    )

    def worker_started(handle: dict[str, Any]) -> bool:
        return "job_dir" in handle and Path(handle["job_dir"], "pid").exists()

    seen = kill_when(driver, checkpoint, 2, "job_dir", worker_started)
    in_flight = {i for i, (status, m) in seen.items() if status == "RUNNING" and worker_started(m)}

    def objective(scheduler: AxScheduler) -> None:
        import cluster_objectives

        scheduler.set_objective_function(cluster_objectives.counted_rosenbrock)

    resumed = finish_resumed(checkpoint, SSHRunner(hosts=hosts), objective)

    trials = resumed.experiment.trials
    assert len(trials) == TRIALS
    assert set(statuses(resumed.ax_client).values()) == {"COMPLETED"}, statuses(resumed.ax_client)
    assert calls(counted) == Counter({key(t.arm.parameters): 1 for t in trials.values()})
    assert in_flight
    for index in in_flight:  # its worker ran: followed in its directory, not restarted
        assert trials[index].run_metadata["ax_scheduler"]["job_dir"] == seen[index][1]["job_dir"]
    assert_nothing_running(resumed)


@pytest.mark.slow
def test_a_killed_local_driver_fails_its_lost_trials_and_can_requeue_them(
    tmp_path: Path,
) -> None:
    checkpoint = tmp_path / "run.json"
    driver = start_driver(
        tmp_path,
        "JobLibRunner(n_jobs=2)",
        "import objectives; scheduler.set_objective_function(objectives.three_second_rosenbrock)",
        {"checkpoint_path": str(checkpoint)},
        {},
        trials=LOCAL_TRIALS,
    )
    seen = kill_when(driver, checkpoint, completed=2, running_with="runner")
    running = {i for i, (status, _) in seen.items() if status == "RUNNING"}

    def objective(scheduler: AxScheduler) -> None:
        import objectives

        scheduler.set_objective_function(objectives.three_second_rosenbrock)

    resumed = finish_resumed(
        checkpoint, JobLibRunner(n_jobs=2), objective, LOCAL_TRIALS, requeue_lost_trials=True
    )

    trials = resumed.experiment.trials
    final = statuses(resumed.ax_client)
    # The trials its workers ran died with them: FAILED, and run again. Those
    # prefetched (waiting for a slot) never started: they ran on resume.
    lost = {i for i, status in final.items() if status == "FAILED"}
    assert lost
    assert lost <= running
    for index in lost:
        assert trials[index].status_reason.startswith(
            "driver restarted: its job was in the previous driver's own joblib workers"
        )
        twins = [
            i
            for i, t in trials.items()
            if i not in lost and t.arm.parameters == trials[index].arm.parameters
        ]
        assert len(twins) == 1
        assert final[twins[0]] == "COMPLETED"
    assert len(trials) == LOCAL_TRIALS
    assert sum(status == "COMPLETED" for status in final.values()) == LOCAL_TRIALS - len(lost)
    assert_nothing_running(resumed)


@pytest.mark.docker
@pytest.mark.slow
def test_a_killed_docker_driver_resumes_its_running_containers(tmp_path: Path) -> None:
    from test_docker import HOST_PYTHON, PYTHON_IMAGE, our_containers

    app, counted = tmp_path / "app", tmp_path / "calls"
    app.mkdir()
    counted.mkdir()
    (app / "sim.py").write_text(
        textwrap.dedent(
            """
            import json, sys, time
            params = json.load(open(sys.argv[1]))
            with open(f"/calls/{params['x']:.6f}", "a") as file:
                file.write("call\\n")
            time.sleep(3)
            value = (1 - params["x"]) ** 2 + 100 * (params["y"] - params["x"] ** 2) ** 2
            json.dump({"objective": value}, open(sys.argv[2], "w"))
            """
        )
    )
    container = {
        "container_image": PYTHON_IMAGE,
        "container_command": "/usr/bin/python3 /app/sim.py {params_file} {output_file}",
        "container_options": {
            "volumes": {**HOST_PYTHON, str(app): "/app:ro", str(counted): "/calls"},
            "network": "none",
        },
    }
    checkpoint = tmp_path / "run.json"
    config = {"checkpoint_path": str(checkpoint), "job_output_dir": str(tmp_path / "out")}
    driver = start_driver(
        tmp_path,
        "DockerRunner(max_parallel=3)",
        f"scheduler.set_container_objective(**{container!r})",
        config,
        {"DOCKER_HOST": os.environ.get("DOCKER_HOST", "")},
    )

    def running_container(handle: dict[str, Any]) -> bool:
        return handle["container"] in docker_ps()

    seen = kill_when(driver, checkpoint, 2, "container", running_container)
    running = docker_ps()
    in_flight = {i for i, (status, m) in seen.items() if m.get("container") in running}
    assert in_flight

    def objective(scheduler: AxScheduler) -> None:
        scheduler.set_container_objective(**container)

    resumed = finish_resumed(checkpoint, DockerRunner(max_parallel=3), objective)

    trials = resumed.experiment.trials
    assert len(trials) == TRIALS
    assert set(statuses(resumed.ax_client).values()) == {"COMPLETED"}, statuses(resumed.ax_client)
    assert calls(counted) == Counter({key(t.arm.parameters): 1 for t in trials.values()})
    for index in in_flight:  # running at the kill: re-attached by its name, not re-run
        metadata = trials[index].run_metadata["ax_scheduler"]
        assert metadata["container"] == seen[index][1]["container"]
        # Its output, which no driver streamed while it was down, is in its logs.
        assert Path(metadata["job_dir"], "stderr.log").exists()
    assert wait_until(lambda: our_containers() == [], 10), our_containers()
    assert_nothing_running(resumed)


def docker_ps() -> list[str]:
    """Names of running containers."""
    ps = ["docker", "ps", "--format", "{{.Names}}"]
    return subprocess.run(ps, capture_output=True, text=True, check=True).stdout.split()


# -- checkpoints themselves ---------------------------------------------------------
def test_the_checkpoint_follows_every_state_change_and_is_never_half_written(
    tmp_path: Path,
) -> None:
    import objectives

    checkpoint = tmp_path / "run.json"
    client = legacy_client()
    with AxScheduler(client, JobLibRunner(n_jobs=2), {"checkpoint_path": checkpoint}) as scheduler:
        scheduler.set_objective_function(objectives.fails_when_x_negative)
        with scheduler.batch_trial_context() as batch:
            batch.add_trial({"x": 0.5, "y": 0.5})
            batch.add_trial({"x": -0.5, "y": 0.5})
        after_batch = checkpoint_statuses(checkpoint)
        scheduler.run_optimization(max_trials=3)
        after_run = checkpoint_statuses(checkpoint)
    assert after_batch == {
        0: ("COMPLETED", after_batch[0][1]),
        1: ("FAILED", after_batch[1][1]),
    }
    assert "ZeroDivisionError" in after_batch[1][1]["failure_reason"]
    assert after_batch[1][1]["failure_kind"] == "objective"
    assert {i: s for i, (s, _) in after_run.items()} == statuses(client)
    assert len(after_run) == 5
    # Written whole each time: no temp file is left next to it.
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
    assert json.loads(checkpoint.read_text())["runner"] == "joblib"


def test_resume_refuses_corrupt_and_foreign_checkpoints(tmp_path: Path) -> None:
    runner = JobLibRunner(n_jobs=1)
    missing = tmp_path / "nope.json"
    with pytest.raises(CheckpointError, match="does not exist"):
        AxScheduler.resume(missing, runner)

    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"ax_scheduler_checkpoint": 1, "experiment": ')
    with pytest.raises(CheckpointError, match=r"corrupt\.json.*is corrupt: not JSON"):
        AxScheduler.resume(corrupt, runner)

    saved = tmp_path / "saved.json"
    client = legacy_client()
    AxScheduler(client, runner).save_experiment(saved)
    with pytest.raises(CheckpointError, match=r"not an ax-scheduler checkpoint.*load_experiment"):
        AxScheduler.resume(saved, runner)

    broken = tmp_path / "broken.json"
    broken.write_text(
        json.dumps(
            {
                "ax_scheduler_checkpoint": 1,
                "experiment": "x",
                "runner": "joblib",
                "config": {},
                "client": {"__type": "AxClient", "experiment": "garbage"},
            }
        )
    )
    with pytest.raises(CheckpointError, match="Ax cannot load its experiment"):
        AxScheduler.resume(broken, runner)


def test_a_checkpoint_path_holding_another_run_is_not_overwritten(tmp_path: Path) -> None:
    import objectives

    checkpoint = tmp_path / "run.json"
    first = legacy_client()
    with AxScheduler(first, JobLibRunner(n_jobs=1), {"checkpoint_path": checkpoint}) as scheduler:
        scheduler.set_objective_function(objectives.rosenbrock_dict)
        scheduler.run_optimization(max_trials=2)
    before = checkpoint.read_bytes()

    # The same experiment started afresh (fewer trials than the checkpoint holds).
    with pytest.raises(CheckpointError, match=r"2 trials.*AxScheduler\.resume"):
        AxScheduler(legacy_client(), JobLibRunner(n_jobs=1), {"checkpoint_path": checkpoint})

    from ax.service.ax_client import AxClient, ObjectiveProperties

    other = AxClient(verbose_logging=False)
    other.create_experiment(
        name="another_experiment",
        parameters=[{"name": "z", "type": "range", "bounds": [0.0, 1.0]}],
        objectives={"loss": ObjectiveProperties(minimize=True)},
    )
    with pytest.raises(CheckpointError, match="'test_experiment', not of 'another_experiment'"):
        AxScheduler(other, JobLibRunner(n_jobs=1), {"checkpoint_path": str(checkpoint)})
    assert checkpoint.read_bytes() == before

    # Resuming it continues writing the same file.
    resumed = AxScheduler.resume(checkpoint, JobLibRunner(n_jobs=1))
    resumed.set_objective_function(objectives.rosenbrock_dict)
    resumed.run_optimization(max_trials=1)
    resumed.close()
    assert len(checkpoint_statuses(checkpoint)) == 3


def test_resume_logs_how_many_trials_the_checkpoint_holds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoint = tmp_path / "run.json"
    config = {"checkpoint_path": checkpoint, "job_output_dir": tmp_path}
    with AxScheduler(legacy_client(), JobLibRunner(n_jobs=2), config=config) as scheduler:
        scheduler.set_objective_function(objectives.rosenbrock_dict)
        scheduler.run_optimization(max_trials=3)

    with caplog.at_level(logging.INFO, logger="ax_scheduler"):
        resumed = AxScheduler.resume(checkpoint, JobLibRunner(n_jobs=2))
    resumed.close()

    assert any(": 3 trials, 0 to re-attach" in r.getMessage() for r in caplog.records)


def test_resuming_reads_the_lost_trials_on_the_ax_thread_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the scheduler's Ax thread touches Ax objects, re-attaching included."""
    import shutil
    import threading

    from ax_scheduler._ax import AxAdapter

    path, lost = tmp_path / "run.json", tmp_path / "lost.json"
    config = {"checkpoint_path": str(path), "synchronous": False}
    with AxScheduler(legacy_client(), JobLibRunner(n_jobs=2), config=config) as scheduler:
        scheduler.set_objective_function(objectives.three_second_rosenbrock)
        with scheduler.batch_trial_context() as batch:
            batch.add_trial({"x": 0.5, "y": 0.5})
            batch.add_trial({"x": -0.5, "y": 0.5})
        assert wait_until(
            lambda: [s for s, _ in checkpoint_statuses(path).values()] == ["RUNNING"] * 2, 30
        )
        shutil.copy(path, lost)  # as a driver killed now would have left it

    threads: set[str] = set()
    trial = AxAdapter.trial

    def recording(self: AxAdapter, index: int) -> Any:
        threads.add(threading.current_thread().name)
        return trial(self, index)

    monkeypatch.setattr(AxAdapter, "trial", recording)
    with AxScheduler.resume(lost, JobLibRunner(n_jobs=2)) as resumed:
        resumed.set_objective_function(objectives.rosenbrock_dict)
        resumed.wait_for_completed_trials()
        assert "RUNNING" not in statuses(resumed.ax_client).values()
    assert threads == {"ax-scheduler-ax"}
