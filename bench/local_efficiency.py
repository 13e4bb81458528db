"""How well ax-scheduler keeps a local process pool busy, and what it costs per trial.

Run from the repository root::

    python bench/local_efficiency.py [--reps 3] [--quick]

Workloads (Sobol-only generation everywhere, so no model fitting is measured):

(a) ``sleep``: N trials (24; 8 with ``--quick``) of Rosenbrock on x, y in [-2, 2]
    that each sleep 0.5 s, on 4 slots. The ideal wall time is N * 0.5 / 4 s.

    * ``ax-scheduler``: ``AxScheduler(AxClient, JobLibRunner(n_jobs=4))`` and
      ``run_optimization(max_trials=N)``.
    * ``ax-scheduler, prefetch_trials=4``: the same, generating a whole wave of
      candidates ahead instead of one (the default), so four trials that end
      together restart together.
    * ``ProcessPool loop``: a hand-written loop, legacy ``AxClient`` plus
      ``concurrent.futures.ProcessPoolExecutor(4)`` (fork), keeping all 4 slots
      full: submit 4, ``wait(FIRST_COMPLETED)``, ``complete_trial``, submit next.

(b) ``no-op``: M trials (200; 40 with ``--quick``) whose objective returns
    Rosenbrock at once, so the time is the per-trial overhead.

    * ``ax-scheduler``: as in (a), ``run_optimization(max_trials=M)`` on 4 slots.
    * ``bare ask/tell``: a serial ``get_next_trial`` / ``complete_trial`` loop
      in the driver, no pool: the cost of Ax alone.

Columns of the final table (medians over ``--reps`` repetitions, tools interleaved):

* ``wall s``: wall-clock seconds of the timed call only.
* ``efficiency``: ideal wall / wall, workload (a) only (1.0 = slots never idle).
* ``driver CPU s``: ``time.process_time()`` delta over the timed call: CPU of
  every thread of the driver process (Ax, event loop, pool threads), not of the
  worker processes.
* ``ms/trial``: wall / number of trials.
* ``ratio``: this tool's wall / the baseline's wall in the same workload
  (for (b) this is the overhead target, <= 1.2).

Excluded from timing: interpreter and Ax start-up, a one-off untimed warm-up of
both tools (lazy imports inside Ax), creating the Ax client and experiment, starting
the worker processes (pool start-up), and closing schedulers / shutting pools down.
Included for ax-scheduler: everything ``run_optimization`` does, including starting
its event-loop thread on the first call and returning the best parameters.

Every timed call is checked afterwards: Ax must hold exactly N COMPLETED trials.
Wall times on a small machine move by 10-20 % with other load; compare tools
within one run (they are interleaved for that reason), not across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures as cf
import functools
import logging
import multiprocessing
import os
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

warnings.filterwarnings("ignore")

import ax  # noqa: E402 - warnings must be silenced before Ax is imported
from ax.adapter.registry import Generators  # noqa: E402
from ax.core.trial_status import TrialStatus  # noqa: E402
from ax.generation_strategy.generation_node import GenerationStep  # noqa: E402
from ax.generation_strategy.generation_strategy import GenerationStrategy  # noqa: E402
from ax.service.ax_client import AxClient, ObjectiveProperties  # noqa: E402

from ax_scheduler import AxScheduler, JobLibRunner  # noqa: E402

SLOTS = 4
SLEEP_SECONDS = 0.5
METRIC = "objective"
OURS = "ax-scheduler"
OURS_PREFETCH = f"ax-scheduler, prefetch_trials={SLOTS}"
POOL_LOOP = "ProcessPool loop"
BARE = "bare ask/tell"

Params = dict[str, Any]
Result = dict[str, float]


# -- objectives (module level: they are pickled to worker processes) -------------
def rosenbrock(x: float, y: float) -> float:
    """Rosenbrock's banana function; minimum 0 at (1, 1)."""
    return (1.0 - x) ** 2 + 100.0 * (y - x * x) ** 2


def sleepy_objective(parameters: Params) -> Result:
    """Workload (a): Rosenbrock after sleeping ``SLEEP_SECONDS``."""
    time.sleep(SLEEP_SECONDS)
    return {METRIC: rosenbrock(parameters["x"], parameters["y"])}


def noop_objective(parameters: Params) -> Result:
    """Workload (b): Rosenbrock, returned at once."""
    return {METRIC: rosenbrock(parameters["x"], parameters["y"])}


def noop() -> None:
    """Submitted to each baseline worker to start it before timing."""


# -- set-up -----------------------------------------------------------------------
def silence_ax() -> None:
    """Ax sets INFO on its own loggers and handler: raise both to WARNING."""
    root = logging.getLogger("ax")
    root.setLevel(logging.WARNING)
    for handler in root.handlers:
        handler.setLevel(logging.WARNING)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("ax."):
            logging.getLogger(name).setLevel(logging.WARNING)


def make_client() -> AxClient:
    """A legacy AxClient with a Sobol-only strategy and the Rosenbrock experiment."""
    # Ax 1.3.1: GenerationStrategy takes ``nodes=`` (no ``steps=``); GenerationStep
    # is a factory returning a GenerationNode.
    strategy = GenerationStrategy(nodes=[GenerationStep(generator=Generators.SOBOL, num_trials=-1)])
    client = AxClient(generation_strategy=strategy, verbose_logging=False)
    client.create_experiment(
        name="rosenbrock",
        parameters=[
            {"name": "x", "type": "range", "bounds": [-2.0, 2.0], "value_type": "float"},
            {"name": "y", "type": "range", "bounds": [-2.0, 2.0], "value_type": "float"},
        ],
        objectives={METRIC: ObjectiveProperties(minimize=True)},
    )
    silence_ax()  # Ax creates some loggers lazily
    return client


def completed_count(client: AxClient) -> int:
    return len(client.experiment.trial_indices_by_status[TrialStatus.COMPLETED])


# -- measurement ------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    """One timed run of one tool."""

    wall: float
    cpu: float


def timed(call: Callable[[], object]) -> Sample:
    """Wall and driver-process CPU seconds of ``call()``."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    call()
    return Sample(time.perf_counter() - wall0, time.process_time() - cpu0)


def check_completed(client: AxClient, tool: str, expected: int) -> None:
    done = completed_count(client)
    if done != expected:
        raise RuntimeError(f"{tool}: {done} trials COMPLETED in Ax, expected {expected}")


def run_ours(
    n_trials: int, objective: Callable[[Params], Result], config: dict[str, Any] | None = None
) -> Sample:
    """ax-scheduler: time ``run_optimization(max_trials=n_trials)`` on a warm pool."""
    client = make_client()
    runner = JobLibRunner(n_jobs=SLOTS)
    # Pool start-up (SLOTS worker processes), excluded from timing. start() is the
    # runner's public, idempotent warm-up hook; run_optimization's own call to it
    # is then a no-op.
    asyncio.run(runner.start())
    scheduler = AxScheduler(client, runner, config)
    try:
        scheduler.set_objective_function(objective)
        sample = timed(lambda: scheduler.run_optimization(max_trials=n_trials))
    finally:
        scheduler.close()
    check_completed(client, OURS, n_trials)
    return sample


def run_ours_prefetching(n_trials: int, objective: Callable[[Params], Result]) -> Sample:
    """ax-scheduler generating a whole wave ahead (``prefetch_trials`` = slots)."""
    return run_ours(n_trials, objective, {"prefetch_trials": SLOTS})


def measure_idle_cpu(seconds: float = 2.0) -> Sample:
    """Driver CPU while 4 trials sleep ``seconds`` and nothing else happens.

    A batch of hand-picked points needs no candidate generation, so this is the
    scheduler's own cost of waiting: event-driven completion should make it ~0.
    """
    client = make_client()
    runner = JobLibRunner(n_jobs=SLOTS)
    asyncio.run(runner.start())
    scheduler = AxScheduler(client, runner)
    try:
        scheduler.set_objective_function(functools.partial(sleep_then_noop, seconds))

        def batch() -> None:
            with scheduler.batch_trial_context() as trials:
                for x in (-1.0, -0.5, 0.5, 1.0):
                    trials.add_trial({"x": x, "y": 0.0})

        return timed(batch)
    finally:
        scheduler.close()


def sleep_then_noop(seconds: float, parameters: Params) -> Result:
    time.sleep(seconds)
    return noop_objective(parameters)


def run_pool_loop(n_trials: int, objective: Callable[[Params], Result]) -> Sample:
    """Baseline (a): ask/tell loop over a warm ProcessPoolExecutor, slots kept full."""
    client = make_client()
    context = multiprocessing.get_context("fork")
    with cf.ProcessPoolExecutor(SLOTS, mp_context=context) as pool:
        # Pool start-up, excluded from timing (fork starts all workers at once).
        cf.wait([pool.submit(noop) for _ in range(SLOTS)])
        sample = timed(lambda: pool_loop(client, pool, n_trials, objective))
    check_completed(client, POOL_LOOP, n_trials)
    return sample


def pool_loop(
    client: AxClient, pool: cf.Executor, n_trials: int, objective: Callable[[Params], Result]
) -> None:
    running: dict[cf.Future[Result], int] = {}

    def submit_next() -> None:
        parameters, index = client.get_next_trial()
        running[pool.submit(objective, parameters)] = index

    launched = 0
    while launched < min(SLOTS, n_trials):
        submit_next()
        launched += 1
    while running:
        done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
        for future in done:
            client.complete_trial(running.pop(future), future.result())
            if launched < n_trials:
                submit_next()
                launched += 1


def run_bare(n_trials: int, objective: Callable[[Params], Result]) -> Sample:
    """Baseline (b): serial ask/tell in the driver, no pool."""
    client = make_client()

    def loop() -> None:
        for _ in range(n_trials):
            parameters, index = client.get_next_trial()
            client.complete_trial(index, objective(parameters))

    sample = timed(loop)
    check_completed(client, BARE, n_trials)
    return sample


# -- workloads and reporting --------------------------------------------------------
@dataclass(frozen=True)
class Tool:
    name: str
    run: Callable[[int, Callable[[Params], Result]], Sample]


@dataclass(frozen=True)
class Workload:
    name: str
    n_trials: int
    objective: Callable[[Params], Result]
    tools: tuple[Tool, ...]  # the last one is the baseline
    ideal_wall: float | None = None


@dataclass(frozen=True)
class Row:
    workload: str
    tool: str
    n_trials: int
    wall: float
    cpu: float
    ideal_wall: float | None
    baseline_wall: float

    @property
    def efficiency(self) -> float | None:
        return None if self.ideal_wall is None else self.ideal_wall / self.wall

    @property
    def ms_per_trial(self) -> float:
        return 1000.0 * self.wall / self.n_trials

    @property
    def ratio(self) -> float:
        return self.wall / self.baseline_wall


def workloads(quick: bool) -> list[Workload]:
    n_sleep, n_noop = (8, 40) if quick else (24, 200)
    return [
        Workload(
            f"(a) sleep {SLEEP_SECONDS:g}s x{n_sleep}",
            n_sleep,
            sleepy_objective,
            (
                Tool(OURS, run_ours),
                Tool(OURS_PREFETCH, run_ours_prefetching),
                Tool(POOL_LOOP, run_pool_loop),
            ),
            ideal_wall=n_sleep * SLEEP_SECONDS / SLOTS,
        ),
        Workload(
            f"(b) no-op x{n_noop}",
            n_noop,
            noop_objective,
            (Tool(OURS, run_ours), Tool(BARE, run_bare)),
        ),
    ]


def warm_up() -> None:
    """Untimed: pay Ax's and ax-scheduler's one-off lazy imports before any rep."""
    run_bare(2, noop_objective)
    run_ours(2, noop_objective)


def measure(workload: Workload, reps: int) -> list[Row]:
    """Run every tool ``reps`` times, interleaved; one row of medians per tool."""
    samples: dict[str, list[Sample]] = {tool.name: [] for tool in workload.tools}
    for rep in range(1, reps + 1):
        for tool in workload.tools:
            sample = tool.run(workload.n_trials, workload.objective)
            samples[tool.name].append(sample)
            print(
                f"  {workload.name} | {tool.name} | rep {rep}:"
                f" wall {sample.wall:.3f} s, driver CPU {sample.cpu:.3f} s",
                flush=True,
            )
    medians = {
        name: (statistics.median(s.wall for s in runs), statistics.median(s.cpu for s in runs))
        for name, runs in samples.items()
    }
    baseline_wall = medians[workload.tools[-1].name][0]
    return [
        Row(workload.name, name, workload.n_trials, wall, cpu, workload.ideal_wall, baseline_wall)
        for name, (wall, cpu) in medians.items()
    ]


def format_table(rows: list[Row]) -> str:
    header = ("workload", "tool", "wall s", "efficiency", "driver CPU s", "ms/trial", "ratio")
    cells = [
        (
            row.workload,
            row.tool,
            f"{row.wall:.3f}",
            "-" if row.efficiency is None else f"{row.efficiency:.3f}",
            f"{row.cpu:.3f}",
            f"{row.ms_per_trial:.2f}",
            f"{row.ratio:.2f}",
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]

    def line(values: tuple[str, ...]) -> str:
        return " | ".join(
            v.ljust(w) if i < 2 else v.rjust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        )

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(c) for c in cells)])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions per tool (default 3)")
    parser.add_argument("--quick", action="store_true", help="1 rep, small workloads (smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.reps = 1
    if args.reps < 1:
        parser.error("--reps must be >= 1")
    return args


def main() -> None:
    args = parse_args()
    silence_ax()
    print(
        f"cores: {os.cpu_count()}  ax-platform: {ax.__version__}  slots: {SLOTS}  reps: {args.reps}"
    )
    warm_up()
    rows: list[Row] = []
    for workload in workloads(args.quick):
        rows.extend(measure(workload, args.reps))
    idle = measure_idle_cpu()
    print()
    print(format_table(rows))
    print(
        f"\nwaiting: a batch of {SLOTS} trials sleeping 2 s took {idle.wall:.3f} s wall and"
        f" {idle.cpu * 1000:.1f} ms of driver CPU (no candidate generation involved)"
    )
    ideal = [f"{w.name}: {w.ideal_wall:g} s" for w in workloads(args.quick) if w.ideal_wall]
    print(f"\nideal wall: {'; '.join(ideal)}. ratio = wall / the workload's last (baseline) row.")


if __name__ == "__main__":
    main()
