"""Many slots at once: how fast does each tool fill them, and keep them full?

Run from the repository root::

    python bench/high_parallelism.py [--slots 64] [--trials 256] [--seconds 1]
                                     [--generation default|sobol] [--reps 3]

A simulated runner: each trial sleeps ``--seconds`` and returns Rosenbrock, with no
process behind it, so what is measured is the driver: asking Ax for candidates
and handing them out as slots free. Compared, with the same slots and the same
generation strategy (AxClient's default, Sobol then BoTorch, with its BoTorch
parallelism cap raised to the slots; or Sobol only):

* ax-scheduler: ``AxScheduler(AxClient, JobLibRunner(n_jobs=slots,
  backend="threading"))`` with an ``async def`` objective that sleeps (it runs on
  the scheduler's event loop);
* Ax's Orchestrator with every poll interval 0 (it polls without sleeping) and a
  runner whose trials are done ``--seconds`` after it started them.

Columns (medians over the reps; each rep runs both tools, in turn order rotated,
each in a fresh interpreter):

* wall s: the run call only; efficiency: ideal wall (trials x seconds / slots)
  over wall;
* first fill s: from the call until all slots ran a trial;
* refill p50/max s: the k-th trial end to the (slots + k)-th trial start: how
  long a freed slot stays empty (a wave that ends together is refilled by the
  max);
* driver CPU s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from typing import Any

try:  # imported by the test suite as bench.high_parallelism
    from .compare.common import AX_PARAMETERS, silence_ax, sobol_strategy
    from .compare.objective import METRIC, rosenbrock
except ImportError:  # run as a script: bench/ is on sys.path
    from compare.common import AX_PARAMETERS, silence_ax, sobol_strategy
    from compare.objective import METRIC, rosenbrock

#: (start, end) perf_counter stamps of every trial of the run, in this process.
SPANS: list[tuple[float, float]] = []


def make_client(generation: str, slots: int) -> Any:
    from ax.service.ax_client import AxClient, ObjectiveProperties

    options: dict[str, Any] = {}
    if generation == "sobol":
        options["generation_strategy"] = sobol_strategy()
    client = AxClient(verbose_logging=False, random_seed=0, **options)
    client.create_experiment(
        name="rosenbrock",
        parameters=AX_PARAMETERS,
        objectives={METRIC: ObjectiveProperties(minimize=True)},
        # AxClient's default lets 3 BoTorch trials run at once; the slots are the point.
        choose_generation_strategy_kwargs={"max_parallelism_override": slots},
    )
    silence_ax()
    return client


def timed(call: Any) -> tuple[float, float, float]:
    """Start (perf_counter), wall and driver CPU seconds of ``call()``."""
    started, cpu = time.perf_counter(), time.process_time()
    call()
    return started, time.perf_counter() - started, time.process_time() - cpu


# -- ax-scheduler -----------------------------------------------------------------------
def run_ours(slots: int, trials: int, seconds: float, generation: str) -> tuple[float, ...]:
    from ax_scheduler import AxScheduler, JobLibRunner

    async def sleeping_trial(parameters: dict[str, Any]) -> dict[str, float]:
        start = time.perf_counter()
        await asyncio.sleep(seconds)
        SPANS.append((start, time.perf_counter()))
        return {METRIC: rosenbrock(parameters["x"], parameters["y"])}

    client = make_client(generation, slots)
    scheduler = AxScheduler(client, JobLibRunner(n_jobs=slots, backend="threading"))
    scheduler.set_objective_function(sleeping_trial)
    try:
        started, wall, cpu = timed(lambda: scheduler.run_optimization(max_trials=trials))
    finally:
        scheduler.close()
    check(client.experiment, trials, "ax-scheduler")
    return (started, wall, cpu)


# -- Ax's Orchestrator ------------------------------------------------------------------
def run_orchestrator(slots: int, trials: int, seconds: float, generation: str) -> tuple[float, ...]:
    from ax.core.base_trial import BaseTrial
    from ax.core.data import Data, DataRow
    from ax.core.metric import Metric, MetricFetchResult
    from ax.core.runner import Runner
    from ax.core.trial_status import TrialStatus
    from ax.orchestration.orchestrator import Orchestrator
    from ax.orchestration.orchestrator_options import OrchestratorOptions
    from ax.utils.common.result import Ok

    starts: dict[int, float] = {}

    class SleepingRunner(Runner):
        """A trial is done ``seconds`` after it was started."""

        def run(self, trial: BaseTrial) -> dict[str, Any]:
            starts[trial.index] = time.perf_counter()
            return {}

        def poll_trial_status(self, trials: Iterable[BaseTrial]) -> dict[TrialStatus, set[int]]:
            now, statuses = time.perf_counter(), {}
            for trial in trials:
                done = now - starts[trial.index] >= seconds
                status = TrialStatus.COMPLETED if done else TrialStatus.RUNNING
                statuses.setdefault(status, set()).add(trial.index)
            return statuses

    class RosenbrockMetric(Metric):
        def fetch_trial_data(self, trial: BaseTrial, **kwargs: Any) -> MetricFetchResult:
            arm = trial.arms[0]
            row = DataRow(
                trial_index=trial.index,
                arm_name=arm.name,
                metric_name=self.name,
                metric_signature=self.signature,
                mean=rosenbrock(arm.parameters["x"], arm.parameters["y"]),
                se=float("nan"),
            )
            return Ok(Data(data_rows=[row]))

    client = make_client(generation, slots)
    experiment = client.experiment
    experiment.update_metric(RosenbrockMetric(METRIC, lower_is_better=True))
    experiment.runner = SleepingRunner()
    options = OrchestratorOptions(
        max_pending_trials=slots,
        init_seconds_between_polls=0,
        min_seconds_before_poll=0,
        seconds_between_polls_backoff_factor=1,
        logging_level=logging.WARNING,
    )
    orchestrator = Orchestrator(
        experiment=experiment, generation_strategy=client.generation_strategy, options=options
    )
    started, wall, cpu = timed(lambda: orchestrator.run_n_trials(max_trials=trials))
    SPANS.extend((start, start + seconds) for start in starts.values())
    check(experiment, trials, "Ax Orchestrator")
    return (started, wall, cpu)


def check(experiment: Any, trials: int, tool: str) -> None:
    from ax.core.trial_status import TrialStatus

    done = len(experiment.trial_indices_by_status[TrialStatus.COMPLETED])
    if done != trials:
        raise RuntimeError(f"{tool}: {done} trials COMPLETED, expected {trials}")


TOOLS = {
    "ours": ("ax-scheduler, AxClient", run_ours),
    "orchestrator": ("Ax Orchestrator, 0 s polls", run_orchestrator),
}


# -- measuring ----------------------------------------------------------------------------
def measured(args: argparse.Namespace, tool: str) -> dict[str, float]:
    """One run of ``tool`` in this process: its row's numbers."""
    SPANS.clear()
    started, wall, cpu = TOOLS[tool][1](args.slots, args.trials, args.seconds, args.generation)
    starts = sorted(start for start, _ in SPANS)
    ends = sorted(end for _, end in SPANS)
    refills = [max(0.0, s - e) for e, s in zip(ends, starts[args.slots :], strict=False)]
    return {
        "wall": wall,
        "efficiency": args.trials * args.seconds / args.slots / wall,
        "first_fill": starts[args.slots - 1] - started,
        "refill_p50": statistics.median(refills),
        "refill_max": max(refills),
        "cpu": cpu,
    }


def in_child(args: argparse.Namespace, tool: str) -> dict[str, float]:
    argv = [sys.executable, __file__, "--only", tool]
    for name in ("slots", "trials", "seconds", "generation"):
        argv += [f"--{name}", str(getattr(args, name))]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{tool} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def table(args: argparse.Namespace, rows: dict[str, list[dict[str, float]]]) -> str:
    what = "Sobol then BoTorch" if args.generation == "default" else "Sobol only"
    lines = [
        f"{args.slots} slots, {args.trials} trials of {args.seconds:g} s, {what};"
        f" medians of {args.reps}",
        f"{'':28} {'wall s':>7} {'effic.':>7} {'first fill s':>12} {'refill p50 s':>12}"
        f" {'refill max s':>12} {'CPU s':>6}",
    ]
    medians = {}
    for tool, runs in rows.items():
        m = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        medians[tool] = m
        lines.append(
            f"{TOOLS[tool][0]:28} {m['wall']:7.2f} {m['efficiency']:7.3f} {m['first_fill']:12.2f}"
            f" {m['refill_p50']:12.3f} {m['refill_max']:12.2f} {m['cpu']:6.1f}"
        )
    ours, theirs = medians["ours"], medians["orchestrator"]
    lines.append(f"ours / Orchestrator wall: {ours['wall'] / theirs['wall']:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--trials", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--generation", choices=["default", "sobol"], default="default")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", choices=sorted(TOOLS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.trials <= args.slots:
        parser.error(f"--trials ({args.trials}) must exceed --slots ({args.slots})")
    logging.disable(logging.WARNING)  # Ax's notices on every BoTorch fit
    silence_ax()
    if args.only:
        print(json.dumps(measured(args, args.only)))
        return
    rows: dict[str, list[dict[str, float]]] = {tool: [] for tool in TOOLS}
    order = list(TOOLS)
    for rep in range(args.reps):
        for tool in order[rep % 2 :] + order[: rep % 2]:
            rows[tool].append(in_child(args, tool))
            print(f"  rep {rep + 1} {tool}: {json.dumps(rows[tool][-1])}", flush=True)
    print(table(args, rows))


if __name__ == "__main__":
    main()
