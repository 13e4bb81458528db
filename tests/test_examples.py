"""The tutorial's examples, run as a user runs them: a fresh Python process."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"


def run_example(name: str, cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_tutorial_complete_example_prints_batch_results_and_saves_ten_trials(
    tmp_path: Path,
) -> None:
    from ax.service.ax_client import AxClient

    out = run_example("batch_trial_submission.py", tmp_path)

    objectives = [float(v) for v in re.findall(r"Trial \d: Params .*, Objective: (\S+)", out)]
    assert objectives == [6.5, 8.5, 56.5, 58.5]
    assert "Best parameters after all trials:" in out
    best = out.split("Best parameters after all trials:")[1].strip()
    assert set(eval(best)) == {"x", "y"}  # a plain dict of parameters

    saved = tmp_path / "batch_trial_results.json"
    assert json.loads(saved.read_text())["_type"] == "AxClient"
    client = AxClient.load_from_json_file(str(saved), verbose_logging=False)
    trials = client.experiment.trials
    assert len(trials) == 10
    assert all(trial.status.name == "COMPLETED" for trial in trials.values())
    assert all(trial.objective_mean is not None for trial in trials.values())
    assert not list(tmp_path.glob(".batch_trial_results.json.*"))  # no temp file left


@pytest.mark.slow
def test_tutorial_advanced_sections_run_without_duplicates(tmp_path: Path) -> None:
    out = run_example("batch_trial_advanced.py", tmp_path)

    assert "Trials after the model-generated batch: 4" in out
    submitted = float(re.search(r"Asynchronous batch submitted in (\S+) s", out).group(1))
    assert submitted < 1.0, out  # returned without waiting for 10 x 0.2 s on 4 workers
    assert int(re.search(r"(\d+) trials still running in the background", out).group(1)) > 0
    assert "All trials finished: 14 trials, {'COMPLETED': 14}" in out


@pytest.mark.slow
def test_async_app_example_runs(tmp_path: Path) -> None:
    out = run_example("async_app.py", tmp_path)
    assert "best parameters:" in out
    gap = float(re.search(r"largest heartbeat gap: (\S+) ms", out).group(1))
    assert gap < 100


@pytest.mark.slow
def test_script_objective_example_runs(tmp_path: Path) -> None:
    out = run_example("script_objective.py", tmp_path)
    assert "best parameters:" in out
    assert "simulated x=" in out  # trial 0's stdout.log
    assert len(list((tmp_path / "script_runs").iterdir())) == 8


@pytest.mark.slow
@pytest.mark.docker
def test_container_objective_example_runs(tmp_path: Path) -> None:
    out = run_example("container_objective.py", tmp_path)
    assert "best parameters:" in out
    assert "simulated x=0.500 y=0.500: energy 6.500" in out


@pytest.mark.slow
def test_the_resumable_campaign_survives_kill_minus_nine(tmp_path: Path) -> None:
    import os
    import signal

    from ax_scheduler._ax import client_from_snapshot

    def trials() -> dict[int, str]:
        try:
            snapshot = json.loads((tmp_path / "campaign.json").read_text())["client"]
        except (FileNotFoundError, ValueError, KeyError):
            return {}
        experiment = client_from_snapshot(snapshot).experiment
        return {i: t.status.name for i, t in experiment.trials.items()}

    first = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "resumable_campaign.py")],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = 120
        while deadline > 0 and list(trials().values()).count("COMPLETED") < 2:
            time.sleep(0.5)
            deadline -= 0.5
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    before = trials()
    lost = [i for i, status in before.items() if status == "RUNNING"]

    out = run_example("resumable_campaign.py", tmp_path)  # the same command, again

    after = trials()
    assert "best parameters:" in out
    # Trials whose worker died mid-run are FAILED (and run again as new trials);
    # those still waiting for a slot, or whose result was on disk, complete.
    failed = {i for i, status in after.items() if status == "FAILED"}
    assert failed <= set(lost)
    assert list(after.values()).count("COMPLETED") == 12 - len(failed)
    assert len(after) == 12
    again = run_example("resumable_campaign.py", tmp_path)  # nothing left to do
    assert "this run: 0 trials" in again


@pytest.mark.slow
def test_hand_loop_comparison_runs_both_loops_to_completion(tmp_path: Path) -> None:
    out = run_example("from_hand_loop.py", tmp_path)
    assert "hand_written_loop: 12 of 12 trials completed" in out
    assert "with_ax_scheduler: 12 of 12 trials completed" in out
    assert out.count("best parameters: {'x'") == 2


@pytest.mark.slow
def test_run_trials_comparison_runs_both_to_completion(tmp_path: Path) -> None:
    out = run_example("from_ax_run_trials.py", tmp_path)
    assert "with_ax_run_trials: 8 of 8 trials completed" in out
    assert "with_ax_scheduler: 8 of 8 trials completed" in out
    assert out.count("best parameters: {'x'") == 2


@pytest.mark.slow
def test_migration_example_runs_function_then_script_on_the_loaded_run(tmp_path: Path) -> None:
    out = run_example("migration_from_scheduler.py", tmp_path)
    assert "trials: 6, completed: 6" in out
    assert "best parameters: {'x'" in out
    assert (tmp_path / "migrated.json").exists()
    assert len(list((tmp_path / "ax_scheduler_output").glob("migrated-trial-*"))) == 6


@pytest.mark.slow
def test_migrated_multi_objective_example_picks_a_pareto_point(tmp_path: Path) -> None:
    # The older package's enhanced example indexed the Pareto list by a parameter name.
    out = run_example("migrated_detector_optimization.py", tmp_path)
    count, first = re.search(r"(\d+) Pareto-optimal designs; the first: (\{.*\})", out).groups()
    assert int(count) >= 1
    assert set(ast.literal_eval(first)) == {"field_strength", "detector_length", "detector_radius"}
    for metric in ("resolution", "acceptance", "cost"):
        assert re.search(rf"^{metric}: \d+\.\d{{4}}$", out, re.MULTILINE)
    # cleanup_after_completion: the completed trials left no folder behind.
    assert list((tmp_path / "detector_outputs").glob("*")) == []


@pytest.mark.slow
def test_watch_and_report_example_logs_tables_and_reports(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "watch_and_report.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out, lines = result.stdout, result.stderr.splitlines()  # the log goes to stderr
    assert sum(" queued for joblib" in line for line in lines) == 8
    assert sum(" completed in " in line or " failed after " in line for line in lines) == 8
    assert "trial_index" in out
    assert "report written to report.html" in out
    report = (tmp_path / "report.html").read_text()
    assert "watched" in report
    folders = sorted((tmp_path / "trials").glob("watched-trial-*"))
    assert len(folders) == 8
    assert (folders[0] / "stdout.log").read_text().startswith("simulating x=")


def test_the_database_checkpoint_example_continues_its_run_each_time(tmp_path: Path) -> None:
    assert "4 trials in sqlite:///campaign.db" in run_example("database_checkpoint.py", tmp_path)
    assert "8 trials in sqlite:///campaign.db" in run_example("database_checkpoint.py", tmp_path)
    status = subprocess.run(
        [str(Path(sys.executable).parent / "ax-scheduler"), "status", "sqlite:///campaign.db"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0, status.stderr
    assert "8 trials: 8 COMPLETED" in status.stdout
