"""Run every tool on every workload, interleaved, and print one table per workload.

Tools (each in ``tools.py`` or ``ax_official.py``, with how it is set up):

* ax-scheduler with ``JobLibRunner(n_jobs=4)``, on the legacy ``AxClient`` (the
  tutorial's) and, in (c), on Ax 1.x's ``Client`` (another default strategy);
* Ax 1.x ``Client.run_trials`` with an ``IRunner``/``IMetric`` over a process pool;
* Ax's legacy ``Orchestrator`` with every poll interval set to 0 (it busy-polls);
* a hand-written loop: ``AxClient`` + ``ProcessPoolExecutor``, all slots kept full;
* a bare serial ask/tell loop (workload (b) only): what Ax itself costs;
* Optuna ``study.optimize(n_jobs=4)`` (Sobol QMC sampler; TPE in (c)), if installed.

Each run is a fresh interpreter (``one.py``): a pool forked from the driver slowed
later BoTorch runs in the same process, so tools must not share one. Columns
(medians over ``--reps`` runs; each rep runs every tool, in rotating order):

* wall s: the optimize call only. Excluded: imports, creating the client and
  experiment, starting worker processes, shutting down.
* efficiency: ideal wall (trials x sleep / slots) over wall.
* overhead ms/trial: (wall - ideal wall) / trials.
* noticed p50/p99 ms: from the objective's end (logged by the objective) to
  the tool recording the result (Ax: ``trial.time_completed``; Optuna:
  ``datetime_complete``). AxClient's ``complete_trial`` stamps the trial after
  attaching its data, so that part of Ax is inside this number for the AxClient
  tools; the Orchestrators stamp first and fetch the data afterwards.
* idle gap p50 ms: per worker (process, or Optuna's thread), from one trial's
  end to the next trial's start on it.
* driver CPU s: CPU of the driver process over the call (all its threads; not
  the worker processes, except Optuna's, which are threads).
* ours / this: ax-scheduler's (AxClient) wall over this tool's: < 1 is faster.

(d) runs ``bench/local_load.py``: ours against the bare loop over N no-op trials,
each in its own interpreter; ms per trial over the first and last window, peak RSS.

``--in-process`` is for the test suite's smoke run only: every run in this one
interpreter (the same code, without a fresh interpreter's 5 s of importing Ax
per run), so its numbers are skewed as described above.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .common import Key, Run, Workload, silence_ax
from .one import run_as_json, run_from_json

ToolFn = Callable[[Workload, str], Run]
OURS = "ax-scheduler, AxClient"
OURS_MODERN = "ax-scheduler, Client"


@dataclass(frozen=True)
class Tool:
    name: str
    run: ToolFn
    workloads: str  # keys of the workloads it runs, e.g. "abc"


def tools(with_optuna: bool) -> list[Tool]:
    from . import ax_official
    from . import tools as ours_and_loops

    found = [
        Tool(OURS, ours_and_loops.run_ours, "abc"),
        Tool(OURS_MODERN, ours_and_loops.run_ours_modern, "bc"),
        Tool("Ax Client.run_trials", ax_official.run_client_run_trials, "abc"),
        Tool("Ax Orchestrator, 0 s polls", ax_official.run_orchestrator, "abc"),
        Tool("AxClient + ProcessPool loop", ours_and_loops.run_hand_loop, "abc"),
        Tool("bare ask/tell, serial", ours_and_loops.run_bare, "b"),
    ]
    if with_optuna:
        found.append(Tool("Optuna n_jobs=4", ours_and_loops.run_optuna, "abc"))
    return found


def workloads(quick: bool, trials: int | None = None) -> list[Workload]:
    """(a), (b), (c); ``trials``, if given, is every workload's number of trials."""
    if quick:
        chosen = [
            Workload("a", 8, 0.5, "sobol"),
            Workload("b", 20, 0.0, "sobol"),
            Workload("c", 8, 0.5, "default"),
        ]
    else:
        chosen = [
            Workload("a", 24, 0.5, "sobol"),
            Workload("b", 200, 0.0, "sobol"),
            Workload("c", 20, 0.5, "default"),
        ]
    if trials is None:
        return chosen
    return [dataclasses.replace(workload, n_trials=trials) for workload in chosen]


# -- per-run metrics ------------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    """One trial as its objective logged it."""

    key: Key
    slot: tuple[int, int]  # (pid, thread id): a worker process, or Optuna's thread
    start: float
    end: float


def read_timings(path: str) -> list[Timing]:
    timings = []
    with open(path, encoding="utf-8") as log:
        for line in log:
            x, y, pid, tid, start, end = line.split()
            timings.append(
                Timing((float(x), float(y)), (int(pid), int(tid)), float(start), float(end))
            )
    return timings


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def idle_gaps(timings: list[Timing]) -> list[float]:
    """For each slot, the seconds from one trial's end to that slot's next start."""
    by_slot: dict[tuple[int, int], list[Timing]] = {}
    for timing in timings:
        by_slot.setdefault(timing.slot, []).append(timing)
    gaps = []
    for runs in by_slot.values():
        runs.sort(key=lambda t: t.start)
        gaps += [later.start - earlier.end for earlier, later in itertools.pairwise(runs)]
    return gaps


@dataclass(frozen=True)
class Measured:
    """One tool's numbers for one run of one workload."""

    wall: float
    cpu: float
    overhead_ms: float  # (wall - ideal wall) / trials
    noticed_p50_ms: float
    noticed_p99_ms: float
    gap_p50_ms: float

    @classmethod
    def of(cls, workload: Workload, run: Run, timings: list[Timing]) -> Measured:
        logged = {t.key: t for t in timings}
        if set(run.recorded) - set(logged):
            raise RuntimeError("a completed trial is missing from the objective's log")
        noticed = [run.recorded[key] - logged[key].end for key in run.recorded]
        return cls(
            wall=run.wall,
            cpu=run.cpu,
            overhead_ms=1000 * (run.wall - workload.ideal_wall) / workload.n_trials,
            noticed_p50_ms=1000 * percentile(noticed, 0.5),
            noticed_p99_ms=1000 * percentile(noticed, 0.99),
            gap_p50_ms=1000 * percentile(idle_gaps(timings), 0.5),
        )


def median_of(runs: list[Measured]) -> Measured:
    fields = Measured.__dataclass_fields__
    return Measured(**{name: statistics.median(getattr(r, name) for r in runs) for name in fields})


# -- running ----------------------------------------------------------------------------
def tool_named(name: str) -> Tool:
    """The tool called ``name`` (Optuna included: the child is asked only if it exists)."""
    (tool,) = [tool for tool in tools(with_optuna=True) if tool.name == name]
    return tool


def run_isolated(tool: Tool, workload: Workload, log_path: Path) -> Run:
    """``tool`` on ``workload`` in a fresh interpreter (see ``one.py`` for why)."""
    argv = [sys.executable, "-m", "bench.compare.one", tool.name]
    argv += [json.dumps(dataclasses.asdict(workload)), str(log_path)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{tool.name} failed on {workload.title}:\n{done.stderr[-3000:]}")
    return run_from_json(done.stdout.strip().splitlines()[-1])


def run_in_process(tool: Tool, workload: Workload, log_path: Path) -> Run:
    """The same run as :func:`run_isolated`, in this interpreter (``--in-process``)."""
    return run_from_json(
        run_as_json(tool.name, json.dumps(dataclasses.asdict(workload)), str(log_path))
    )


def measure(
    tool: Tool, workload: Workload, scratch: Path, label: str, in_process: bool = False
) -> Measured:
    log_path = scratch / f"{label}.log"
    run = (run_in_process if in_process else run_isolated)(tool, workload, log_path)
    measured = Measured.of(workload, run, read_timings(str(log_path)))
    notes = f"  [{'; '.join(run.notes)}]" if run.notes else ""
    print(
        f"  {label}: {tool.name}: wall {measured.wall:.3f} s, CPU {measured.cpu:.3f} s,"
        f" noticed p50 {measured.noticed_p50_ms:.2f} ms{notes}",
        flush=True,
    )
    return measured


def measure_workload(
    workload: Workload, chosen: list[Tool], reps: int, scratch: Path, in_process: bool = False
) -> dict[str, Measured]:
    """Medians over ``reps`` runs; tool order rotates each rep, so no tool always goes first."""
    runs: dict[str, list[Measured]] = {tool.name: [] for tool in chosen}
    for rep in range(reps):
        order = chosen[rep % len(chosen) :] + chosen[: rep % len(chosen)]
        for tool in order:
            label = f"{workload.key}-rep{rep + 1}-{len(runs[tool.name])}-{chosen.index(tool)}"
            runs[tool.name].append(measure(tool, workload, scratch, label, in_process))
    return {name: median_of(measured) for name, measured in runs.items()}


def format_table(workload: Workload, medians: dict[str, Measured]) -> str:
    ours = medians[OURS]
    header = [
        "tool",
        "wall s",
        "efficiency",
        "overhead ms/trial",
        "noticed p50 ms",
        "noticed p99 ms",
        "idle gap p50 ms",
        "driver CPU s",
        "ours / this (wall)",
    ]
    rows = []
    for name, m in medians.items():
        efficiency = f"{workload.ideal_wall / m.wall:.3f}" if workload.ideal_wall else "-"
        rows.append(
            [
                name,
                f"{m.wall:.3f}",
                efficiency,
                f"{m.overhead_ms:.2f}",
                f"{m.noticed_p50_ms:.2f}",
                f"{m.noticed_p99_ms:.2f}",
                f"{m.gap_p50_ms:.2f}",
                f"{m.cpu:.3f}",
                "-" if name == OURS else f"{ours.wall / m.wall:.2f}",
            ]
        )
    ideal = f"ideal wall {workload.ideal_wall:g} s" if workload.ideal_wall else "no-op trials"
    lines = [
        f"### {workload.title} ({ideal}, {workload.slots} slots)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# -- (d): 10,000 trials, ours against a bare loop ----------------------------------------
def measure_load(trials: int, window: int, in_process: bool = False) -> str:
    """bench/local_load.py in a child: each tool in its own interpreter (peak RSS its own);
    ``in_process``: both in this interpreter."""
    if in_process:
        from .. import local_load

        return local_load.report(trials, window, in_process=True).strip()
    script = Path(__file__).parents[1] / "local_load.py"
    argv = [sys.executable, str(script), "--trials", str(trials), "--window", str(window)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"local_load.py failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return done.stdout.strip()


def has_optuna() -> bool:
    try:
        import optuna  # noqa: F401
    except ImportError:
        return False
    return True


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "ax-scheduler against Ax's Client.run_trials, Ax's Orchestrator, a hand-written"
            " AxClient + ProcessPoolExecutor loop and Optuna, on the same workloads."
        ),
    )
    parser.add_argument("--reps", type=int, help="runs per tool and workload (median; 3)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 1 rep, small workloads, (d) with 200 trials (unless given too)",
    )
    parser.add_argument("--workloads", default="abcd", help="which of a, b, c, d to run")
    parser.add_argument(
        "--trials", type=int, help="trials per run in (a), (b) and (c) (default: each its own)"
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="the test suite's smoke run: every run in this interpreter, not each in a"
        " fresh one (the same code, 5 s less per run; the numbers are skewed)",
    )
    parser.add_argument(
        "--tools",
        help="only the tools whose name contains one of these comma-separated words"
        " (case-insensitive; e.g. 'ax-scheduler,orchestrator,bare'); ours always runs",
    )
    parser.add_argument("--load-trials", type=int, help="trials in (d) (10,000)")
    parser.add_argument(
        "--load-window",
        type=int,
        help="(d) reports ms/trial over the first and last this many trials (1,000)",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        help="sys.setswitchinterval() for the whole run, every tool alike (Python's"
        " default is 0.005 s): how long a thread may hold the GIL while others wait",
    )
    args = parser.parse_args(argv)
    defaults = {"reps": 1, "load_trials": 200, "load_window": 50} if args.quick else {}
    defaults = {"reps": 3, "load_trials": 10_000, "load_window": 1000} | defaults
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.reps < 1:
        parser.error(f"--reps must be >= 1, got {args.reps}")
    if args.trials is not None and args.trials < 1:
        parser.error(f"--trials must be >= 1, got {args.trials}")
    if set(args.workloads) - set("abcd"):
        parser.error(f"--workloads takes letters from 'abcd', got {args.workloads!r}")
    if args.load_trials < 2 * args.load_window:
        parser.error("--load-trials must be at least twice --load-window")
    return args


def wanted(name: str, words: str | None) -> bool:
    """Whether ``--tools`` keeps the tool ``name`` (ours is always kept: the ratios)."""
    if words is None or name == OURS:
        return True
    return any(word.strip().lower() in name.lower() for word in words.split(",") if word.strip())


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    import ax

    silence_ax()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    with_optuna = has_optuna()
    print(
        f"cores: {os.cpu_count()}  ax-platform: {ax.__version__}  reps: {args.reps}"
        f"  GIL switch interval: {sys.getswitchinterval() * 1000:g} ms"
        f"  optuna: {'yes' if with_optuna else 'not installed (pip install .[bench])'}"
    )
    chosen_tools = [tool for tool in tools(with_optuna) if wanted(tool.name, args.tools)]
    tables = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ax-scheduler-bench-") as scratch:
        for workload in workloads(args.quick, args.trials):
            if workload.key not in args.workloads:
                continue
            chosen = [tool for tool in chosen_tools if workload.key in tool.workloads]
            medians = measure_workload(workload, chosen, args.reps, Path(scratch), args.in_process)
            tables.append(format_table(workload, medians))
            print("\n" + tables[-1] + "\n", flush=True)
    if "d" in args.workloads:
        print(f"(d) {args.load_trials} no-op trials, Sobol: ours against a bare loop", flush=True)
        tables.append(measure_load(args.load_trials, args.load_window, args.in_process))
    print("\n\n".join(["# Results", *tables]))
    print(f"\nsuite took {time.perf_counter() - started:.0f} s")
