"""The progress display in a real Jupyter kernel: a widget, never escape codes."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

TESTS = Path(__file__).parent

CELL = """
import sys
sys.path.insert(0, {tests!r})
from conftest import legacy_client
import objectives
from ax_scheduler import AxScheduler, JobLibRunner

config = {{"job_output_dir": {out!r}}}
with AxScheduler(legacy_client(), JobLibRunner(n_jobs=2), config=config) as scheduler:
    scheduler.set_objective_function(objectives.slow_rosenbrock)
    scheduler.run_optimization(max_trials=4)
print("statuses:", sorted(set(scheduler.results()["status"])))
"""

WIDGET = "application/vnd.jupyter.widget-view+json"


def test_progress_shows_as_a_widget_in_a_notebook(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells.append(
        nbformat.v4.new_code_cell(CELL.format(tests=str(TESTS), out=str(tmp_path)))
    )

    NotebookClient(notebook, timeout=180, kernel_name="python3").execute()

    outputs = notebook.cells[0].outputs
    streams = "".join(
        output.get("text", "") for output in outputs if output.output_type == "stream"
    )
    assert "statuses: ['COMPLETED']" in streams
    assert any(WIDGET in output.get("data", {}) for output in outputs), outputs
    assert "\x1b[" not in streams
    assert not [output for output in outputs if output.output_type == "error"]
