"""Closing: explicit, by context manager, and by simply ending the script."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import objectives
from ax_scheduler import AxScheduler, JobLibRunner, SchedulerClosedError
from conftest import alive, legacy_client, statuses, wait_until, worker_pids

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, {tests!r})
    from conftest import legacy_client
    from ax_scheduler import AxScheduler, JobLibRunner

    def objective(p):
        with open(os.path.join({out!r}, f"{{os.getpid()}}.pid"), "w"):
            pass
        time.sleep(600)

    client = legacy_client()
    scheduler = AxScheduler(client, JobLibRunner(n_jobs=2), config={{"synchronous": False}})
    scheduler.set_objective_function(objective)
    with scheduler.batch_trial_context() as batch:
        batch.add_trial({{"x": 0.5, "y": 0.5}})
        batch.add_trial({{"x": 0.1, "y": 0.5}})
    while len(os.listdir({out!r})) < 2:
        time.sleep(0.05)
    print("script ends", flush=True)
    """
)


@pytest.mark.slow
def test_script_that_never_closes_exits_promptly_and_leaves_no_workers(tmp_path: Path) -> None:
    out = tmp_path / "pids"
    out.mkdir()
    script = tmp_path / "never_closes.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent), out=str(out)))

    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert "script ends" in result.stdout
    assert "trial 0 abandoned: cancelled: the scheduler was closed" in result.stderr
    pids = [int(p.stem) for p in out.glob("*.pid")]
    assert len(pids) == 2
    assert wait_until(lambda: not any(alive(pid) for pid in pids), 5)


def test_context_manager_closes_and_refuses_further_use() -> None:
    client = legacy_client()
    with AxScheduler(client, JobLibRunner(n_jobs=2)) as scheduler:
        scheduler.set_objective_function(objectives.rosenbrock_dict)
        scheduler.run_optimization(max_trials=2)
        assert worker_pids()
    assert not worker_pids()
    with pytest.raises(SchedulerClosedError, match="closed"):
        scheduler.run_optimization(max_trials=1)


def test_close_abandons_background_trials(scheduler_factory: Any) -> None:
    client = legacy_client()
    scheduler = scheduler_factory(client, objective=objectives.sleep_forever, synchronous=False)
    with scheduler.batch_trial_context() as batch:
        batch.add_trial({"x": 0.5, "y": 0.5})
    scheduler.close()
    assert statuses(client) == {0: "ABANDONED"}
    assert not worker_pids()


def test_closing_an_unused_scheduler_is_cheap() -> None:
    scheduler = AxScheduler(legacy_client(), JobLibRunner(n_jobs=2))
    scheduler.close()
    scheduler.close()  # idempotent
    assert not worker_pids()


CTRL_C_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    # A terminal's foreground job gets Ctrl-C even if whatever started this test
    # ran it as a background job of a non-interactive shell (SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, {tests!r})
    os.environ["AX_SCHEDULER_TEST_PID_DIR"] = {out!r}
    from conftest import legacy_client, statuses
    import objectives
    from ax_scheduler import AxScheduler, JobLibRunner

    client = legacy_client()
    scheduler = AxScheduler(
        client, JobLibRunner(n_jobs=2), config={{"checkpoint_path": {checkpoint!r}}}
    )
    scheduler.set_objective_function(objectives.sleep_forever)
    print("running", flush=True)
    try:
        scheduler.run_optimization(max_trials=4)
    except KeyboardInterrupt:
        print("statuses", statuses(client), flush=True)
        print("reason", client.experiment.trials[0].status_reason, flush=True)
        raise
    """
)


def start_driver_with_two_trials_running(tmp_path: Path) -> tuple[subprocess.Popen[str], list[int]]:
    """Run CTRL_C_SCRIPT in its own session (a terminal's foreground job: Ctrl-C
    reaches the whole group); return once both trials are inside their objective."""
    out = tmp_path / "pids"
    out.mkdir()
    script = tmp_path / "driver.py"
    script.write_text(
        CTRL_C_SCRIPT.format(
            tests=str(Path(__file__).parent),
            out=str(out),
            checkpoint=str(tmp_path / "run.json"),
        )
    )
    driver = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert wait_until(lambda: len(list(out.glob("*.pid"))) == 2, 120)
    return driver, [int(p.stem) for p in out.glob("*.pid")]


@pytest.mark.slow
def test_ctrl_c_abandons_running_trials_and_kills_workers(tmp_path: Path) -> None:
    import os
    import signal

    driver, trial_pids = start_driver_with_two_trials_running(tmp_path)
    os.killpg(driver.pid, signal.SIGINT)
    try:
        stdout, stderr = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:  # a failed test must not leave its driver behind
            os.killpg(driver.pid, signal.SIGKILL)

    assert "KeyboardInterrupt" in stderr
    # The two running trials and those generated ahead, waiting for a slot (under
    # Sobol a wave of them, as many as the Ax thread made by then): all ABANDONED.
    assert "statuses " in stdout, stderr[-2000:]
    printed = ast.literal_eval(stdout.split("statuses ", 1)[1].splitlines()[0])
    assert set(printed) >= {0, 1, 2}, printed
    assert set(printed.values()) == {"ABANDONED"}, printed
    assert "reason cancelled by user (Ctrl-C)" in stdout
    assert wait_until(lambda: not any(alive(pid) for pid in trial_pids), 5)
    # The checkpoint was written after the cancellation, before the exit.
    from ax_scheduler._ax import client_from_snapshot
    from ax_scheduler._checkpoint import read_checkpoint

    saved = client_from_snapshot(read_checkpoint(tmp_path / "run.json").client)
    assert statuses(saved) == printed
    assert saved.experiment.trials[1].status_reason == "cancelled by user (Ctrl-C)"


@pytest.mark.slow
def test_workers_exit_when_the_driver_is_killed(tmp_path: Path) -> None:
    import os
    import signal

    driver, trial_pids = start_driver_with_two_trials_running(tmp_path)
    os.kill(driver.pid, signal.SIGKILL)
    driver.communicate(timeout=10)

    assert wait_until(lambda: not any(alive(pid) for pid in trial_pids), 10)
