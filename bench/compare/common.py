"""What every tool of the comparison shares: workloads, one run's record, Ax set-up."""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

warnings.filterwarnings("ignore")  # Ax's and BoTorch's import-time warnings

from ax.core.experiment import Experiment  # noqa: E402
from ax.core.trial_status import TrialStatus  # noqa: E402

from .objective import METRIC, evaluate  # noqa: E402

SLOTS = 4
BOUNDS = (-2.0, 2.0)
Params = dict[str, float]
Key = tuple[float, float]  # a trial's (x, y): unique per trial under Sobol and BoTorch


@dataclass(frozen=True)
class Workload:
    """One row group of the table: N trials of Rosenbrock on x, y in [-2, 2].

    Attributes:
        key: "a", "b", "c".
        n_trials: Trials per run.
        sleep: Seconds each trial sleeps (0: a no-op trial, pure overhead).
        generation: "sobol" (quasi-random only: no model fitting) or "default"
            (each tool's default: Ax's Sobol then BoTorch, Optuna's TPE).
        slots: Trials running at once.
    """

    key: str
    n_trials: int
    sleep: float
    generation: Literal["sobol", "default"]
    slots: int = SLOTS

    @property
    def ideal_wall(self) -> float:
        """Wall seconds with zero overhead: every slot always busy."""
        return self.n_trials * self.sleep / self.slots

    @property
    def title(self) -> str:
        what = f"{self.sleep:g} s sleep" if self.sleep else "no-op"
        gen = "Sobol" if self.generation == "sobol" else "Sobol then BoTorch"
        return f"({self.key}) {self.n_trials} x {what}, {gen}"

    def objective(self, log_path: str) -> Callable[[Params], dict[str, float]]:
        """The trial function for this workload, logging its timing to ``log_path``."""
        return functools.partial(evaluate, log_path, self.sleep)


@dataclass
class Run:
    """What one tool did in one timed run.

    Attributes:
        wall: Wall seconds of the timed part (the tool's optimize call).
        cpu: CPU seconds of the driver process over that call (all its threads;
            not the worker processes, except Optuna's, which are threads).
        recorded: For each completed trial, the epoch time at which the tool
            recorded its result (Ax: ``trial.time_completed``).
        completed: Trials the tool holds as completed afterwards.
        notes: Anything the table should footnote (e.g. a setting that was used).
    """

    wall: float
    cpu: float
    recorded: dict[Key, float]
    completed: int
    notes: list[str] = field(default_factory=list)


def timed(call: Callable[[], object]) -> tuple[float, float]:
    """Wall and driver-process CPU seconds of ``call()``."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall0, time.process_time() - cpu0


def ax_recorded(experiment: Experiment) -> dict[Key, float]:
    """When Ax marked each COMPLETED trial completed, by its parameters."""
    recorded: dict[Key, float] = {}
    for trial in experiment.trials.values():
        if trial.status == TrialStatus.COMPLETED and trial.time_completed is not None:
            params = trial.arms[0].parameters
            recorded[(params["x"], params["y"])] = trial.time_completed.timestamp()
    return recorded


def ax_completed(experiment: Experiment) -> int:
    """How many of the experiment's trials are COMPLETED."""
    return len(experiment.trial_indices_by_status[TrialStatus.COMPLETED])


def silence_ax() -> None:
    """Ax sets INFO on its own loggers and handlers: raise them to WARNING."""
    for name in ["ax", *(n for n in logging.root.manager.loggerDict if n.startswith("ax."))]:
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        for handler in logger.handlers:
            handler.setLevel(logging.WARNING)


AX_PARAMETERS: list[dict[str, Any]] = [
    {"name": name, "type": "range", "bounds": list(BOUNDS), "value_type": "float"}
    for name in ("x", "y")
]


def sobol_strategy() -> Any:
    """A Sobol-only generation strategy (no model fitting), for both Ax client APIs."""
    from ax.adapter.registry import Generators
    from ax.generation_strategy.generation_node import GenerationStep
    from ax.generation_strategy.generation_strategy import GenerationStrategy

    # Ax 1.3: GenerationStrategy takes nodes=; GenerationStep builds a GenerationNode.
    return GenerationStrategy(nodes=[GenerationStep(generator=Generators.SOBOL, num_trials=-1)])


def make_ax_client(workload: Workload) -> Any:
    """The legacy ``AxClient`` (the tutorial's) with the Rosenbrock experiment."""
    from ax.service.ax_client import AxClient, ObjectiveProperties

    strategy = sobol_strategy() if workload.generation == "sobol" else None
    client = AxClient(generation_strategy=strategy, verbose_logging=False)
    client.create_experiment(
        name="rosenbrock",
        parameters=AX_PARAMETERS,
        objectives={METRIC: ObjectiveProperties(minimize=True)},
    )
    silence_ax()  # some of Ax's loggers are created lazily
    return client


def make_modern_client(workload: Workload) -> Any:
    """The Rosenbrock experiment on Ax 1.x's ``Client`` (``ax.api``).

    For "default" generation, its own default strategy, chosen here (as
    ``run_trials`` would) so that choosing it is not timed: Center, Sobol, then
    BoTorch (MBM), with no cap on how many BoTorch trials run at once, unlike
    ``AxClient``'s default (at most 3).
    """
    from ax.api.client import Client
    from ax.api.configs import RangeParameterConfig

    client = Client()
    client.configure_experiment(
        parameters=[
            RangeParameterConfig(name=name, parameter_type="float", bounds=BOUNDS)
            for name in ("x", "y")
        ],
        name="rosenbrock",
    )
    client.configure_optimization(objective=f"-{METRIC}")
    if workload.generation == "sobol":
        client.set_generation_strategy(generation_strategy=sobol_strategy())
    else:
        client.configure_generation_strategy()
    silence_ax()
    return client


# -- for the single-purpose scripts (checkpoint_overhead.py, local_load.py) -----------
def make_client() -> Any:
    """A legacy ``AxClient`` with the Rosenbrock experiment and a Sobol-only strategy."""
    return make_ax_client(Workload("-", 0, 0.0, "sobol"))


def completed_count(client: Any) -> int:
    """COMPLETED trials of a legacy ``AxClient``'s experiment."""
    return ax_completed(client.experiment)


def check_completed(client: Any, tool: str, expected: int) -> None:
    """Raise unless exactly ``expected`` trials are COMPLETED."""
    done = completed_count(client)
    if done != expected:
        raise RuntimeError(f"{tool}: {done} trials COMPLETED in Ax, expected {expected}")


@contextmanager
def warm_pool(slots: int) -> Iterator[ProcessPoolExecutor]:
    """A fork pool of ``slots`` workers, all started before it is yielded.

    Started up front so that no tool's timing pays for forking its workers.
    """
    pool = ProcessPoolExecutor(slots, mp_context=multiprocessing.get_context("fork"))
    try:
        # Under fork the first submit starts every worker; waiting on one no-op per
        # slot makes sure they are up. os.getpid unpickles without importing anything.
        for future in [pool.submit(os.getpid) for _ in range(slots)]:
            future.result()
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
