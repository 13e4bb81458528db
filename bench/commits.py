"""ax-scheduler at two commits, on the suite's workloads (a) and (b), interleaved.

For changes that must not make anything slower (a restructuring): each run is a
fresh interpreter (``python -m bench.compare.one``) whose ``ax_scheduler`` comes
from the given source tree, the two trees alternate run by run, and the medians
and the old/new ratio are printed. The old tree is a git worktree::

    git worktree add /tmp/old <commit>
    python bench/commits.py /tmp/old/src src --reps 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOL = "ax-scheduler, AxClient"
WORKLOADS = {
    "a": {"key": "a", "n_trials": 24, "sleep": 0.5, "generation": "sobol"},
    "b": {"key": "b", "n_trials": 200, "sleep": 0.0, "generation": "sobol"},
}


def one_run(source: Path, workload: dict[str, object], scratch: Path) -> float:
    """Wall seconds of one timed run with ``ax_scheduler`` imported from ``source``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(source), str(ROOT)])}
    log = scratch / f"{len(list(scratch.iterdir()))}.log"
    argv = [sys.executable, "-m", "bench.compare.one", TOOL, json.dumps(workload), str(log)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=scratch, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"run from {source} failed:\n{done.stderr[-3000:]}")
    run = json.loads(done.stdout.strip().splitlines()[-1])
    if run["completed"] != workload["n_trials"]:
        raise RuntimeError(f"run from {source} completed {run['completed']} trials")
    return float(run["wall"])


def figure(key: str, wall: float) -> str:
    workload = WORKLOADS[key]
    n, sleep = int(workload["n_trials"]), float(workload["sleep"])  # type: ignore[call-overload]
    if sleep:
        return f"efficiency {n * sleep / 4 / wall:.3f} ({wall:.2f} s)"
    return f"{1000 * wall / n:.1f} ms per trial ({wall:.2f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path, help="the old tree's src directory")
    parser.add_argument("new", type=Path, help="the new tree's src directory")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--workloads", default="ab")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        for key in args.workloads:
            walls: dict[str, list[float]] = {"old": [], "new": []}
            for rep in range(args.reps):
                order = ("old", "new") if rep % 2 == 0 else ("new", "old")
                for side in order:
                    source = args.old if side == "old" else args.new
                    walls[side].append(one_run(source.resolve(), WORKLOADS[key], Path(scratch)))
            old, new = statistics.median(walls["old"]), statistics.median(walls["new"])
            print(
                f"({key}) old: {figure(key, old)}; new: {figure(key, new)};"
                f" new/old wall {new / old:.3f} (medians of {args.reps})"
            )


if __name__ == "__main__":
    main()
