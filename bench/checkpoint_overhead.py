"""What ``checkpoint_path`` costs a run: the same run with and without checkpoints.

Run from the repository root::

    python bench/checkpoint_overhead.py [--trials 1000] [--reps 1] [--sleep 0]
                                        [--store json|sqlite]

Each repetition times ``run_optimization(max_trials=N)`` of no-op trials (Sobol
only, 4 local worker processes) twice, interleaved: once without a checkpoint,
once with ``config={"checkpoint_path": ...}``. No-op trials make this the worst
case: with real trials the same writes hide behind their run time (``--sleep S``
makes each trial sleep S seconds, to see how much). It prints both
wall times, the overhead ratio (target: under 1.05 at 1,000 trials), how many
checkpoint writes there were and the seconds they took, and the size of the file.
The file is then resumed, to show it is complete: every trial COMPLETED.
``--store sqlite`` checkpoints to ``sqlite:///run.db`` (Ax's SQL store, a changed
trial at a time) instead of the JSON file. Each run is a fresh interpreter.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compare.common import (
    SLOTS,
    check_completed,
    completed_count,
    make_client,
    silence_ax,
)

from ax_scheduler import AxScheduler, JobLibRunner


def noop_objective(p: dict[str, float]) -> dict[str, float]:
    """Rosenbrock at once. Defined here, so it travels to the workers by value and
    they do not import Ax (as a module-level import of the bench's helpers would)."""
    return {"objective": (1 - p["x"]) ** 2 + 100 * (p["y"] - p["x"] ** 2) ** 2}


def sleepy_objective(seconds: float, p: dict[str, float]) -> dict[str, float]:
    time.sleep(seconds)
    return noop_objective(p)


def run(n_trials: int, checkpoint: str | None, sleep: float) -> tuple[float, int, float]:
    """Wall seconds of the run, and the checkpoint writes and seconds it took."""
    client = make_client()
    config = {"checkpoint_path": checkpoint} if checkpoint else {}
    scheduler = AxScheduler(client, JobLibRunner(n_jobs=SLOTS), config)
    objective = functools.partial(sleepy_objective, sleep) if sleep else noop_objective
    scheduler.set_objective_function(objective)
    try:
        scheduler.run_optimization(max_trials=2)  # pool start-up and warm-up, untimed
        started = time.perf_counter()
        scheduler.run_optimization(max_trials=n_trials)
        wall = time.perf_counter() - started
        writer = scheduler._core.checkpoint
        writes, seconds = (writer.writes, writer.seconds) if writer else (0, 0.0)
    finally:
        scheduler.close()
    check_completed(client, "checkpointed" if checkpoint else "plain", n_trials + 2)
    return wall, writes, seconds


def in_child(args: argparse.Namespace, checkpoint: str | None) -> tuple[float, int, float]:
    """:func:`run` in a fresh interpreter."""
    argv = [sys.executable, __file__, "--trials", str(args.trials), "--sleep", str(args.sleep)]
    argv += ["--only", checkpoint or ""]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"run failed:\n{done.stderr[-3000:]}")
    wall, writes, seconds = json.loads(done.stdout.strip().splitlines()[-1])
    return float(wall), int(writes), float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--store", choices=["json", "sqlite"], default="json")
    parser.add_argument("--only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    silence_ax()
    if args.only is not None:
        print(json.dumps(run(args.trials, args.only or None, args.sleep)))
        return
    plain, checked, writes, write_seconds = [], [], [], []
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / ("run.json" if args.store == "json" else "run.db")
        target = str(path) if args.store == "json" else f"sqlite:///{path}"
        for rep in range(args.reps):
            path.unlink(missing_ok=True)
            plain.append(in_child(args, None)[0])
            wall, count, seconds = in_child(args, target)
            checked.append(wall)
            writes.append(count)
            write_seconds.append(seconds)
            print(f"rep {rep + 1}: plain {plain[-1]:.1f} s, with checkpoints {wall:.1f} s")
        size = path.stat().st_size
        resumed = AxScheduler.resume(target, JobLibRunner(n_jobs=1))
        done = completed_count(resumed.ax_client)
        resumed.close()
    base, ours = statistics.median(plain), statistics.median(checked)
    kind = f"{args.sleep:g} s" if args.sleep else "no-op"
    print(
        f"\n{args.trials} {kind} trials, {SLOTS} slots, {args.store} checkpoint, median of"
        f" {args.reps}, each run a fresh interpreter"
    )
    print(f"  without checkpoint:  {base:8.1f} s  ({1000 * base / args.trials:.1f} ms/trial)")
    print(f"  with checkpoint:     {ours:8.1f} s  ({1000 * ours / args.trials:.1f} ms/trial)")
    print(f"  overhead:            {ours / base:8.3f}x  (target < 1.05)")
    print(
        f"  checkpoint writes:   {statistics.median(writes):8.0f}"
        f"  taking {statistics.median(write_seconds):.1f} s in all"
    )
    print(f"  final file:          {size / 1e6:8.2f} MB; resumed from it: {done} COMPLETED trials")


if __name__ == "__main__":
    main()
