"""bench/early_stopping.py keeps working: every tool runs the curves, ours stops trials.

Its numbers (compute saved, latencies) are for people to read on a quiet machine,
not asserted here.
"""

from __future__ import annotations

import pytest

from test_bench import run_bench

TOOLS = (
    "ax-scheduler, no early stopping",
    "ax-scheduler, early stopping",
    "Ax Orchestrator, polls every step",
    "Optuna, MedianPruner",
)


def table_rows(out: str) -> dict[str, dict[str, str]]:
    """The main table (the first markdown table): tool -> column -> cell."""
    table = "| tool |" + out.split("\n\n| tool |", 1)[1].split("\n\n", 1)[0]
    header, _, *rows = [
        [cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()
    ]
    return {cells[0]: dict(zip(header, cells, strict=True)) for cells in rows}


@pytest.mark.slow
@pytest.mark.timeout(300)  # four fresh interpreters, three of them importing Ax
def test_early_stopping_bench_runs_every_tool_and_ours_stops_trials() -> None:
    out = run_bench("bench/early_stopping.py", "--quick", timeout=300)
    rows = table_rows(out)
    assert set(rows) == set(TOOLS), out
    assert float(rows["ax-scheduler, no early stopping"]["stopped"]) == 0, out
    assert float(rows["ax-scheduler, early stopping"]["stopped"]) >= 1, out
    assert "every run ran the same points" in out
    assert "report-to-stop under 50 ms locally:" in out  # measured: ours stopped something
