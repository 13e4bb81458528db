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


def run_bench(*argv: str, timeout: float = 600) -> str:
    result = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_checkpoint_overhead_bench_resumes_a_complete_run() -> None:
    out = run_bench("bench/checkpoint_overhead.py", "--trials", "40")
    assert "overhead:" in out
    assert "resumed from it: 42 COMPLETED trials" in out


@pytest.mark.slow
def test_local_load_bench_runs_every_trial() -> None:
    out = run_bench("bench/local_load.py", "--trials", "200", "--window", "50")
    for row in ("ax-scheduler (JobLibRunner, 4 slots)", "bare ask/tell loop", "our own overhead"):
        assert row in out


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_faults_bench_reconciles_under_every_kind_of_fault() -> None:
    """The small variant of the 1,000-trial load run: each fault once."""
    out = run_bench("bench/slurm_faults.py", "--trials", "60", "--every", "15", "--sleep", "0.1")
    assert "faults injected: 3 of 3 planned" in out
    assert "RUNNING    0" in out
    assert "counts reconcile: yes" in out
