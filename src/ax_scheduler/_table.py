"""The results table: one row per trial, from the Ax experiment alone.

Everything a row shows is in the experiment (parameters, data, status) or in the
run metadata the scheduler records with each trial (runner, job id, host, times,
trial directory, failure reason), so the same table comes from a live scheduler,
a saved ``run.json`` or a checkpoint.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ._runmetadata import RUN_METADATA_KEY

#: Where each runner keeps the id a user would look the job up by.
JOB_ID_KEYS = ("slurm_job_id", "container", "pid")

#: The columns every table has, in order; parameters and metrics go in between.
LEADING = ("trial_index", "status")
TRAILING = (
    "failure_reason",
    "runner",
    "job_id",
    "host",
    "queued_at",
    "started_at",
    "finished_at",
    "duration_s",
    "workdir",
    "stdout",
    "stderr",
)


def results_frame(experiment: Any, live: Mapping[int, Mapping[str, Any]] | None = None) -> Any:
    """One row per trial of ``experiment``, sorted by trial index.

    Columns: ``trial_index``, ``status`` (Ax's, e.g. ``COMPLETED``), one column per
    parameter, ``<metric>`` (mean) and ``<metric>_sem`` per metric, then
    ``failure_reason``, ``runner``, ``job_id`` (Slurm job id, container name or
    pid), ``host``, ``queued_at``/``started_at``/``finished_at`` (UTC timestamps),
    ``duration_s`` (started to finished), ``workdir`` (the trial directory, on
    ``host`` for remote runners; empty once ``cleanup_after_completion`` removed
    it) and the ``stdout``/``stderr`` log paths in it.

    ``df.attrs`` names the ``parameters``, ``metrics`` and ``objectives``
    (name -> ``"minimize"``/``"maximize"``) so code can tell the columns apart.

    Args:
        experiment: An Ax ``Experiment``.
        live: Facts about running trials not yet in the run metadata (trial
            index -> the job's info), merged over it.

    Returns:
        A ``pandas.DataFrame``.
    """
    parameters = list(experiment.search_space.parameters)
    metrics = sorted(experiment.metrics)
    data = _data_by_trial(experiment)
    rows = [
        _row(trial, parameters, metrics, data.get(int(index), {}), (live or {}).get(int(index)))
        for index, trial in sorted(experiment.trials.items())
    ]
    metric_columns = [column for name in metrics for column in (name, f"{name}_sem")]
    columns = [*LEADING, *parameters, *metric_columns, *TRAILING]
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("queued_at", "started_at", "finished_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["duration_s"] = frame["duration_s"].astype("float64")
    for column in metric_columns:
        frame[column] = frame[column].astype("float64")
    frame.attrs.update(
        parameters=parameters, metrics=metrics, objectives=objective_directions(experiment)
    )
    return frame


def objective_directions(experiment: Any) -> dict[str, str]:
    """Objective metric name -> ``"minimize"`` or ``"maximize"`` (a scalarized objective's parts too)."""
    config = experiment.optimization_config
    if config is None:
        return {}
    return {
        str(name): "minimize" if weight < 0 else "maximize"
        for name, weight in config.objective.metric_weights
    }


def _data_by_trial(experiment: Any) -> dict[int, dict[str, tuple[float, float]]]:
    frame = experiment.lookup_data().df
    found: dict[int, dict[str, tuple[float, float]]] = {}
    for trial_index, metric, mean, sem in zip(
        frame.get("trial_index", []),
        frame.get("metric_name", []),
        frame.get("mean", []),
        frame.get("sem", []),
        strict=True,
    ):
        found.setdefault(int(trial_index), {})[str(metric)] = (float(mean), float(sem))
    return found


def _row(
    trial: Any,
    parameters: list[str],
    metrics: list[str],
    data: Mapping[str, tuple[float, float]],
    live: Mapping[str, Any] | None,
) -> list[Any]:
    info = {**trial.run_metadata.get(RUN_METADATA_KEY, {}), **(live or {})}
    arm = trial.arms[0] if trial.arms else None
    values = arm.parameters if arm is not None else {}
    measured = [value for name in metrics for value in data.get(name, (math.nan, math.nan))]
    queued = info.get("dispatched_at", _epoch(trial.time_run_started or trial.time_created))
    started = info.get("started_at", _epoch(trial.time_run_started))
    finished = info.get("finished_at", _epoch(trial.time_completed))
    if finished is None and trial.status.is_terminal:
        finished = _epoch(getattr(trial, "time_staged", None))
    duration = finished - started if started is not None and finished is not None else math.nan
    workdir = None if info.get("files_removed") else info.get("job_dir")
    reason = info.get("failure_reason") or getattr(trial, "failed_reason", None)
    if trial.status.name == "ABANDONED":
        reason = reason or getattr(trial, "abandoned_reason", None)
    return [
        int(trial.index),
        trial.status.name,
        *(values.get(name) for name in parameters),
        *measured,
        reason if not trial.status.is_completed else None,
        info.get("runner"),
        _job_id(info),
        info.get("host"),
        _timestamp(queued),
        _timestamp(started),
        _timestamp(finished),
        duration,
        workdir,
        f"{workdir}/stdout.log" if workdir else None,
        f"{workdir}/stderr.log" if workdir else None,
    ]


def _job_id(info: Mapping[str, Any]) -> str | None:
    for key in JOB_ID_KEYS:
        if info.get(key) is not None:
            return str(info[key])
    return None


def _epoch(moment: dt.datetime | None) -> float | None:
    """Seconds since the epoch; Ax's naive datetimes are local time."""
    return None if moment is None else moment.astimezone(dt.UTC).timestamp()


def _timestamp(seconds: float | None) -> Any:
    return None if seconds is None else pd.Timestamp(seconds, unit="s", tz="UTC")
