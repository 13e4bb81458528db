"""Ax's own automation, Client.run_trials with an IRunner and an IMetric, and the same
experiment under AxScheduler.

docs/coming-from-ax.md shows the two side by side. Running this file runs each on an
experiment of its own and prints what it found.
"""

import time
from concurrent.futures import ProcessPoolExecutor

from ax.api.client import Client
from ax.api.configs import RangeParameterConfig
from ax.api.protocols.metric import IMetric
from ax.api.protocols.runner import IRunner
from ax.core.trial_status import TrialStatus

from ax_scheduler import AxScheduler, JobLibRunner


def simulate(parameters):
    time.sleep(0.2)  # stands in for the real work
    x, y = parameters["x"], parameters["y"]
    return {"objective": (1 - x) ** 2 + 100 * (y - x**2) ** 2}


def make_client():
    client = Client()
    client.configure_experiment(
        name="coming_from_run_trials",
        parameters=[
            RangeParameterConfig(name=name, parameter_type="float", bounds=(-2.0, 2.0))
            for name in ("x", "y")
        ],
    )
    client.configure_optimization(objective="-objective")  # minimize "objective"
    return client


class PoolJobs:
    """The trials running in a process pool, shared by the runner and the metric."""

    def __init__(self, pool):
        self.pool = pool
        self.futures = {}  # trial index -> future


class PoolRunner(IRunner):
    def __init__(self, jobs):
        self.jobs = jobs

    def run_trial(self, trial_index, parameterization):
        self.jobs.futures[trial_index] = self.jobs.pool.submit(simulate, dict(parameterization))
        return {}  # run metadata must be JSON: the future stays in self.jobs

    def poll_trial(self, trial_index, trial_metadata):
        future = self.jobs.futures[trial_index]
        if not future.done():
            return TrialStatus.RUNNING
        return TrialStatus.FAILED if future.exception() else TrialStatus.COMPLETED

    def stop_trial(self, trial_index, trial_metadata):
        self.jobs.futures[trial_index].cancel()
        return {}


class PoolMetric(IMetric):
    def __init__(self, name, jobs):
        super().__init__(name=name)
        self.jobs = jobs

    def fetch(self, trial_index, trial_metadata):
        return 0, self.jobs.futures[trial_index].result()[self.name]


def with_ax_run_trials(client, max_trials, slots=4):
    with ProcessPoolExecutor(slots) as pool:
        jobs = PoolJobs(pool)
        client.configure_runner(runner=PoolRunner(jobs))
        client.configure_metrics(metrics=[PoolMetric("objective", jobs)])
        client.run_trials(max_trials=max_trials, parallelism=slots)
    best, *_ = client.get_best_parameterization()
    return best


def with_ax_scheduler(client, max_trials, slots=4):
    with AxScheduler(client, JobLibRunner(n_jobs=slots)) as scheduler:
        scheduler.set_objective_function(simulate)
        return scheduler.run_optimization(max_trials=max_trials)


def main():
    for run in (with_ax_run_trials, with_ax_scheduler):
        client = make_client()
        best = run(client, max_trials=8)
        trials = client.summarize()
        completed = int((trials["trial_status"] == "COMPLETED").sum())
        print(f"{run.__name__}: {completed} of {len(trials)} trials completed")
        print(f"{run.__name__}: best parameters: {best}")


if __name__ == "__main__":
    main()
