"""`ax-scheduler status` and `report` from the results table a checkpoint keeps.

Each checkpoint stores the trials as plain JSON beside Ax's snapshot, so
``status`` prints them without importing Ax: these tests check that it prints
exactly what reading the snapshot through Ax prints (older checkpoints have no
table), that it imports neither Ax nor torch nor pandas, that piped output keeps
one trial per line, and that the help screens show what the options take; and,
for a run with early stopping, that the stopped trials, each trial's last step,
its curve and the compute saved are there, the same either way.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

import curves
import report_screenshot
from ax_scheduler import AxScheduler
from ax_scheduler._ax import AxAdapter, client_from_snapshot
from ax_scheduler._checkpoint import TABLE_KEY
from ax_scheduler._table import TrialTable, results_frame, table_frame
from ax_scheduler.cli import app
from ax_scheduler.cli.output import print_table
from ax_scheduler.testing import FakeRunner
from conftest import legacy_client, modern_client

ROOT = Path(__file__).parents[1]
SCRIPT = Path(sys.executable).parent / "ax-scheduler"
FORMATS = ["table", "csv", "json"]

#: Trials with every kind of cell: a mean and SEM of many digits, a failure, a
#: reason of more than the table's 60 characters (ABANDONED at the run's timeout).
BATCH = [{"x": -1.0, "y": 0.5}, {"x": 0.5, "y": 0.25}, {"x": 1.5, "y": -0.5}, {"x": 0.3, "y": 1.2}]
LONG_REASON = "the simulator ran out of licences on every node of the cluster, retry later"


def outcome(parameters: dict[str, Any]) -> tuple[float, Any]:
    x, y = parameters["x"], parameters["y"]
    if parameters not in BATCH:
        return 600.0, {"objective": 0.0}  # generated: still running at the run's timeout
    if x > 1:
        return 0.0, RuntimeError(LONG_REASON)
    return 0.0, {"objective": ((1 - x) ** 2 + 100 * (y - x**2) ** 2 + 1 / 3, math.pi / 100)}


@pytest.fixture(scope="module", params=["legacy", "modern"])
def checkpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run's checkpoint (COMPLETED, FAILED, ABANDONED trials), by the library."""
    directory = tmp_path_factory.mktemp(f"status-{request.param}")
    client = legacy_client() if request.param == "legacy" else modern_client()
    config = {"checkpoint_path": directory / "run.json", "job_output_dir": directory}
    # The real clock: a FakeClock's 600 s would pass at once, racing the timeout.
    with AxScheduler(client, FakeRunner(outcome, capacity=2), config) as scheduler:
        scheduler.set_objective_function(lambda parameters: {})  # FakeRunner does not call it
        with scheduler.batch_trial_context() as batch:
            for parameters in BATCH:
                batch.add_trial(parameters)
        scheduler.run_optimization(max_trials=2, timeout=0.5)
    statuses = {trial.status.name for trial in scheduler.experiment.trials.values()}
    assert statuses == {"COMPLETED", "FAILED", "ABANDONED"}
    return directory / "run.json"


def copy_as(checkpoint: Path, directory: Path, change: Any = None) -> Path:
    """The checkpoint under the same name elsewhere (the same title), its JSON changed."""
    directory.mkdir(exist_ok=True)
    data = json.loads(checkpoint.read_text())
    if change is not None:
        change(data)
    (directory / "run.json").write_text(json.dumps(data))
    return directory / "run.json"


def without_table(data: dict[str, Any]) -> None:
    del data[TABLE_KEY]  # as an older ax-scheduler wrote it


def of_another_version(data: dict[str, Any]) -> None:
    data[TABLE_KEY]["version"] = 99  # a newer layout this one cannot read


def stored_table(checkpoint: Path) -> TrialTable:
    table = TrialTable.from_json(json.loads(checkpoint.read_text())[TABLE_KEY])
    assert table is not None
    return table


def status(path: Path, *args: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """stdout of `ax-scheduler status run.json ARGS` in the file's directory."""
    monkeypatch.chdir(path.parent)
    result = CliRunner().invoke(app, ["status", path.name, *args], prog_name="ax-scheduler")
    assert result.exit_code == 0, result.stderr
    return str(result.stdout)


# -- the same trials, whichever way the file is read -------------------------------------
@pytest.mark.parametrize("output_format", FORMATS)
@pytest.mark.parametrize("read_through_ax", [without_table, of_another_version])
def test_status_prints_the_stored_table_exactly_as_reading_the_snapshot_through_ax(
    checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    output_format: str,
    read_through_ax: Any,
) -> None:
    older = copy_as(checkpoint, tmp_path / "older", read_through_ax)

    stored = status(checkpoint, "-f", output_format, monkeypatch=monkeypatch)
    through_ax = status(older, "-f", output_format, monkeypatch=monkeypatch)

    assert stored == through_ax
    assert "RuntimeError: the simulator ran out of licences" in stored


CLI_OBJECTIVE = """
def noisy_rosenbrock(parameters):
    x, y = parameters["x"], parameters["y"]
    if x > 1:
        raise ValueError(f"diverged at x={x}")
    return {"loss": ((1 - x) ** 2 + 100 * (y - x**2) ** 2, 0.01 * (1 + abs(x)))}
"""


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkpoint `ax-scheduler run` keeps: local workers, trial folders, the spec."""
    directory = tmp_path_factory.mktemp("cli-run")
    text = (ROOT / "examples" / "experiment.yaml").read_text()
    text = text.replace("cli_objective:rosenbrock", "noisy:noisy_rosenbrock")
    (directory / "noisy.yaml").write_text(text.replace("max_trials: 6", "max_trials: 8"))
    (directory / "noisy.py").write_text(CLI_OBJECTIVE)
    result = subprocess.run(
        [str(SCRIPT), "run", "noisy.yaml", "-q"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "8 trials: " in result.stdout, result.stderr  # exit 1 if too many failed
    return directory / "run.json"


@pytest.mark.slow
@pytest.mark.parametrize("output_format", FORMATS)
def test_status_of_a_command_line_run_prints_the_same_as_through_ax(
    cli_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output_format: str
) -> None:
    older = copy_as(cli_run, tmp_path / "older", without_table)

    stored = status(cli_run, "-f", output_format, monkeypatch=monkeypatch)

    assert stored == status(older, "-f", output_format, monkeypatch=monkeypatch)
    assert "joblib" in stored
    assert "stdout.log" in stored or output_format == "table"  # the trial folders' logs


def test_the_reports_frame_from_the_stored_table_is_the_one_from_ax(checkpoint: Path) -> None:
    data = json.loads(checkpoint.read_text())
    stored = stored_table(checkpoint)

    experiment = AxAdapter.wrap(client_from_snapshot(data["client"])).experiment
    pd.testing.assert_frame_equal(table_frame(stored), results_frame(experiment), check_exact=True)
    assert stored.name == experiment.name


def test_the_stored_table_does_not_need_the_snapshot(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def garbled(data: dict[str, Any]) -> None:
        data["client"] = {"_type": "AxClient", "experiment": "not Ax's"}

    table = status(copy_as(checkpoint, tmp_path / "garbled", garbled), monkeypatch=monkeypatch)
    assert len(re.findall(r"│ +\d+ │ (COMPLETED|FAILED|ABANDONED) +│ x=", table)) == 6

    unreadable = copy_as(
        checkpoint, tmp_path / "both", lambda data: (garbled(data), without_table(data))
    )
    monkeypatch.chdir(unreadable.parent)
    result = CliRunner().invoke(app, ["status", "run.json"], prog_name="ax-scheduler")
    assert result.exit_code == 2
    assert "but Ax cannot load it" in result.stderr


# -- start-up: json and rich, not Ax ---------------------------------------------------------
#: Runs the command, then lists which of these packages it imported (typer, which
#: it always does, shows that the list sees what was imported).
LOADED = """
import json, sys
from ax_scheduler.cli import main
sys.argv = ["ax-scheduler", "status", sys.argv[1]]
try:
    main()
finally:
    packages = {name.split(".")[0] for name in sys.modules}
    sys.stderr.write(json.dumps(sorted(packages & {"ax", "torch", "botorch", "pandas", "typer"})))
"""


def test_status_of_a_checkpoint_imports_neither_ax_nor_torch_nor_pandas(checkpoint: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", LOADED, str(checkpoint)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "6 trials: " in result.stdout
    assert json.loads(result.stderr.splitlines()[-1]) == ["typer"]


# -- the table's lines --------------------------------------------------------------------------
def test_piped_status_keeps_each_trial_on_one_line_however_wide(checkpoint: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name != "COLUMNS"}
    result = subprocess.run(
        [str(SCRIPT), "status", str(checkpoint)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    rows = [line for line in lines if line.startswith("│")]

    assert max(map(len, lines)) > 80  # wider than the 80 columns rich assumes for a pipe
    assert [int(row.split("│")[1]) for row in rows] == list(range(6))  # no folded lines
    assert all("x=" in row and ", y=" in row for row in rows)
    assert f" RuntimeError: {LONG_REASON}"[:60] + "… │" in result.stdout  # truncated, one line


def test_the_table_is_drawn_as_rich_draws_it_when_it_fits(checkpoint: Path) -> None:
    from ax_scheduler.cli.output import _trials_cells
    from ax_scheduler.cli.tables import draw, folded

    columns, rows = _trials_cells(stored_table(checkpoint))
    ours, rich = io.StringIO(), io.StringIO()
    Console(file=ours, width=400).print(draw("run.json", columns, rows), soft_wrap=True)
    Console(file=rich, width=400).print(folded("run.json", columns, rows))
    assert ours.getvalue() == rich.getvalue()


def test_a_terminal_narrower_than_the_table_gets_it_folded(checkpoint: Path) -> None:
    from ax_scheduler.cli.output import _trials_cells

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=70, color_system=None)
    print_table(console, "run.json", *_trials_cells(stored_table(checkpoint)))
    lines = screen.getvalue().splitlines()
    assert max(map(len, lines)) <= 70
    assert len([line for line in lines if line.startswith("│")]) > 6  # rows folded


def test_csv_and_json_have_every_column_and_times_in_iso_8601_utc(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = list(
        csv.DictReader(io.StringIO(status(checkpoint, "-f", "csv", monkeypatch=monkeypatch)))
    )
    records = json.loads(status(checkpoint, "-f", "json", monkeypatch=monkeypatch))

    assert [row["status"] for row in rows] == [record["status"] for record in records]
    assert len(rows) == 6
    assert list(rows[0]) == list(records[0]) == stored_table(checkpoint).columns
    completed = next(record for record in records if record["status"] == "COMPLETED")
    started = dt.datetime.fromisoformat(completed["started_at"])
    assert started.utcoffset() == dt.timedelta(0)
    assert completed["objective_sem"] == pytest.approx(math.pi / 100)
    failed = next(row for row in rows if row["status"] == "FAILED")
    assert failed["objective"] == ""  # missing, not "nan"
    assert failed["failure_reason"] == f"RuntimeError: {LONG_REASON}"  # whole, not truncated


# -- help ------------------------------------------------------------------------------------------
def help_of(*command: str) -> str:
    result = subprocess.run(
        [str(SCRIPT), *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        ([], "ax-scheduler [OPTIONS] COMMAND [ARGS]..."),
        (["run"], "ax-scheduler run [OPTIONS] FILE"),
        (["resume"], "ax-scheduler resume [OPTIONS] CHECKPOINT"),
        (["status"], "ax-scheduler status [OPTIONS] CHECKPOINT"),
        (["report"], "ax-scheduler report [OPTIONS] CHECKPOINT"),
    ],
)
def test_help_names_the_arguments_in_its_usage_line_and_shows_flags_bare(
    command: list[str], usage: str
) -> None:
    text = help_of(*command)
    assert re.search(rf"^ *Usage: {re.escape(usage)} *$", text, flags=re.MULTILINE), text
    assert "<bool>" not in text
    assert re.search(r"--help +Show this message and exit\.", text)


def test_flags_take_no_value_and_options_say_what_they_take() -> None:
    run = help_of("run")
    assert re.search(r"--overwrite +Start over", run)
    assert re.search(r"--verbose +-v +Also log", run)
    assert re.search(r"--max-trials +\S", run)  # its type, whatever typer calls it
    assert not re.search(r"--max-trials +Trials to run", run)
    assert re.search(r"--version +Print the version\.", help_of())


# -- trials that reported while they ran, and early stopping ----------------------------
@pytest.fixture(scope="module")
def stopped_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkpoint of report_screenshot.early_stopping_run: trials 0, 1 and 4
    COMPLETED (4 reported nothing), 2 and 3 EARLY_STOPPED."""
    directory = tmp_path_factory.mktemp("status-stopped")
    path = directory / "run.json"
    report_screenshot.early_stopping_run(directory, checkpoint_path=path).close()
    return path


def through_ax(checkpoint: Path) -> Any:
    """The experiment of the checkpoint's Ax snapshot."""
    return AxAdapter.wrap(client_from_snapshot(json.loads(checkpoint.read_text())["client"]))


@pytest.mark.parametrize("output_format", FORMATS)
def test_status_of_a_run_with_early_stopping_prints_the_same_as_through_ax(
    stopped_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output_format: str
) -> None:
    older = copy_as(stopped_checkpoint, tmp_path / "older", without_table)

    stored = status(stopped_checkpoint, "-f", output_format, monkeypatch=monkeypatch)

    assert stored == status(older, "-f", output_format, monkeypatch=monkeypatch)
    assert "EARLY_STOPPED" in stored


def test_status_shows_the_stopped_trials_their_last_step_and_the_compute_saved(
    stopped_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ax.early_stopping.utils import estimate_early_stopping_savings

    table = status(stopped_checkpoint, monkeypatch=monkeypatch)

    header = next(line for line in table.splitlines() if line.startswith("┃"))
    assert [cell.strip() for cell in header.strip("┃").split("┃")] == [
        "trial",
        "status",
        "parameters",
        "objective",
        "step",
        "job",
        "duration",
        "reason",
    ]
    rows = {
        int(cells[0]): cells
        for line in table.splitlines()
        if line.startswith("│")
        for cells in [[cell.strip() for cell in line.strip("│").split("│")]]
    }
    assert [rows[i][1] for i in range(5)] == ["COMPLETED"] * 2 + ["EARLY_STOPPED"] * 2 + [
        "COMPLETED"
    ]
    assert [rows[i][4] for i in (0, 1, 4)] == [str(curves.STEPS - 1)] * 2 + [""]
    assert all(5 <= int(rows[i][4]) < curves.STEPS - 5 for i in (2, 3))
    assert all(rows[i][7].startswith("Trial objective values at progressions") for i in (2, 3))
    assert "5 trials: 3 COMPLETED, 2 EARLY_STOPPED" in table
    share = estimate_early_stopping_savings(through_ax(stopped_checkpoint).experiment)
    assert f"stopped early: 2; compute saved about {share:.0%}: " in table


def test_csv_and_json_carry_the_last_step_the_stop_reason_and_the_curve(
    stopped_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = list(
        csv.DictReader(
            io.StringIO(status(stopped_checkpoint, "-f", "csv", monkeypatch=monkeypatch))
        )
    )
    text = status(stopped_checkpoint, "-f", "json", monkeypatch=monkeypatch)
    records = json.loads(text)

    assert re.search(r"^ +\[0\.0, \d+\.\d+\],$", text, flags=re.MULTILINE)  # a pair a line
    for row, record in zip(rows, records, strict=True):
        assert row["status"] == record["status"]
        assert (float(row["last_step"]) if row["last_step"] else None) == record["last_step"]
        assert (json.loads(row["curve"]) if row["curve"] else None) == record["curve"]
        assert row["early_stop_reason"] == (record["early_stop_reason"] or "")
    stopped = records[2]
    assert stopped["status"] == "EARLY_STOPPED"
    assert "percentile" in stopped["early_stop_reason"]
    points = stopped["curve"]["objective"]
    assert [step for step, _ in points] == [float(s) for s in range(int(stopped["last_step"]) + 1)]
    assert records[0]["curve"]["objective"][-1] == [curves.STEPS - 1, records[0]["objective"]]
    assert records[4]["last_step"] is None
    assert records[4]["curve"] is None  # it reported nothing
    assert rows[4]["curve"] == ""


def test_the_reports_frame_with_curves_from_the_stored_table_is_the_one_from_ax(
    stopped_checkpoint: Path,
) -> None:
    stored = stored_table(stopped_checkpoint)

    frame = table_frame(stored)

    pd.testing.assert_frame_equal(
        frame, results_frame(through_ax(stopped_checkpoint).experiment), check_exact=True
    )
    assert frame["curve"].notna().sum() == 4


def test_status_of_a_run_with_curves_still_imports_neither_ax_nor_pandas(
    stopped_checkpoint: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", LOADED, str(stopped_checkpoint)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "stopped early: 2; compute saved about " in result.stdout
    assert json.loads(result.stderr.splitlines()[-1]) == ["typer"]


#: `ax-scheduler report CHECKPOINT -o OUT`, then which of these packages it imported.
REPORT_LOADED = LOADED.replace(
    '["ax-scheduler", "status", sys.argv[1]]',
    '["ax-scheduler", "report", sys.argv[1], "-o", sys.argv[2]]',
)


def test_the_report_of_a_checkpoint_draws_its_curves_and_savings_without_ax(
    stopped_checkpoint: Path, tmp_path: Path
) -> None:
    from ax.early_stopping.utils import estimate_early_stopping_savings

    page = tmp_path / "report.html"
    result = subprocess.run(
        [sys.executable, "-c", REPORT_LOADED, str(stopped_checkpoint), str(page)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stderr.splitlines()[-1]) == ["pandas", "typer"]  # no Ax, no torch
    text = page.read_text()
    assert '<section id="learning-curves">' in text
    share = estimate_early_stopping_savings(through_ax(stopped_checkpoint).experiment)
    assert f"<tr><th>Compute saved</th><td>about {share:.0%}: " in text
