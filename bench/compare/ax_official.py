"""Ax's own parallel loops: ``Client.run_trials`` (Ax 1.x) and the legacy Orchestrator, tuned.

Both hand each trial to a pool of forked worker processes through a runner, poll
the pool's futures for completion and fetch the result through a metric, as Ax's
closed-loop (``IRunner``/``IMetric``) tutorial does with an external job queue.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

from ax.api.client import Client
from ax.api.protocols.metric import IMetric
from ax.api.protocols.runner import IRunner
from ax.core.base_trial import BaseTrial
from ax.core.data import Data, DataRow
from ax.core.experiment import Experiment
from ax.core.metric import Metric, MetricFetchResult
from ax.core.runner import Runner
from ax.core.trial_status import TrialStatus
from ax.orchestration.orchestrator import Orchestrator
from ax.orchestration.orchestrator_options import OrchestratorOptions
from ax.utils.common.result import Ok

from .common import (
    Params,
    Run,
    Workload,
    ax_completed,
    ax_recorded,
    make_ax_client,
    make_modern_client,
    silence_ax,
    timed,
    warm_pool,
)
from .objective import METRIC

# The smallest value `Client.run_trials` accepts (an int; negative would reach
# time.sleep and raise): 0 means no sleep between polls, so the backoff factor
# (1.5) multiplies 0. What remains is OrchestratorOptions.min_seconds_before_poll
# (1.0 s), which run_trials does not expose: before each poll and each trial
# generation, Ax rounds the time since its last trial launch to whole seconds
# and, if that is 0 (under 0.5 s), sleeps a full second: ~1 s per trial launched.
CLIENT_POLL_SECONDS = 0
CLIENT_NOTE = (
    f"run_trials(initial_seconds_between_polls={CLIENT_POLL_SECONDS}); "
    "OrchestratorOptions' min_seconds_before_poll=1.0 is not reachable from run_trials"
)
ORCHESTRATOR_NOTE = (
    "OrchestratorOptions(init_seconds_between_polls=0, min_seconds_before_poll=0, "
    "seconds_between_polls_backoff_factor=1): polls without sleeping"
)


class Jobs:
    """The trials running in the pool, by trial index.

    Shared by the runner (which submits and polls) and the metric (which reads
    results): Ax requires run metadata to be JSON, so futures cannot travel on
    the trial itself. Runners and metrics keep it as ``self.jobs``, their
    constructor argument's name, because Ax clones them from those arguments.
    """

    def __init__(
        self, pool: ProcessPoolExecutor, objective: Callable[[Params], dict[str, float]]
    ) -> None:
        self.pool = pool
        self.objective = objective
        self.futures: dict[int, Future[dict[str, float]]] = {}

    def submit(self, index: int, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """Start trial ``index``; returns its (JSON) run metadata."""
        self.futures[index] = self.pool.submit(self.objective, dict(parameters))
        return {"job": index}

    def status(self, index: int) -> TrialStatus:
        future = self.futures[index]
        if not future.done():
            return TrialStatus.RUNNING
        return TrialStatus.FAILED if future.exception() is not None else TrialStatus.COMPLETED

    def value(self, index: int) -> float:
        """The objective of a finished trial (re-raises the trial's exception)."""
        return float(self.futures[index].result()[METRIC])

    def cancel(self, index: int) -> dict[str, Any]:
        self.futures[index].cancel()
        return {}


# ---------------------------------------------------------------- Ax 1.x Client


class PoolRunner(IRunner):
    """``IRunner`` that runs each trial in the pool."""

    def __init__(self, jobs: Jobs) -> None:
        self.jobs = jobs

    def run_trial(self, trial_index: int, parameterization: Mapping[str, Any]) -> dict[str, Any]:
        return self.jobs.submit(trial_index, parameterization)

    def poll_trial(self, trial_index: int, trial_metadata: Mapping[str, Any]) -> TrialStatus:
        return self.jobs.status(trial_index)

    def stop_trial(self, trial_index: int, trial_metadata: Mapping[str, Any]) -> dict[str, Any]:
        return self.jobs.cancel(trial_index)


class PoolMetric(IMetric):
    """``IMetric`` that reads a finished trial's objective from its future."""

    def __init__(self, name: str, jobs: Jobs) -> None:
        super().__init__(name=name)
        self.jobs = jobs

    def fetch(
        self, trial_index: int, trial_metadata: Mapping[str, Any]
    ) -> tuple[int, float | tuple[float, float]]:
        # Progression 0: a single final reading, no learning curve.
        return 0, self.jobs.value(trial_index)


def make_client(workload: Workload, jobs: Jobs) -> Client:
    """The Rosenbrock experiment on Ax 1.x's ``Client``, automated through ``jobs``."""
    client = make_modern_client(workload)
    client.configure_runner(runner=PoolRunner(jobs))
    client.configure_metrics(metrics=[PoolMetric(METRIC, jobs)])
    silence_ax()  # the Client's loggers are created as it is configured
    return client


@contextmanager
def ax_info_disabled() -> Iterator[None]:
    """No INFO records while inside, whatever levels Ax sets.

    ``run_trials`` builds its Orchestrator with the default ``logging_level=INFO``,
    which resets every Ax logger to INFO; run_trials has no option for it, and
    the Orchestrator logs on every poll.
    """
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
        silence_ax()  # undo the Orchestrator's INFO levels for whatever runs next


def run_client_run_trials(workload: Workload, log_path: str) -> Run:
    """Ax 1.x's official path: ``Client.run_trials`` with an ``IRunner`` and ``IMetric``."""
    silence_ax()
    with warm_pool(workload.slots) as pool:
        client = make_client(workload, Jobs(pool, workload.objective(log_path)))
        with ax_info_disabled():
            wall, cpu = timed(
                lambda: client.run_trials(
                    max_trials=workload.n_trials,
                    parallelism=workload.slots,
                    initial_seconds_between_polls=CLIENT_POLL_SECONDS,
                )
            )
    # The Client exposes no public Experiment; read it only to collect the results.
    return finish("Ax Client.run_trials", workload, client._experiment, wall, cpu, CLIENT_NOTE)


# ------------------------------------------------------- legacy Orchestrator


class LegacyPoolRunner(Runner):
    """``ax.core.runner.Runner`` that runs each trial in the pool."""

    def __init__(self, jobs: Jobs) -> None:
        super().__init__()
        self.jobs = jobs

    def run(self, trial: BaseTrial) -> dict[str, Any]:
        return self.jobs.submit(trial.index, trial.arms[0].parameters)

    def poll_trial_status(self, trials: Iterable[BaseTrial]) -> dict[TrialStatus, set[int]]:
        statuses: dict[TrialStatus, set[int]] = {}
        for trial in trials:
            statuses.setdefault(self.jobs.status(trial.index), set()).add(trial.index)
        return statuses

    def stop(self, trial: BaseTrial, reason: str | None = None) -> dict[str, Any]:
        return self.jobs.cancel(trial.index)


class LegacyPoolMetric(Metric):
    """``ax.core.metric.Metric`` that reads a finished trial's objective from its future."""

    def __init__(self, name: str, jobs: Jobs, lower_is_better: bool | None = None) -> None:
        super().__init__(name=name, lower_is_better=lower_is_better)
        self.jobs = jobs

    def fetch_trial_data(self, trial: BaseTrial, **kwargs: Any) -> MetricFetchResult:
        # Ax fetches only trials polled COMPLETED, whose futures hold a value.
        row = DataRow(
            trial_index=trial.index,
            arm_name=trial.arms[0].name,
            metric_name=self.name,
            metric_signature=self.signature,
            mean=self.jobs.value(trial.index),
            se=math.nan,  # unknown noise, as AxClient records a bare float
        )
        return Ok(Data(data_rows=[row]))


def make_orchestrator(workload: Workload, jobs: Jobs) -> Orchestrator:
    """The legacy AxClient's experiment and strategy, under an Orchestrator tuned for speed."""
    client = make_ax_client(workload)  # so "default" is the strategy AxClient picks
    experiment = client.experiment
    experiment.update_metric(LegacyPoolMetric(METRIC, jobs, lower_is_better=True))
    experiment.runner = LegacyPoolRunner(jobs)
    options = OrchestratorOptions(
        max_pending_trials=workload.slots,
        init_seconds_between_polls=0,
        min_seconds_before_poll=0,
        seconds_between_polls_backoff_factor=1,
        logging_level=logging.WARNING,
    )
    return Orchestrator(
        experiment=experiment, generation_strategy=client.generation_strategy, options=options
    )


def run_orchestrator(workload: Workload, log_path: str) -> Run:
    """Ax's legacy ``Orchestrator.run_n_trials``, with every poll sleep set to 0."""
    silence_ax()
    with warm_pool(workload.slots) as pool:
        orchestrator = make_orchestrator(workload, Jobs(pool, workload.objective(log_path)))
        wall, cpu = timed(lambda: orchestrator.run_n_trials(max_trials=workload.n_trials))
    silence_ax()
    return finish(
        "Ax Orchestrator", workload, orchestrator.experiment, wall, cpu, ORCHESTRATOR_NOTE
    )


# ------------------------------------------------------------------ shared


def finish(
    tool: str, workload: Workload, experiment: Experiment, wall: float, cpu: float, note: str
) -> Run:
    """The run's record, once all ``workload.n_trials`` trials are known COMPLETED."""
    completed = ax_completed(experiment)
    if completed != workload.n_trials:
        raise RuntimeError(f"{tool}: {completed} trials COMPLETED, expected {workload.n_trials}")
    return Run(
        wall=wall,
        cpu=cpu,
        recorded=ax_recorded(experiment),
        completed=completed,
        notes=[note],
    )
