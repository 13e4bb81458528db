"""10,000 no-op trials on the local pool: does our overhead grow with the run?

Run from the repository root::

    python bench/local_load.py [--trials 10000] [--window 1000] [--in-process]

Times ``run_optimization(max_trials=N)`` of no-op trials (Sobol only, 4 local
worker processes), and a bare serial Ax ask/tell loop (``get_next_trial`` /
``complete_trial``) of the same length: what Ax itself costs. For both it reports
ms per trial over the first and the last ``--window`` trials (from the trials'
completion times), and the peak RSS of the driver process after each. Our own
overhead is flat in N if our last/first ratio is no worse than the bare loop's.
Each tool runs in a fresh interpreter, so that its peak RSS is its own;
``--in-process`` (the smoke test's) runs both in this one.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import time

from ax_scheduler import AxScheduler, JobLibRunner

# The workers import noop_objective's module, compare.objective, which imports no Ax.
try:  # imported by the suite (python -m bench) as bench.local_load
    from .compare.common import SLOTS, check_completed, make_client, silence_ax
    from .compare.objective import noop as noop_objective
except ImportError:  # run as a script: bench/ is on sys.path
    from compare.common import SLOTS, check_completed, make_client, silence_ax
    from compare.objective import noop as noop_objective


class Completions(logging.Handler):
    """Time of each "trial N completed" line of the ax_scheduler logger."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.times: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("trial %d completed"):
            self.times.append(time.perf_counter())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def windows(times: list[float], started: float, window: int) -> tuple[float, float]:
    """ms per trial over the first and the last ``window`` completions."""
    stamps = [started, *times]
    first = (stamps[window] - stamps[0]) / window
    last = (stamps[-1] - stamps[-1 - window]) / window
    return 1000 * first, 1000 * last


def run_ours(n_trials: int, window: int) -> tuple[float, float, float, float]:
    client = make_client()
    completions = Completions()
    logger = logging.getLogger("ax_scheduler")
    logger.addHandler(completions)
    logger.setLevel(logging.INFO)
    scheduler = AxScheduler(client, JobLibRunner(n_jobs=SLOTS))
    scheduler.set_objective_function(noop_objective)
    try:
        scheduler.run_optimization(max_trials=1)  # pool start-up, untimed
        completions.times.clear()
        started = time.perf_counter()
        scheduler.run_optimization(max_trials=n_trials)
        wall = time.perf_counter() - started
    finally:
        scheduler.close()
        logger.removeHandler(completions)
    check_completed(client, "ax-scheduler", n_trials + 1)
    first, last = windows(completions.times, started, window)
    return wall, first, last, peak_rss_mb()


def run_bare(n_trials: int, window: int) -> tuple[float, float, float, float]:
    client = make_client()
    times: list[float] = []
    started = time.perf_counter()
    for _ in range(n_trials):
        parameters, index = client.get_next_trial()
        client.complete_trial(index, raw_data=noop_objective(parameters))
        times.append(time.perf_counter())
    wall = time.perf_counter() - started
    check_completed(client, "bare ask/tell", n_trials)
    first, last = windows(times, started, window)
    return wall, first, last, peak_rss_mb()


TOOLS = {
    "ours": ("ax-scheduler (JobLibRunner, 4 slots)", run_ours),
    "bare": ("bare ask/tell loop (Ax alone)", run_bare),
}


def measure_in_child(tool: str, trials: int, window: int) -> list[float]:
    """Run one tool in a fresh interpreter, so its peak RSS is its own."""
    argv = [sys.executable, __file__, "--trials", str(trials), "--window", str(window)]
    done = subprocess.run([*argv, "--only", tool], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{tool} failed:\n{done.stderr[-3000:]}")
    result: list[float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(tool: str, trials: int, window: int, in_process: bool) -> list[float]:
    """One tool's row: in a fresh interpreter, or (``in_process``) in this one."""
    if in_process:
        return list(TOOLS[tool][1](trials, window))
    return measure_in_child(tool, trials, window)


def report(trials: int, window: int, in_process: bool = False) -> str:
    """Both tools over ``trials`` no-op trials: the table, as text."""
    rows = {name: measure(tool, trials, window, in_process) for tool, (name, _) in TOOLS.items()}
    where = "both in one interpreter (peak RSS: the later one's includes the earlier's)"
    lines = [
        f"\n{trials} no-op trials, Sobol; windows of {window} trials"
        + (f"; {where}" if in_process else ""),
        f"{'':38} {'wall s':>8} {'first ms':>9} {'last ms':>9} {'last/first':>10} {'peak RSS':>9}",
    ]
    for name, (wall, first, last, rss) in rows.items():
        lines.append(
            f"{name:38} {wall:8.1f} {first:9.1f} {last:9.1f} {last / first:10.2f} {rss:7.0f}MB"
        )
    (_, ours_first, ours_last, _), (_, bare_first, bare_last, _) = rows.values()
    lines.append(
        f"our own overhead per trial (ours - bare): first {ours_first - bare_first:.1f} ms,"
        f" last {ours_last - bare_last:.1f} ms"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run both tools in this interpreter (quicker; peak RSS no longer each its own)",
    )
    parser.add_argument("--only", choices=sorted(TOOLS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trials < 2 * args.window:
        parser.error("--trials must be at least twice --window")
    silence_ax()
    if args.only:
        print(json.dumps(TOOLS[args.only][1](args.trials, args.window)))
        return
    print(report(args.trials, args.window, args.in_process))


if __name__ == "__main__":
    main()
