"""The live progress display: shown in a terminal, absent elsewhere, log lines whole."""

from __future__ import annotations

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
