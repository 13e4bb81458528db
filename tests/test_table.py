"""scheduler.results(), the trials' own folders, and the log line per state change."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import objectives
from ax_scheduler import AxScheduler, JobLibRunner
from ax_scheduler._ax import client_from_snapshot
from ax_scheduler._table import results_frame
from conftest import legacy_client

BATCH = [{"x": -1.0, "y": 0.5}, {"x": 0.5, "y": 0.25}, {"x": 1.0, "y": 1.0}]


def run_batch(scheduler: Any) -> None:
    with scheduler.batch_trial_context() as batch:
        for parameters in BATCH:
            batch.add_trial(parameters)


def test_results_table_has_one_row_per_trial_with_outcome_times_and_folders(
    tmp_path: Path, make_client: Any
) -> None:
    client = make_client()
    with AxScheduler(client, JobLibRunner(n_jobs=2), config={"job_output_dir": tmp_path}) as s:
        s.set_objective_function(objectives.chatty_fails_when_x_negative)
        run_batch(s)
        s.run_optimization(max_trials=2)
    df = s.results()  # after close: read from the experiment directly

    assert list(df["trial_index"]) == [0, 1, 2, 3, 4]
    assert df.attrs["parameters"] == ["x", "y"]
    assert df.attrs["objectives"] == {"objective": "minimize"}
    failed, completed = df.iloc[0], df.iloc[1]
    assert failed["status"] == "FAILED"
    assert failed["failure_reason"] == "ZeroDivisionError: simulated crash at x=-1.0"
    assert pd.isna(failed["objective"])
    assert completed["status"] == "COMPLETED"
    assert completed["objective"] == pytest.approx(objectives.rosenbrock(BATCH[1]))
    assert pd.isna(completed["failure_reason"])
    assert (completed["x"], completed["y"]) == (0.5, 0.25)
    assert set(df["runner"]) == {"joblib"}
    assert (df["queued_at"] <= df["started_at"]).all()
    assert (df["started_at"] <= df["finished_at"]).all()
    seconds = (df["finished_at"] - df["started_at"]).dt.total_seconds()
    # Epoch seconds as floats carry ~0.2 us; the timestamps are rounded to ns.
    assert df["duration_s"].to_numpy() == pytest.approx(seconds.to_numpy(), abs=1e-6)

    folder = Path(completed["workdir"])
    assert folder.parent == tmp_path
    assert json.loads((folder / "params.json").read_text()) == BATCH[1]
    assert json.loads((folder / "result.json").read_text()) == {
        "objective": pytest.approx(completed["objective"])
    }
    assert Path(completed["stdout"]).read_text() == "python stdout x=0.5\nfd stdout\n"
    assert Path(completed["stderr"]).read_text() == "python stderr x=0.5\n"
    error = json.loads((Path(failed["workdir"]) / "error.json").read_text())
    assert error["error"] == failed["failure_reason"]
    assert "ZeroDivisionError" in error["traceback"]


def test_results_during_a_run_show_running_trials(tmp_path: Path, scheduler_factory: Any) -> None:
    scheduler = scheduler_factory(
        legacy_client(),
        objective=objectives.slow_rosenbrock,
        synchronous=False,
        job_output_dir=tmp_path,
    )
    run_batch(scheduler)

    running = scheduler.results()
    scheduler.wait_for_completed_trials()
    done = scheduler.results()

    assert set(running["status"]) == {"RUNNING"}
    assert running["finished_at"].isna().all()
    assert running["queued_at"].notna().all()
    assert set(done["status"]) == {"COMPLETED"}
    assert done["finished_at"].notna().all()


def test_results_of_a_saved_run_equal_the_live_table(
    tmp_path: Path, scheduler_factory: Any
) -> None:
    scheduler = scheduler_factory(
        legacy_client(), objective=objectives.fails_when_x_negative, job_output_dir=tmp_path
    )
    run_batch(scheduler)
    live = scheduler.results()
    saved = scheduler.save_experiment(tmp_path / "run.json")

    loaded = client_from_snapshot(json.loads(saved.read_text()))
    again = results_frame(loaded.experiment)

    pd.testing.assert_frame_equal(live, again)


def test_threading_backend_trials_have_no_folder(tmp_path: Path, scheduler_factory: Any) -> None:
    runner = JobLibRunner(n_jobs=2, backend="threading")
    scheduler = scheduler_factory(
        legacy_client(), runner, objective=objectives.rosenbrock_dict, job_output_dir=tmp_path
    )
    run_batch(scheduler)

    assert scheduler.results()["workdir"].isna().all()
    assert list(tmp_path.iterdir()) == []


def test_one_log_line_per_state_change_and_no_handlers_of_our_own(
    tmp_path: Path, scheduler_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = scheduler_factory(
        legacy_client(), objective=objectives.fails_when_x_negative, job_output_dir=tmp_path
    )
    with caplog.at_level(logging.INFO, logger="ax_scheduler"):
        run_batch(scheduler)

    lines = [r.getMessage() for r in caplog.records if r.name == "ax_scheduler"]
    for index in range(3):
        mine = [line for line in lines if line.startswith(f"trial {index} ")]
        assert mine[0] == f"trial {index} queued for joblib"
        assert mine[1] == f"trial {index} started on joblib"
    assert any(line.startswith("trial 0 failed after ") and "(joblib)" in line for line in lines)
    assert sum(line.startswith("trial 1 completed in ") for line in lines) == 1
    assert any(line.startswith("trial 2 completed in ") and "objective=0" in line for line in lines)
    ours = logging.getLogger("ax_scheduler")
    assert ours.handlers == []
    assert ours.level == logging.NOTSET


def test_report_is_written_during_a_run_after_close_and_from_async(
    tmp_path: Path, scheduler_factory: Any
) -> None:
    scheduler = scheduler_factory(
        legacy_client(), objective=objectives.fails_when_x_negative, job_output_dir=tmp_path
    )
    run_batch(scheduler)

    during = scheduler.report(tmp_path / "during.html")
    scheduler.close()
    after = scheduler.report(tmp_path / "after.html", title="Rosenbrock, afterwards")

    for page in (during, after):
        html = page.read_text()
        assert "test_experiment" in html
        assert "3 (2 completed, 1 failed)" in html
        assert "ZeroDivisionError: simulated crash at x=-1.0" in html
    assert "Rosenbrock, afterwards" in after.read_text()


async def test_results_and_report_async(tmp_path: Path) -> None:
    async with AxScheduler(
        legacy_client(), JobLibRunner(n_jobs=2), config={"job_output_dir": tmp_path}
    ) as scheduler:
        scheduler.set_objective_function(objectives.rosenbrock_dict)
        await scheduler.run_optimization_async(max_trials=2)
        table = await scheduler.results_async()
        page = await scheduler.report_async(tmp_path / "report.html")

    assert list(table["status"]) == ["COMPLETED", "COMPLETED"]
    assert "2 (2 completed)" in page.read_text()
