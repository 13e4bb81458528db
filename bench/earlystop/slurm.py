"""Ours with early stopping on the local Slurm cluster, and its stop latency in ticks.

The cluster (``bash ci/start-slurm.sh``) is reached over SSH as tests/cluster.py
reaches it. Its jobs run on this machine, so they append to the same trial log
as local trials, and their times compare with the driver's.

A Slurm trial's reports reach the scheduler on the runner's status ticks. The
latency that counts is from the moment the trial wrote the report the decision
was made on to the stop request: in seconds, and in ticks (wake-ups of the
runner's status watcher in between; target: at most one).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ax_scheduler._clock import Clock

from .curves import Params, Workload, ours_objective, point_key

ROOT = Path(__file__).parents[2]
#: Seconds apart that two reports of one trial may reach the scheduler and still be
#: one delivery (one status tick's lines are delivered one after another).
SAME_DELIVERY = 0.05
WATCHER_TASK = "ax-scheduler-sacct"


class TickClock(Clock):
    """The real clock, noting when the Slurm status watcher wakes for a tick (epoch)."""

    def __init__(self) -> None:
        self.ticks: list[float] = []

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds)
        task = asyncio.current_task()
        if task is not None and task.get_name() == WATCHER_TASK:
            self.ticks.append(time.time())


def slurm_runner(workload: Workload, job_dir: str, clock: Clock) -> Any:
    """A SlurmRunner over SSH to the cluster's login node, its jobs importing bench/."""
    sys.path.insert(0, str(ROOT / "tests"))
    from ax_scheduler import SlurmRunner
    from cluster import cluster_env, ssh_options

    return SlurmRunner(
        partition=cluster_env()["LOCALSLURM_PARTITION"],
        time_limit="00:10:00",
        memory="300M",
        cpus_per_task=1,
        config={
            "python": sys.executable,
            "job_dir": job_dir,
            "setup": [f"export PYTHONPATH={ROOT / 'bench'}"],  # for earlystop.curves
            "max_parallel": workload.slots,
            "min_poll_interval": 0.5,
            "monitoring_interval": 2,
        },
        ssh=ssh_options(),
        clock=clock,
    )


def note_arrivals(progressions: Any, arrivals: list[tuple[int, float, float]]) -> None:
    """Note when each report reaches the scheduler: ``(trial, step, epoch)``.

    Wraps the ``_report`` of this scheduler's ``Progressions`` instance, which every
    job's channel looks up at each report: nothing in the library changes.
    """
    original = progressions._report

    def noted(index: int, step: float, metrics: dict[str, Any]) -> None:
        arrivals.append((index, float(step), time.time()))
        original(index, step, metrics)

    progressions._report = noted


async def run_async(workload: Workload, log_path: str) -> dict[str, Any]:
    from ax_scheduler import AxScheduler

    from .tools import make_client, points_of, stop_times

    client = make_client(workload)
    clock = TickClock()
    arrivals: list[tuple[int, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="axs-es-slurm-") as scratch:
        runner = slurm_runner(workload, str(Path(scratch) / "jobs"), clock)
        config = {"progress": False, "early_stopping": workload.early_stopping()}
        async with AxScheduler(client, runner, config, clock=clock) as scheduler:
            scheduler.set_objective_function(
                functools.partial(ours_objective, log_path, workload.steps, workload.step_seconds)
            )
            note_arrivals(scheduler._core._progressions, arrivals)
            await runner.start()  # connecting and checking the cluster is not the run's cost
            wall = time.perf_counter()
            await scheduler.run_optimization_async(max_trials=workload.trials)
            wall = time.perf_counter() - wall
        latencies = dict(scheduler._core._progressions.latencies)
    keys = {i: point_key(t.arms[0].parameters) for i, t in client.experiment.trials.items()}
    return {
        "wall": wall,
        "cpu": float("nan"),
        "latencies": list(latencies.values()),
        "stops": stop_times(client.experiment),
        "points": points_of(client.experiment),
        "latency_by_key": {keys[index]: seconds for index, seconds in latencies.items()},
        "arrivals": [[keys[index], step, when] for index, step, when in arrivals],
        "ticks": clock.ticks,
    }


def run_ours_slurm(
    workload: Workload, log_path: str, points: list[Params] | None
) -> dict[str, Any]:
    return asyncio.run(run_async(workload, log_path))


# -- the parent's side: what the record says ----------------------------------------------------
def stop_latencies(
    record: dict[str, Any], written: dict[str, dict[int, float]]
) -> list[tuple[float, int]]:
    """For each stopped trial: seconds and status ticks from the write of the report
    the decision was made on to the stop request.

    That report is the newest the scheduler had when the round that decided began:
    the round began with the delivery of the trial's oldest report not yet in Ax
    (``Progressions.latencies`` says how long before the stop); the reports that
    came in the same delivery were in it too.

    Args:
        record: The run's record.
        written: Point -> step -> when the trial wrote that step (its log).
    """
    found = []
    for key, asked in record["stops"].items():
        began = asked - record["latency_by_key"].get(key, 0.0)
        had = [s for k, s, at in record["arrivals"] if k == key and at <= began + SAME_DELIVERY]
        if not had or key not in written:
            continue
        wrote = written[key][int(max(had))]
        ticks = sum(wrote < tick <= asked for tick in record["ticks"])
        found.append((asked - wrote, ticks))
    return found


def describe_ticks(ticks: list[float]) -> str:
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    spacing = f", median {statistics.median(gaps):.2f} s apart" if gaps else ""
    return f"{len(ticks)} status ticks{spacing}"
