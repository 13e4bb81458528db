"""bench/cli_status.py keeps working: a small run's checkpoint, timed as a user runs it."""

from __future__ import annotations

import re

import pytest

from test_bench import run_bench


@pytest.mark.slow
@pytest.mark.timeout(600)  # four commands, each in a fresh interpreter, one through Ax
def test_cli_status_bench_times_status_and_report_and_both_ways_print_the_same() -> None:
    # One format through Ax: test_cli_status compares all three on real checkpoints.
    out = run_bench("bench/cli_status.py", "--trials", "40", "--reps", "1", "--formats", "table")
    assert out.startswith("40 trials: checkpoint of ")
    for line in ("status:", "report:", "status, no table:"):
        assert re.search(rf"^  {re.escape(line)} +\d+\.\d\d s", out, flags=re.MULTILINE), out
    assert "table the same as through Ax: yes" in out
