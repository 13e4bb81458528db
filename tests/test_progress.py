"""The live progress display: shown in a terminal, absent elsewhere, log lines whole;
the trials stopped early counted, in a terminal and in a notebook's widget."""

from __future__ import annotations

import functools
import io
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from ax_scheduler._core import Progress
from ax_scheduler._progress import display_mode, progress_display, render

DRIVER = Path(__file__).with_name("progress_driver.py")
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LOG_LINE = re.compile(
    r"^LOG (INFO|WARNING|ERROR) trial \d+ (queued for joblib|started on joblib"
    r"|completed in \d+\.\d\d s \(joblib\): objective=\S+"
    r"|failed after \d+\.\d\d s \(joblib\): ValueError: x=-?\d\.\d{3} is out of the model's range)$"
)


def run_in_terminal(*args: str) -> str:
    """Run the driver with a pseudo-terminal as stdout and stderr; return all it wrote."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, str(DRIVER), *args],
        stdout=terminal,
        stderr=terminal,
        env={**os.environ, "COLUMNS": "100", "TERM": "xterm-256color"},
    )
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=120) == 0
    os.close(controller)
    return b"".join(chunks).decode()


def test_terminal_shows_the_display_and_log_lines_come_out_whole(tmp_path: Path) -> None:
    output = run_in_terminal("on", str(tmp_path))

    frames = ESCAPE.sub("", output).replace("\r", "\n")
    assert "8/8 trials" in frames
    assert re.search(
        r"\d+ running {2}\d+ queued {2}\d+ completed {2}\d+ failed {2}0 abandoned", frames
    )
    assert "best so far: objective=" in frames
    assert "elapsed" in frames
    logged = [line for line in output.replace("\r", "").split("\n") if "LOG " in line]
    # rich erases the display's lines (ESC[2K) before printing a log line above
    # it, and the first line may follow its hide-cursor code (ESC[?25l): on screen
    # the log line starts a clean line, and nothing is drawn into it. Whole:
    # nothing printable comes between the last erase-line code and it.
    whole = [
        ESCAPE.sub("", line.split("LOG ", 1)[0].rsplit("\x1b[2K", 1)[-1]) == "" for line in logged
    ]
    texts = ["LOG " + line.split("LOG ", 1)[1] for line in logged]
    assert all(whole), logged
    assert all(LOG_LINE.match(text) for text in texts), texts
    assert sum(" queued for " in text for text in texts) == 8
    assert sum(" started on " in text for text in texts) == 8
    assert sum(" completed in " in text or " failed after " in text for text in texts) == 8
    assert "run finished" in output


def test_progress_option_off_shows_no_display(tmp_path: Path) -> None:
    output = run_in_terminal("off", str(tmp_path))

    assert "trials" not in ESCAPE.sub("", output)
    assert "run finished" in output


def test_no_display_and_no_escape_codes_when_not_a_terminal(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(DRIVER), "on", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert "\x1b[" not in result.stderr + result.stdout
    assert "/8 trials" not in result.stderr
    assert result.stderr.count(" started on joblib") == 8


def test_render_counts_best_time_left_and_runner_load() -> None:
    progress = Progress(total=10, queued=2, running=3, completed=4, failed=1)
    progress.started = time.monotonic() - 50  # 5 ended in 50 s: 50 s left for 5 more
    progress.best["objective"] = 0.125
    console = Console(file=io.StringIO(), width=120, color_system=None)

    console.print(render(progress, {"pending": 2, "running": 3}, "slurm"))

    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "5/10 trials" in text
    assert "0:00:50 elapsed" in text
    assert "~0:00:50 left" in text
    assert "3 running  2 queued  4 completed  1 failed  0 abandoned" in text
    assert "best so far: objective=0.125" in text
    assert "slurm: pending=2, running=3" in text


def test_display_is_live_in_terminals_and_notebooks_and_off_elsewhere() -> None:
    plain = Console(file=io.StringIO())
    terminal = Console(file=io.StringIO(), force_terminal=True)
    notebook = Console(file=io.StringIO(), force_jupyter=True)

    assert display_mode(True, plain) is None
    assert display_mode(True, terminal) == "live"
    assert display_mode(False, terminal) is None
    assert display_mode(True, notebook) == "live"  # a widget: ipywidgets is installed here


def test_notebook_without_ipywidgets_gets_one_plain_summary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import fails
    shown: list[object] = []
    notebook = Console(file=io.StringIO(), force_jupyter=True)
    monkeypatch.setattr(notebook, "print", lambda *items, **_: shown.extend(items))
    progress = Progress(total=2, completed=2)

    assert display_mode(True, notebook) == "summary"
    with progress_display(progress, lambda: None, "joblib", console=notebook):
        assert shown == []  # nothing while it runs
    assert len(shown) == 1


# --- trials stopped early ---------------------------------------------------------------


def test_render_counts_trials_stopped_early_beside_the_completed_ones() -> None:
    progress = Progress(total=10, running=1, completed=4, early_stopped=3, failed=1)
    console = Console(file=io.StringIO(), width=120, color_system=None)

    console.print(render(progress, None, "joblib"))

    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "8/10 trials" in text  # a trial stopped early has ended
    assert "1 running  0 queued  4 completed  3 stopped early  1 failed  0 abandoned" in text


def test_render_says_what_compute_the_stops_saved_once_a_completed_trial_reported() -> None:
    # Two completed trials ran to step 19, two stopped at steps 4 and 9: 15 + 10 = 25 steps
    # saved of the 51 + 25 = 76 the four would have run.
    steps = [("COMPLETED", 19.0), ("COMPLETED", 19.0), ("EARLY_STOPPED", 4.0)]
    progress = Progress(total=4, completed=2, early_stopped=2, last_steps=steps)
    progress.last_steps.append(("EARLY_STOPPED", 9.0))
    console = Console(file=io.StringIO(), width=120, color_system=None)

    console.print(render(progress, None, "joblib"))

    assert "2 stopped early (~33% compute saved)" in console.file.getvalue()  # type: ignore[attr-defined]


def test_the_live_display_of_a_run_counts_the_trials_the_strategy_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import curves
    import report_screenshot
    from ax_scheduler import AxScheduler, JobLibRunner, _facade
    from conftest import legacy_client

    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=120, color_system=None)
    monkeypatch.setattr(
        _facade, "progress_display", functools.partial(progress_display, console=terminal)
    )
    config = {"job_output_dir": tmp_path, "early_stopping": report_screenshot.EARLY_STOPPING}
    with AxScheduler(legacy_client(), JobLibRunner(n_jobs=2), config) as scheduler:
        scheduler.set_objective_function(curves.curve)
        with scheduler.batch_trial_context() as batch:  # two good curves to compare with
            for parameters in report_screenshot.GOOD:
                batch.add_trial(parameters)
        # Sobol's points are far worse than those two at every step: both are stopped.
        scheduler.set_objective_function(report_screenshot.slow_curve)
        scheduler.run_optimization(max_trials=2)
        summary = scheduler.last_run

    assert summary is not None
    assert len(summary.early_stopped) == 2
    last_frame = ESCAPE.sub("", screen.getvalue()).replace("\r", "\n").split("2/2 trials")[-1]
    # The batch's two completed curves are the baseline the compute saved is told from.
    assert re.search(r"0 completed  2 stopped early \(~\d+% compute saved\)  0 failed", last_frame)


def test_the_notebook_widget_counts_the_trials_stopped_early(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import rich.jupyter

    shown: list[str] = []  # what rich puts into the widget, as text
    monkeypatch.setattr(rich.jupyter, "display", lambda segments, text: shown.append(text))
    notebook = Console(file=io.StringIO(), force_jupyter=True, width=120)
    progress = Progress(total=6, completed=2, early_stopped=3, failed=1)

    def frames() -> list[str]:
        return [ESCAPE.sub("", text) for text in shown if "trials" in text]

    assert display_mode(True, notebook) == "live"
    with progress_display(progress, lambda: None, "joblib", console=notebook):
        deadline = time.monotonic() + 10
        while not frames():  # the widget's first refresh (4 a second)
            assert time.monotonic() < deadline, "the widget never drew"
            time.sleep(0.05)
    assert "6/6 trials" in frames()[-1]
    assert "2 completed  3 stopped early  1 failed" in frames()[-1]
