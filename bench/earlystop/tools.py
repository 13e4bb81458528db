"""Ours on the local pool, with and without early stopping, and Optuna with its pruner.

Each ``run_*`` runs in a fresh interpreter (bench/early_stopping.py's child), times
only the optimize call and returns its record: ``wall`` and driver ``cpu`` seconds,
``latencies`` (report-to-stop, seconds), ``stops`` (point -> when its stop was
requested, epoch), and whatever else the tables use.
"""

from __future__ import annotations

import asyncio
import functools
import tempfile
import time
from typing import Any

from .curves import METRIC, NAMES, Params, Workload, ours_objective, point_key, run_curve


# -- Ax set-up shared with the Orchestrator's runs ------------------------------------------
def make_client(workload: Workload) -> Any:
    """The tutorial's ``AxClient`` on [0, 1]^3, Sobol only with seed 0: the same points in
    every run and tool (``workload`` does not change them: the sequence is fixed)."""
    from ax.adapter.registry import Generators
    from ax.generation_strategy.generation_node import GenerationStep
    from ax.generation_strategy.generation_strategy import GenerationStrategy
    from ax.service.ax_client import AxClient, ObjectiveProperties

    sobol = GenerationStep(generator=Generators.SOBOL, num_trials=-1, generator_kwargs={"seed": 0})
    client = AxClient(generation_strategy=GenerationStrategy(nodes=[sobol]), verbose_logging=False)
    client.create_experiment(
        name="curves",
        parameters=[
            {"name": name, "type": "range", "bounds": [0.0, 1.0], "value_type": "float"}
            for name in NAMES
        ],
        objectives={METRIC: ObjectiveProperties(minimize=True)},
    )
    return client


def points_of(experiment: Any) -> list[Params]:
    """The experiment's points in trial order (handed to Optuna, so it runs the same)."""
    return [experiment.trials[i].arms[0].parameters for i in sorted(experiment.trials)]


def stop_times(experiment: Any) -> dict[str, float]:
    """Point -> when we asked its trial to stop (epoch), from the run metadata."""
    stops = {}
    for trial in experiment.trials.values():
        asked = trial.run_metadata.get("ax_scheduler", {}).get("stop_requested_at")
        if asked is not None:
            stops[point_key(trial.arms[0].parameters)] = asked
    return stops


# -- ours ------------------------------------------------------------------------------------
class AxCalls:
    """How long each call the scheduler hands its Ax thread queued, and ran, by name.

    Installed on the scheduler's own ``AxThread`` instance (the bench may reach
    into it), so the library runs as it always does.
    """

    def __init__(self) -> None:
        self.waits: dict[str, list[float]] = {}
        self.runs: dict[str, list[float]] = {}

    def install(self, ax_thread: Any) -> None:
        submit = ax_thread.submit

        def timed_submit(fn: Any, *args: Any, urgent: bool = False) -> Any:
            queued = time.perf_counter()
            name = getattr(fn, "__name__", type(fn).__name__)

            def run(*call_args: Any) -> Any:
                started = time.perf_counter()
                try:
                    return fn(*call_args)
                finally:
                    self.waits.setdefault(name, []).append(started - queued)
                    self.runs.setdefault(name, []).append(time.perf_counter() - started)

            return submit(run, *args, urgent=urgent)

        ax_thread.submit = timed_submit

    def record(self) -> dict[str, dict[str, list[float]]]:
        return {name: {"waits": self.waits[name], "runs": self.runs[name]} for name in self.runs}


async def run_scheduler(
    workload: Workload, log_path: str, runner: Any, config: dict[str, Any]
) -> tuple[dict[str, Any], Any]:
    """``run_optimization_async(max_trials=N)``: the record, and the scheduler (closed).

    Async, so that the runner starts (untimed) on the loop the run uses: the
    local pool's report server listens on the loop that started it.
    """
    from ax_scheduler import AxScheduler

    client = make_client(workload)
    calls = AxCalls()
    async with AxScheduler(client, runner, config) as scheduler:
        objective = functools.partial(
            ours_objective, log_path, workload.steps, workload.step_seconds
        )
        scheduler.set_objective_function(objective)
        calls.install(scheduler._core._ctx.ax_thread)
        await runner.start()
        wall, cpu = time.perf_counter(), time.process_time()
        await scheduler.run_optimization_async(max_trials=workload.trials)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    record = {
        "wall": wall,
        "cpu": cpu,
        "latencies": list(scheduler._core._progressions.latencies.values()),
        "stops": stop_times(client.experiment),
        "points": points_of(client.experiment),
        "ax_calls": calls.record(),
    }
    return record, scheduler


async def run_local(workload: Workload, log_path: str, early_stopping: bool) -> dict[str, Any]:
    from ax_scheduler import JobLibRunner

    with tempfile.TemporaryDirectory(prefix="axs-es-") as scratch:
        config: dict[str, Any] = {"progress": False, "job_output_dir": scratch}
        if early_stopping:
            config["early_stopping"] = workload.early_stopping()
        runner = JobLibRunner(n_jobs=workload.slots)
        record, _ = await run_scheduler(workload, log_path, runner, config)
    return record


def run_ours(workload: Workload, log_path: str, points: list[Params] | None) -> dict[str, Any]:
    """Ours on the local pool, no early stopping: every trial runs every step."""
    return asyncio.run(run_local(workload, log_path, early_stopping=False))


def run_ours_es(workload: Workload, log_path: str, points: list[Params] | None) -> dict[str, Any]:
    """Ours on the local pool with ``config={"early_stopping": ...}``."""
    return asyncio.run(run_local(workload, log_path, early_stopping=True))


# -- Optuna -----------------------------------------------------------------------------------
def sobol_points(workload: Workload) -> list[Params]:
    """The points the Ax tools run, in their order, from Ax itself (untimed)."""
    parameterizations, _ = make_client(workload).get_next_trials(max_trials=workload.trials)
    return list(parameterizations.values())


def run_optuna(workload: Workload, log_path: str, points: list[Params] | None) -> dict[str, Any]:
    """``study.optimize(n_jobs=slots)`` over the same points, ``MedianPruner``.

    Args:
        points: The Ax tools' points, as an earlier run recorded them; None asks Ax.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=workload.min_curves, n_warmup_steps=workload.min_progression
    )
    sampler = optuna.samplers.RandomSampler(seed=0)  # never asked: every point is enqueued
    study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner)
    for point in points or sobol_points(workload):
        study.enqueue_trial(point)
    latencies: list[float] = []
    stops: dict[str, float] = {}

    def objective(trial: optuna.Trial) -> float:
        parameters = {name: trial.suggest_float(name, 0.0, 1.0) for name in NAMES}

        def report(step: int, value: float) -> None:
            reported = time.monotonic()
            trial.report(value, step)
            if trial.should_prune():
                latencies.append(time.monotonic() - reported)
                stops[point_key(parameters)] = time.time()
                raise optuna.TrialPruned

        return run_curve(parameters, report, log_path, workload.steps, workload.step_seconds)

    wall, cpu = time.perf_counter(), time.process_time()
    study.optimize(objective, n_trials=workload.trials, n_jobs=workload.slots)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall": wall, "cpu": cpu, "latencies": latencies, "stops": stops}
