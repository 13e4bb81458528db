"""Ax's Orchestrator with the same early-stopping strategy, as Ax's tutorial runs one.

A ``Runner`` starts each trial in a thread pool; a ``MapMetric`` that is available
while trials run fetches every step reported so far; the Orchestrator polls, fetches,
asks the strategy (``OrchestratorOptions.early_stopping_strategy``) and calls the
runner's ``stop`` for the trials it stops, whose next report then raises.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ax.core.base_trial import BaseTrial
from ax.core.data import Data, DataRow
from ax.core.map_metric import MapMetric
from ax.core.metric import MetricFetchE, MetricFetchResult
from ax.core.runner import Runner
from ax.core.trial_status import TrialStatus
from ax.orchestration.orchestrator import Orchestrator
from ax.orchestration.orchestrator_options import OrchestratorOptions
from ax.utils.common.result import Err, Ok

from .curves import METRIC, Params, Workload, point_key, run_curve
from .tools import make_client, points_of


class StopRequested(Exception):
    """The runner stopped this trial (raised by its next report)."""


class Curves:
    """The trials in the thread pool: their reported steps and their stop flags.

    Shared by the runner (submit, poll, stop) and the metric (fetch). Both keep it
    as ``self.curves``, their constructor argument's name, because Ax clones them
    from those arguments.
    """

    def __init__(self, workload: Workload, log_path: str) -> None:
        self.workload = workload
        self.log_path = log_path
        self.pool = ThreadPoolExecutor(workload.slots, thread_name_prefix="trial")
        self.futures: dict[int, Future[float]] = {}
        self.keys: dict[int, str] = {}
        self.lock = threading.Lock()
        self.points: dict[int, list[tuple[int, float, float]]] = {}  # (step, value, arrived)
        self.fetched: dict[int, int] = {}  # how many of them Ax has seen
        self.fetched_from: dict[int, float] = {}  # arrival of the oldest new one at the last fetch
        self.stop_flags: dict[int, threading.Event] = {}
        self.latencies: list[float] = []
        self.stops: dict[str, float] = {}

    def submit(self, index: int, parameters: Params) -> dict[str, Any]:
        self.keys[index] = point_key(parameters)
        self.points[index] = []
        self.stop_flags[index] = threading.Event()
        w = self.workload
        report = functools.partial(self._report, index)
        self.futures[index] = self.pool.submit(
            run_curve, dict(parameters), report, self.log_path, w.steps, w.step_seconds
        )
        return {"job": index}

    def _report(self, index: int, step: int, value: float) -> None:
        if self.stop_flags[index].is_set():
            raise StopRequested
        with self.lock:
            self.points[index].append((step, value, time.monotonic()))

    def status(self, index: int) -> TrialStatus:
        future = self.futures[index]
        if not future.done():
            return TrialStatus.RUNNING
        return TrialStatus.FAILED if future.exception() is not None else TrialStatus.COMPLETED

    def fetch(self, index: int) -> list[tuple[int, float]]:
        """Every step reported so far: a real metric reads the whole curve each time."""
        with self.lock:
            points = list(self.points[index])
            seen = self.fetched.get(index, 0)
            if len(points) > seen:
                self.fetched_from[index] = points[seen][2]
                self.fetched[index] = len(points)
        return [(step, value) for step, value, _ in points]

    def stop(self, index: int) -> dict[str, Any]:
        with self.lock:
            if index in self.fetched_from:
                self.latencies.append(time.monotonic() - self.fetched_from[index])
            self.stops[self.keys[index]] = time.time()
        self.stop_flags[index].set()
        return {}


class ThreadPoolRunner(Runner):  # type: ignore[misc]
    """Runs each trial in the thread pool; stopping one sets its flag."""

    def __init__(self, curves: Curves) -> None:
        super().__init__()
        self.curves = curves

    def run(self, trial: BaseTrial) -> dict[str, Any]:
        return self.curves.submit(trial.index, trial.arms[0].parameters)

    def poll_trial_status(self, trials: Iterable[BaseTrial]) -> dict[TrialStatus, set[int]]:
        statuses: dict[TrialStatus, set[int]] = {}
        for trial in trials:
            statuses.setdefault(self.curves.status(trial.index), set()).add(trial.index)
        return statuses

    def stop(self, trial: BaseTrial, reason: str | None = None) -> dict[str, Any]:
        return self.curves.stop(trial.index)


class CurveMetric(MapMetric):  # type: ignore[misc]
    """The steps a trial reported so far, fetched while it runs."""

    def __init__(self, name: str, curves: Curves, lower_is_better: bool | None = None) -> None:
        super().__init__(name=name, lower_is_better=lower_is_better)
        self.curves = curves

    @classmethod
    def is_available_while_running(cls) -> bool:
        return True

    def fetch_trial_data(self, trial: BaseTrial, **kwargs: Any) -> MetricFetchResult:
        rows = [
            DataRow(
                trial_index=trial.index,
                arm_name=trial.arms[0].name,
                metric_name=self.name,
                metric_signature=self.signature,
                mean=value,
                se=math.nan,
                step=step,
            )
            for step, value in self.curves.fetch(trial.index)
        ]
        if not rows:  # Ax refuses empty data; an error for a running trial is retried
            return Err(MetricFetchE(message="no step reported yet", exception=None))
        return Ok(Data(data_rows=rows))


def make_orchestrator(workload: Workload, curves: Curves, poll_seconds: float | None) -> Any:
    """Our experiment and Sobol points under an Orchestrator with the same strategy.

    Args:
        poll_seconds: Seconds between polls, with no wait after a trial launch
            (``init_seconds_between_polls`` is typed int; Ax sleeps a float as
            well). None keeps Ax's defaults: 1 s polls, 1 s after a launch.
    """
    client = make_client(workload)
    experiment = client.experiment
    experiment.update_metric(CurveMetric(METRIC, curves, lower_is_better=True))
    experiment.runner = ThreadPoolRunner(curves)
    polls = {}
    if poll_seconds is not None:
        polls = {"init_seconds_between_polls": poll_seconds, "min_seconds_before_poll": 0.0}
    options = OrchestratorOptions(
        max_pending_trials=workload.slots,
        early_stopping_strategy=workload.strategy(),
        logging_level=logging.WARNING,
        **polls,
    )
    return Orchestrator(
        experiment=experiment, generation_strategy=client.generation_strategy, options=options
    )


def orchestrate(workload: Workload, log_path: str, poll_seconds: float | None) -> dict[str, Any]:
    from compare.common import silence_ax

    curves = Curves(workload, log_path)
    orchestrator = make_orchestrator(workload, curves, poll_seconds)
    silence_ax()  # the Orchestrator sets its loggers' levels as it starts
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        orchestrator.run_n_trials(max_trials=workload.trials)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        curves.pool.shutdown(wait=True)
    return {
        "wall": wall,
        "cpu": cpu,
        "latencies": curves.latencies,
        "stops": curves.stops,
        "points": points_of(orchestrator.experiment),
    }


def run_every_step(
    workload: Workload, log_path: str, points: list[Params] | None
) -> dict[str, Any]:
    """Polling every step: the stop can follow the report that decides it within a step."""
    return orchestrate(workload, log_path, poll_seconds=workload.step_seconds)


def run_defaults(workload: Workload, log_path: str, points: list[Params] | None) -> dict[str, Any]:
    """Ax's default polls."""
    return orchestrate(workload, log_path, poll_seconds=None)
