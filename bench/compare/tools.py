"""The tools compared, except Ax's own orchestration (``ax_official``).

Each ``run_*`` function takes a :class:`Workload` and the path the objective logs
its timing to, starts its workers untimed, times only the optimize call, checks
that every trial completed and returns a :class:`Run`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
from collections.abc import Callable
from typing import Any

from ax_scheduler import AxScheduler, JobLibRunner

from .common import (
    BOUNDS,
    Key,
    Params,
    Run,
    Workload,
    ax_completed,
    ax_recorded,
    make_ax_client,
    make_modern_client,
    timed,
    warm_pool,
)
from .objective import METRIC


def check_all_completed(tool: str, workload: Workload, completed: int) -> None:
    if completed != workload.n_trials:
        raise RuntimeError(f"{tool}: {completed} trials completed, expected {workload.n_trials}")


def ax_run(tool: str, workload: Workload, experiment: Any, wall: float, cpu: float) -> Run:
    run = Run(wall, cpu, ax_recorded(experiment), ax_completed(experiment))
    check_all_completed(tool, workload, run.completed)
    return run


# -- ax-scheduler -------------------------------------------------------------------
def run_ours(workload: Workload, log_path: str) -> Run:
    """``AxScheduler(AxClient, JobLibRunner(n_jobs=slots)).run_optimization(max_trials=n)``."""
    client = make_ax_client(workload)
    return run_scheduler("ax-scheduler", client, client.experiment, workload, log_path)


def run_ours_modern(workload: Workload, log_path: str) -> Run:
    """The same on Ax 1.x's ``Client``: its default strategy, candidates asked jointly."""
    client = make_modern_client(workload)
    # The Client has no public experiment accessor; read only to collect results.
    return run_scheduler("ax-scheduler (Client)", client, client._experiment, workload, log_path)


def run_scheduler(tool: str, client: Any, experiment: Any, workload: Workload, log: str) -> Run:
    runner = JobLibRunner(n_jobs=workload.slots)
    # Starting the worker processes is excluded, as for every tool. start() is
    # the runner's public, idempotent warm-up; run_optimization's call is a no-op.
    asyncio.run(runner.start())
    scheduler = AxScheduler(client, runner)
    try:
        scheduler.set_objective_function(workload.objective(log))
        wall, cpu = timed(lambda: scheduler.run_optimization(max_trials=workload.n_trials))
    finally:
        scheduler.close()
    return ax_run(tool, workload, experiment, wall, cpu)


# -- a hand-written loop --------------------------------------------------------------
def run_hand_loop(workload: Workload, log_path: str) -> Run:
    """Legacy ``AxClient`` + ``ProcessPoolExecutor``, all slots kept full.

    What many users write themselves: submit one trial per slot, then
    ``wait(FIRST_COMPLETED)``, ``complete_trial`` and submit the next one.
    """
    client = make_ax_client(workload)
    objective = workload.objective(log_path)
    with warm_pool(workload.slots) as pool:
        wall, cpu = timed(lambda: hand_loop(client, pool, workload, objective))
    return ax_run("hand loop", workload, client.experiment, wall, cpu)


def hand_loop(
    client: Any,
    pool: cf.Executor,
    workload: Workload,
    objective: Callable[[Params], dict[str, float]],
) -> None:
    from ax.exceptions.core import DataRequiredError
    from ax.exceptions.generation_strategy import MaxParallelismReachedException

    running: dict[cf.Future[dict[str, float]], int] = {}
    launched = 0
    while running or launched < workload.n_trials:
        # Fill every free slot Ax lets us fill (it may refuse until more data).
        while len(running) < workload.slots and launched < workload.n_trials:
            try:
                parameters, index = client.get_next_trial()
            except (MaxParallelismReachedException, DataRequiredError):
                break
            running[pool.submit(objective, parameters)] = index
            launched += 1
        done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
        for future in done:
            client.complete_trial(running.pop(future), future.result())


# -- bare ask/tell: what Ax alone costs ------------------------------------------------
def run_bare(workload: Workload, log_path: str) -> Run:
    """A serial ``get_next_trial`` / ``complete_trial`` loop in the driver, no pool."""
    client = make_ax_client(workload)
    objective = workload.objective(log_path)

    def loop() -> None:
        for _ in range(workload.n_trials):
            parameters, index = client.get_next_trial()
            client.complete_trial(index, objective(parameters))

    wall, cpu = timed(loop)
    return ax_run("bare ask/tell", workload, client.experiment, wall, cpu)


# -- Optuna ------------------------------------------------------------------------------
def run_optuna(workload: Workload, log_path: str) -> Run:
    """``study.optimize(objective, n_trials=n, n_jobs=slots)`` (its slots are threads).

    Sampler: Sobol QMC for "sobol" workloads (Ax's Sobol counterpart), TPE (Optuna's
    default model-based sampler) for "default" ones.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler: optuna.samplers.BaseSampler
    if workload.generation == "sobol":
        sampler = optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=0)
    else:
        sampler = optuna.samplers.TPESampler(seed=0)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    evaluate = workload.objective(log_path)

    def objective(trial: optuna.Trial) -> float:
        parameters = {name: trial.suggest_float(name, *BOUNDS) for name in ("x", "y")}
        return evaluate(parameters)[METRIC]

    wall, cpu = timed(
        lambda: study.optimize(objective, n_trials=workload.n_trials, n_jobs=workload.slots)
    )
    recorded: dict[Key, float] = {
        (t.params["x"], t.params["y"]): t.datetime_complete.timestamp()
        for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE and t.datetime_complete is not None
    }
    run = Run(wall, cpu, recorded, len(recorded), notes=[f"sampler: {type(sampler).__name__}"])
    check_all_completed("Optuna", workload, run.completed)
    return run
