"""Early stopping on learning curves: the compute it saves, ours against Ax's
Orchestrator and Optuna.

Run from the repository root::

    python bench/early_stopping.py [--reps 3] [--trials 40] [--steps 30] [--step-seconds 0.1]
    python bench/early_stopping.py --quick    # a smoke test: a few trials of a few short steps
    python bench/early_stopping.py --slurm    # ours with early stopping on the local Slurm cluster

The workload (earlystop/curves.py): ``--trials`` trials of ``--steps`` steps,
``--slots`` at a time. Each step sleeps ``--step-seconds`` and reports the loss of a
curve whose final value shows early (x, y, z in [0, 1], lower is better)::

    loss(step) = (x - 0.3)**2 + (y - 0.7)**2 + (0.6 + 0.4 z) / (1 + step) + noise

x and y set where a curve ends; z, its speed, lets curves cross a little on the
way. The noise (sd 0.005) is the same for a point and a step in every process.
Every tool runs the same points, Ax's Sobol sequence with seed 0 (Optuna is handed
them by ``enqueue_trial``), so the best value differs between tools only by what
each stopped.

Tools, each run in a fresh interpreter, interleaved over ``--reps`` (the order
rotates each rep); all stop with Ax's ``PercentileEarlyStoppingStrategy`` of the
same ``--percentile``, ``--min-progression`` and ``--min-curves``, except Optuna:

* ours: ``AxScheduler`` + ``JobLibRunner(n_jobs=slots)`` (worker processes),
  ``run_optimization_async``, a function objective calling ``ax_scheduler.report``
  each step; no early stopping: the baseline of every ratio;
* ours, early stopping: the same with ``config={"early_stopping": {...}}``;
* Ax's Orchestrator with the strategy in its options, as Ax's early-stopping
  tutorial runs it: a ``Runner`` that runs trials in a thread pool and a
  ``MapMetric`` (available while running) that fetches the steps reported so far;
  once polling every step (``init_seconds_between_polls`` = the step time,
  ``min_seconds_before_poll=0``) and once with its default polls (1 s);
* Optuna: ``study.optimize(n_jobs=slots)`` (threads) with
  ``MedianPruner(n_startup_trials=min_curves, n_warmup_steps=min_progression)``;
  each step ``trial.report`` then ``should_prune``. Its median is over COMPLETED
  trials only and its start-up count is of completed trials, not of curves: the
  nearest it has to the same strategy.

A stopped trial ends at its next report (ours: ``report()`` raises
``TrialStoppedEarly``; the Orchestrator's runner: the same from a stop flag), so it
runs one step more than the step that decided; Optuna decides inside the report
call itself, the trial waiting.

Columns (medians over the reps; latencies pooled over them):

* compute s: the seconds trials were busy (from each trial's start to its end,
  logged by the trial itself), summed; saved: 1 - compute / ours' compute;
* steps run, stopped: steps the trials ran; trials that did not run every step;
* best final: the noise-free final value at the parameters of the best trial that
  ran every step and returned its value (picked by its reported final value), so a
  stopped trial's partial value never counts;
* wall s: the optimize call only (not imports, creating the experiment, starting
  workers); slots busy: compute / (slots x wall); driver CPU s: of the driver
  process over the call (all its threads: Optuna's trials too);
* report-to-stop ms: from the arrival of the report the decision was made on to the
  stop request (ours: ``Progressions.latencies``, the oldest report not yet in Ax
  when the round that decided began; the Orchestrator: the oldest step not fetched
  before the poll that decided; Optuna: ``trial.report`` + ``should_prune``);
* stop-to-end ms: from the stop request to the trial's end (its own log).

A second table sums, per run, the seconds stopped trials ran between the deciding
report and the stop request, and from it to their end: the compute that a faster
stop would save. Below it, where our Ax thread's time went (each call it ran,
timed on the scheduler's own ``AxThread``).

Targets: at least 40 % of compute saved at an equal best value; less compute than
the Orchestrator with the same strategy; report-to-stop under 50 ms locally, and
within one status tick on Slurm (``--slurm``, see earlystop/slurm.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from earlystop.curves import Workload
from earlystop.results import (
    Measured,
    Row,
    ax_thread_lines,
    main_table,
    median,
    ms_pair,
    read_log,
    same_points,
    target_lines,
    verdict,
    waiting_table,
)

OURS, OURS_ES, SLURM_TOOL = "ours", "ours-es", "ours-es-slurm"
RIVALS = ("orchestrator", "orchestrator-defaults")
#: Tool -> (its row's name, "module:function" that runs it in a child).
TOOLS = {
    OURS: ("ax-scheduler, no early stopping", "earlystop.tools:run_ours"),
    OURS_ES: ("ax-scheduler, early stopping", "earlystop.tools:run_ours_es"),
    "orchestrator": ("Ax Orchestrator, polls every step", "earlystop.orchestrator:run_every_step"),
    "orchestrator-defaults": (
        "Ax Orchestrator, default polls",
        "earlystop.orchestrator:run_defaults",
    ),
    "optuna": ("Optuna, MedianPruner", "earlystop.tools:run_optuna"),
}
CHILD_ONLY = {
    SLURM_TOOL: ("ax-scheduler on Slurm, early stopping", "earlystop.slurm:run_ours_slurm")
}
#: Small, yet a stop has 0.6 s from the first step it may be decided on to the trial's end.
QUICK = Workload(trials=8, steps=10, step_seconds=0.1, slots=2, min_progression=3, min_curves=3)
SLURM = Workload(trials=12, steps=20, step_seconds=0.5, slots=2, min_progression=5, min_curves=3)


# -- a child: one tool, one run -----------------------------------------------------------------
def child_main(tool: str, workload: Workload, log_path: str, points_path: str | None) -> None:
    """Run one tool here and print its record as one JSON line (the last one)."""
    module, _, name = {**TOOLS, **CHILD_ONLY}[tool][1].partition(":")
    run: Callable[..., dict[str, Any]] = getattr(importlib.import_module(module), name)
    if tool != "optuna":  # Optuna's child runs without Ax when it is handed the points
        from compare.common import silence_ax  # imports Ax, quietly

        silence_ax()
    points = json.loads(Path(points_path).read_text()) if points_path else None
    print(json.dumps(run(workload, log_path, points)))


# -- the parent: fresh interpreters, one record per run -----------------------------------------
def run_in_child(
    tool: str, workload: Workload, scratch: Path, label: str
) -> tuple[Measured, dict[str, Any]]:
    """``tool`` on ``workload`` in a fresh interpreter, measured from its log."""
    log_path = scratch / f"{label}.jsonl"
    argv = [sys.executable, __file__, "--only", tool, "--log", str(log_path)]
    argv += ["--workload", json.dumps(dataclasses.asdict(workload))]
    points = scratch / "points.json"
    if points.exists():
        argv += ["--points", str(points)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{tool} failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")
    record: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if "points" in record and not points.exists():
        points.write_text(json.dumps(record["points"]))
    return Measured.of(record, read_log(log_path), workload), record


def measure_all(tools: list[str], workload: Workload, reps: int, scratch: Path) -> dict[str, Row]:
    """Every tool, ``reps`` times; the order rotates each rep, so none always goes first."""
    runs: dict[str, list[Measured]] = {tool: [] for tool in tools}
    for rep in range(reps):
        for tool in tools[rep % len(tools) :] + tools[: rep % len(tools)]:
            measured, _ = run_in_child(tool, workload, scratch, f"{tool}-{rep}")
            runs[tool].append(measured)
            print(
                f"  rep {rep + 1}: {TOOLS[tool][0]}: compute {measured.compute:.1f} s,"
                f" {measured.stopped} stopped, best {measured.best:.5f},"
                f" wall {measured.wall:.1f} s",
                flush=True,
            )
    return {tool: Row(TOOLS[tool][0], measured) for tool, measured in runs.items()}


def print_results(rows: dict[str, Row], workload: Workload) -> None:
    print(f"\n{main_table(rows, OURS, workload.slots)}\n")
    points = "every run ran the same points" if same_points(rows) else "runs ran DIFFERENT points"
    print(f"{points}; ratios against {rows[OURS].name}\n")
    if any(row.pooled("latencies") for row in rows.values()):
        print("compute run while a stop was on its way (per run, median):\n")
        print(f"{waiting_table(rows, OURS)}\n")
    for tool in (OURS, OURS_ES):
        for line in ax_thread_lines(rows[tool]) if tool in rows else []:
            print(line)
    if OURS_ES in rows:
        print("\ntargets:")
        rivals = [tool for tool in RIVALS if tool in rows]
        for line in target_lines(rows, OURS, OURS_ES, rivals):
            print(f"  {line}")


def slurm_main(workload: Workload, scratch: Path) -> None:
    """Ours with early stopping on Slurm: compute, and the stop latency in ticks."""
    from earlystop.slurm import describe_ticks, stop_latencies

    print(f"Slurm (the local cluster, over SSH): {workload.describe()}", flush=True)
    measured, record = run_in_child(SLURM_TOOL, workload, scratch, "slurm")
    print(
        f"  compute {measured.compute:.1f} s of a {workload.budget:g} s budget"
        f" ({1 - measured.compute / workload.budget:.0%} saved), {measured.stopped} stopped,"
        f" best final {measured.best:.5f}, wall {measured.wall:.1f} s,"
        f" {describe_ticks(record['ticks'])}"
    )
    if not record["arrivals"]:
        print(
            "  no report reached the scheduler from the Slurm jobs: this SlurmRunner does not"
            " deliver progress yet, so nothing could be stopped; run again once it does"
        )
        return
    written = {
        key: {step: when for step, (when, _) in trial.steps.items()}
        for key, trial in read_log(scratch / "slurm.jsonl").items()
    }
    found = stop_latencies(record, written)
    print(f"  arrival-to-stop ms p50 / max: {ms_pair(record['latencies'])}")
    if not found:
        print("  no trial was stopped: no stop latency to report")
        return
    seconds, ticks = [s for s, _ in found], [t for _, t in found]
    print(
        f"  report-to-stop (written -> stop request) s p50 / max: {median(seconds):.2f} /"
        f" {max(seconds):.2f}; status ticks in between p50 / max: {median(ticks):g} / {max(ticks)}"
    )
    print(f"target: within one status tick on Slurm: {verdict(max(ticks) <= 1)}")


# -- arguments ----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="runs per tool (median)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 rep, a small workload")
    parser.add_argument("--slurm", action="store_true", help="ours with early stopping on Slurm")
    parser.add_argument("--tools", help=f"comma-separated, from {', '.join(TOOLS)} (ours always)")
    for name, kind in [("trials", int), ("steps", int), ("step-seconds", float), ("slots", int)]:
        parser.add_argument(f"--{name}", type=kind, help="the workload (default: the preset's)")
    for name, kind in [("percentile", float), ("min-progression", int), ("min-curves", int)]:
        parser.add_argument(f"--{name}", type=kind, help="the early-stopping strategy's option")
    parser.add_argument("--only", choices=[*TOOLS, *CHILD_ONLY], help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    parser.add_argument("--points", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error(f"--reps must be >= 1, got {args.reps}")
    args.chosen = chosen_tools(parser, args)
    args.workload = workload_of(parser, args)
    return args


def chosen_tools(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """``--tools`` with ours first (the baseline); without it every tool (--quick: one
    Orchestrator)."""
    if args.tools is None:
        return [tool for tool in TOOLS if not (args.quick and tool == "orchestrator-defaults")]
    chosen = [tool.strip() for tool in args.tools.split(",") if tool.strip()]
    unknown = [tool for tool in chosen if tool not in TOOLS]
    if unknown:
        parser.error(f"--tools takes names from {', '.join(TOOLS)}, got {', '.join(unknown)}")
    return [OURS, *dict.fromkeys(tool for tool in chosen if tool != OURS)]


def workload_of(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Workload:
    """The preset (the default, --quick or --slurm), with any option given on the line."""
    if args.workload:  # a child: the parent's, as JSON
        return Workload(**json.loads(args.workload))
    preset = QUICK if args.quick else SLURM if args.slurm else Workload()
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(Workload)
        if getattr(args, f.name) is not None
    }
    workload = dataclasses.replace(preset, **given)
    for name in ("trials", "steps", "slots", "min_curves"):
        if getattr(workload, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(workload, name)}")
    if workload.step_seconds <= 0:
        parser.error(f"--step-seconds must be > 0, got {workload.step_seconds}")
    if not 0 < workload.percentile < 100:
        parser.error(f"--percentile must be between 0 and 100, got {workload.percentile}")
    if not 0 <= workload.min_progression < workload.steps:
        parser.error(
            f"--min-progression must be from 0 to --steps - 1 ({workload.steps - 1}),"
            f" got {workload.min_progression}"
        )
    return workload


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    workload: Workload = args.workload
    if args.only:
        child_main(args.only, workload, args.log, args.points)
        return
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="axs-es-bench-") as scratch:
        if args.slurm:
            slurm_main(workload, Path(scratch))
        else:
            reps = 1 if args.quick else args.reps
            print(f"cores: {os.cpu_count()}  reps: {reps}  {workload.describe()}", flush=True)
            print_results(measure_all(args.chosen, workload, reps, Path(scratch)), workload)
    print(f"\nbench took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
