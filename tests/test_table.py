"""scheduler.results(), the trials' own folders, and the log line per state change;
the curves trials report, the trials stopped early and the compute that saved."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import curves
import objectives
import report_screenshot
from ax_scheduler import AxScheduler, JobLibRunner
from ax_scheduler._ax import client_from_snapshot
from ax_scheduler._savings import early_stopping_savings
from ax_scheduler._table import TrialTable, results_frame, table_frame, trial_table
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


# --- trials that report while they run, and early stopping --------------------------


@pytest.fixture(scope="module")
def stopped_early(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Path]:
    """A run with early stopping (report_screenshot.early_stopping_run): its
    experiment, its results while the scheduler was open, and its saved file."""
    output = tmp_path_factory.mktemp("stopped-early")
    with report_screenshot.early_stopping_run(output) as scheduler:
        live = scheduler.results()
        saved = scheduler.save_experiment(output / "run.json")
    return scheduler.experiment, live, saved


def test_results_show_early_stopped_trials_their_last_step_reason_and_curve(
    stopped_early: tuple[Any, Any, Path],
) -> None:
    _, df, _ = stopped_early
    parameters = [*report_screenshot.GOOD, *report_screenshot.BAD, *report_screenshot.SILENT]

    assert list(df["status"]) == ["COMPLETED"] * 2 + ["EARLY_STOPPED"] * 2 + ["COMPLETED"]
    assert list(df["last_step"][:2]) == [curves.STEPS - 1] * 2
    assert all(5 <= step < curves.STEPS - 5 for step in df["last_step"][2:4])
    assert pd.isna(df["last_step"][4])  # its objective never reported
    assert df["last_step"].dtype == "float64"
    for index in (2, 3):
        assert "percentile" in df["early_stop_reason"][index]
        assert pd.isna(df["failure_reason"][index])
    assert df["early_stop_reason"][[0, 1, 4]].isna().all()
    for index in range(4):
        (points,) = df["curve"][index].values()  # the one objective's
        assert list(df["curve"][index]) == ["objective"]
        steps = [step for step, _ in points]
        assert steps == [float(step) for step in range(int(df["last_step"][index]) + 1)]
        expected = [curves.loss(parameters[index], int(step)) for step in steps]
        assert [value for _, value in points] == pytest.approx(expected)
        assert points[-1][1] == pytest.approx(df["objective"][index])  # its latest report
    assert df["curve"][4] is None
    assert "step" in df.attrs["curve"]


def test_results_of_a_saved_run_with_curves_equal_the_live_table(
    stopped_early: tuple[Any, Any, Path],
) -> None:
    _, live, saved = stopped_early

    loaded = client_from_snapshot(json.loads(saved.read_text()))
    again = results_frame(loaded.experiment)

    pd.testing.assert_frame_equal(live, again)
    assert again.attrs == live.attrs


def test_the_plain_table_goes_through_json_with_its_curves_unchanged(
    stopped_early: tuple[Any, Any, Path],
) -> None:
    experiment, _, _ = stopped_early
    table = trial_table(experiment)

    back = TrialTable.from_json(json.loads(json.dumps(table.to_json())))

    assert back == table
    pd.testing.assert_frame_equal(table_frame(back), results_frame(experiment), check_exact=True)


def test_a_table_of_the_first_layout_is_not_read_as_this_one() -> None:
    old = {
        "version": 1,
        "name": "e",
        "parameters": ["x"],
        "metrics": ["m"],
        "objectives": {"m": "minimize"},
        "columns": ["trial_index", "status", "x", "m", "m_sem"],
        "rows": [],
    }
    # Version 1 had no last_step, early_stop_reason or curve: status reads Ax's snapshot.
    assert TrialTable.from_json(old) is None


def test_compute_saved_is_estimated_from_the_table_as_ax_estimates_it(
    stopped_early: tuple[Any, Any, Path],
) -> None:
    from ax.early_stopping.utils import estimate_early_stopping_savings

    experiment, df, _ = stopped_early

    savings = early_stopping_savings(zip(df["status"], df["last_step"], strict=True))

    assert savings is not None
    assert savings.share == pytest.approx(estimate_early_stopping_savings(experiment))
    assert savings.stopped == 2
    assert savings.baseline == curves.STEPS - 1  # the completed trials that reported
    assert savings.run == df["last_step"].sum()  # NaN (the silent trial) skipped
    assert savings.saved == sum(curves.STEPS - 1 - step for step in df["last_step"][2:4])


@pytest.mark.parametrize(
    "trials",
    [
        [("COMPLETED", 19.0), ("COMPLETED", None)],  # nothing stopped
        [("EARLY_STOPPED", 6.0), ("RUNNING", 8.0)],  # nothing completed to compare with
        [("EARLY_STOPPED", 6.0), ("COMPLETED", math.nan)],  # a completed trial never reported
    ],
)
def test_compute_saved_is_unknown_without_a_stopped_and_a_completed_trial_that_reported(
    trials: list[tuple[str, float | None]],
) -> None:
    assert early_stopping_savings(trials) is None
