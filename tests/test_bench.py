"""The benchmark script keeps working (its numbers are read by people, not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_local_efficiency_bench_prints_its_table() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "local_efficiency.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for row in ("ax-scheduler", "ProcessPool loop", "bare ask/tell", "efficiency", "ms/trial"):
        assert row in result.stdout
