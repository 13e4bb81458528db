"""How long ``ax-scheduler status`` and ``report`` take on a large run's checkpoint.

Run from the repository root::

    python bench/cli_status.py [--trials 1000] [--reps 5]

Builds a real checkpoint of N trials through the scheduler itself: Sobol points
(scipy's, scrambled, seeded) attached in one batch and run by a ``FakeRunner``
in virtual time, one in forty failing, so the file is what a run of N trials
writes. Asking Ax for N Sobol trials one at a time would take minutes at
N = 1,000; attaching them keeps the build to seconds.

Then it times the commands as a user runs them, each in a fresh interpreter with
stdout piped: ``status`` (target: under 1 s at 1,000 trials) and ``report``
(target: a few seconds), the median of ``--reps`` runs. Last, ``status`` of the
same file without its results table, read through Ax as a checkpoint of an
older ax-scheduler is, once per format: it must print the same table, CSV and
JSON (the bench exits 1 if not), and its table's time is shown for comparison.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from compare.common import make_client

from ax_scheduler import AxScheduler
from ax_scheduler._checkpoint import TABLE_KEY
from ax_scheduler.testing import FakeClock, FakeRunner

#: The console script pip installed next to this interpreter, or the module.
SCRIPT = Path(sys.executable).parent / "ax-scheduler"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "ax_scheduler.cli"]
FORMATS = ("table", "csv", "json")


def outcome(parameters: dict[str, float]) -> tuple[float, Any]:
    """Rosenbrock after one virtual second; a failure where x > 1.9 (one trial in forty)."""
    x, y = parameters["x"], parameters["y"]
    if x > 1.9:
        return 1.0, ValueError(f"the simulation diverged at x={x:.3f}")
    return 1.0, {"objective": (1 - x) ** 2 + 100 * (y - x**2) ** 2}


def sobol_points(n_trials: int) -> list[dict[str, float]]:
    from scipy.stats import qmc

    points = qmc.scale(qmc.Sobol(d=2, seed=0).random(n_trials), [-2.0, -2.0], [2.0, 2.0])
    return [{"x": float(x), "y": float(y)} for x, y in points]


def build_checkpoint(path: Path, n_trials: int) -> None:
    """A run of ``n_trials`` through the scheduler, checkpointed at ``path``."""
    logging.getLogger("ax_scheduler").setLevel(logging.CRITICAL)  # not a line per planned failure
    clock = FakeClock()
    runner = FakeRunner(outcome, capacity=50, clock=clock)
    config = {"checkpoint_path": str(path), "progress": False}
    with AxScheduler(make_client(), runner, config, clock=clock) as scheduler:
        scheduler.set_objective_function(lambda parameters: {})  # FakeRunner does not call it
        with scheduler.batch_trial_context() as batch:
            for parameters in sobol_points(n_trials):
                batch.add_trial(parameters)


def without_table(path: Path, target: Path) -> None:
    """The checkpoint as an older ax-scheduler wrote it: no results table."""
    data = json.loads(path.read_text())
    del data[TABLE_KEY]
    target.write_text(json.dumps(data))


def timed(*args: str, cwd: Path) -> tuple[float, str]:
    """Wall seconds of ``ax-scheduler ARGS`` in a fresh interpreter, and its stdout."""
    started = time.perf_counter()
    result = subprocess.run([*COMMAND, *args], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"ax-scheduler {' '.join(args)} failed:\n{result.stderr}")
    return wall, result.stdout


def median_of(reps: int, *args: str, cwd: Path) -> tuple[float, list[float]]:
    walls = [timed(*args, cwd=cwd)[0] for _ in range(reps)]
    return statistics.median(walls), walls


def through_ax(fast: Path, slow: Path, formats: list[str]) -> tuple[float, bool]:
    """Wall seconds of ``status`` of ``slow`` (a table), and whether it prints what
    ``fast`` prints in each of ``formats`` (same name, in another directory: same title)."""
    equal, walls = True, {}
    for output_format in formats:
        _, ours = timed("status", fast.name, "-f", output_format, cwd=fast.parent)
        walls[output_format], theirs = timed(
            "status", slow.name, "-f", output_format, cwd=slow.parent
        )
        equal = equal and ours == theirs
    return walls["table"], equal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument(
        "--formats",
        default=",".join(FORMATS),
        help="the formats compared with the output through Ax (each costs an Ax import)",
    )
    args = parser.parse_args()
    formats = args.formats.split(",")
    if "table" not in formats or set(formats) - set(FORMATS):
        parser.error(f"--formats takes table and any of {', '.join(FORMATS)}, got {args.formats!r}")
    with tempfile.TemporaryDirectory() as directory:
        fast = Path(directory) / "run.json"
        started = time.perf_counter()
        build_checkpoint(fast, args.trials)
        built = time.perf_counter() - started
        older = Path(directory) / "older" / "run.json"  # the same name: the same title
        older.parent.mkdir()
        without_table(fast, older)
        print(f"{args.trials} trials: checkpoint of {fast.stat().st_size / 1e6:.1f} MB", end="")
        print(f" built in {built:.1f} s; each command in a fresh interpreter, stdout piped")
        status, walls = median_of(args.reps, "status", "run.json", cwd=fast.parent)
        print(f"  status:           {status:6.2f} s  (median of {args.reps}: {_list(walls)})")
        report, walls = median_of(args.reps, "report", "run.json", "-o", "r.html", cwd=fast.parent)
        print(f"  report:           {report:6.2f} s  (median of {args.reps}: {_list(walls)})")
        wall, equal = through_ax(fast, older, formats)
        print(f"  status, no table: {wall:6.2f} s  (an older checkpoint: read through Ax)")
        print(f"  {', '.join(formats)} the same as through Ax: {'yes' if equal else 'NO'}")
    if not equal:
        sys.exit(1)


def _list(walls: list[float]) -> str:
    return ", ".join(f"{wall:.2f}" for wall in walls)


if __name__ == "__main__":
    main()
