"""The results table: one row per trial, from the Ax experiment alone.

Everything a row shows is in the experiment (parameters, data and the curves a
trial reported, status) or in the run metadata the scheduler records with each
trial (runner, job id, host, times, trial directory, failure and early-stop
reasons), so the same table comes from a live scheduler, a saved ``run.json`` or
a checkpoint.

It has two forms. :class:`TrialTable` holds plain JSON values: each checkpoint
stores one beside Ax's snapshot, so ``ax-scheduler status`` can print a run
without importing Ax or pandas (seconds of start-up). :func:`results_frame` is
the same rows as a ``pandas.DataFrame``, for ``results()`` and the report; pandas
is imported only there.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._runmetadata import RUN_METADATA_KEY

#: Where each runner keeps the id a user would look the job up by.
JOB_ID_KEYS = ("slurm_job_id", "container", "pid")

#: The columns every table has, in order; parameters and metrics go in between.
LEADING = ("trial_index", "status")
TRAILING = (
    "last_step",
    "failure_reason",
    "early_stop_reason",
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
    "curve",  # last: the one cell that may be long
)
#: What ``df.attrs["curve"]`` says of the ``curve`` column.
CURVE_ATTR = "objective metric -> [[step, value], ...] in order of step; None: no reports"
#: The columns that hold times: seconds since the epoch in a TrialTable, UTC
#: timestamps in the frame.
TIME_COLUMNS = ("queued_at", "started_at", "finished_at")

#: The layout of :meth:`TrialTable.to_json`; a reader given another falls back to Ax.
#: 2: ``last_step``, ``early_stop_reason`` and ``curve`` (version 1 had none of them).
TABLE_VERSION = 2

#: A trial's curve: objective metric -> its reports as ``[step, value]`` pairs, by step.
#: Lists, not tuples, and a dict keyed by name: what JSON gives back, so a table read
#: from a checkpoint equals the live one.
Curve = dict[str, list[list[float]]]


@dataclass
class _Measured:
    """What a trial's data says: its latest values, last step and curve."""

    latest: dict[str, tuple[float, float]] = field(default_factory=dict)  # metric -> mean, SEM
    last_step: float | None = None
    curve: Curve = field(default_factory=dict)


@dataclass(frozen=True)
class TrialTable:
    """The results table as plain values: one list per trial, in :attr:`columns` order.

    Missing values are None and times are seconds since the epoch, so the table
    goes through ``json`` and back unchanged.

    Attributes:
        name: The experiment's name.
        parameters: The parameter names, in the search space's order.
        metrics: The metric names, sorted.
        objectives: Objective metric name -> ``"minimize"`` or ``"maximize"``.
        rows: One list of cells per trial, sorted by trial index.
    """

    name: str
    parameters: list[str]
    metrics: list[str]
    objectives: dict[str, str]
    rows: list[list[Any]]

    @property
    def columns(self) -> list[str]:
        """The column names (see :func:`results_frame`)."""
        return columns_of(self.parameters, self.metrics)

    def records(self) -> list[dict[str, Any]]:
        """One dict per trial: column name -> value."""
        columns = self.columns
        return [dict(zip(columns, row, strict=True)) for row in self.rows]

    def to_json(self) -> dict[str, Any]:
        """The table as a JSON object, as a checkpoint stores it."""
        return {
            "version": TABLE_VERSION,
            "name": self.name,
            "parameters": self.parameters,
            "metrics": self.metrics,
            "objectives": self.objectives,
            "columns": self.columns,
            "rows": self.rows,
        }

    @classmethod
    def from_json(cls, data: Any) -> TrialTable | None:
        """The table :meth:`to_json` wrote, or None for anything else.

        None for a missing table, another version or a table whose parts do not
        fit together: the caller then reads the trials from Ax's snapshot instead.
        """
        if not isinstance(data, dict) or data.get("version") != TABLE_VERSION:
            return None
        try:
            table = cls(
                str(data["name"]),
                list(data["parameters"]),
                list(data["metrics"]),
                dict(data["objectives"]),
                [list(row) for row in data["rows"]],
            )
        except (KeyError, TypeError, ValueError):
            return None
        width = len(table.columns)
        if data.get("columns") != table.columns or any(len(row) != width for row in table.rows):
            return None
        return table


def columns_of(parameters: list[str], metrics: list[str]) -> list[str]:
    """The table's columns for these parameters and metrics."""
    metric_columns = [column for name in metrics for column in (name, f"{name}_sem")]
    return [*LEADING, *parameters, *metric_columns, *TRAILING]


def trial_table(experiment: Any, live: Mapping[int, Mapping[str, Any]] | None = None) -> TrialTable:
    """One row per trial of ``experiment``, as plain values (see :func:`results_frame`).

    Args:
        experiment: An Ax ``Experiment``.
        live: Facts about running trials not yet in the run metadata (trial
            index -> the job's info), merged over it.

    Returns:
        The table.
    """
    parameters = list(experiment.search_space.parameters)
    metrics = sorted(experiment.metrics)
    objectives = objective_directions(experiment)
    data = _measured_by_trial(experiment, list(objectives))
    rows = [
        _row(
            trial,
            parameters,
            metrics,
            data.get(int(index), _Measured()),
            (live or {}).get(int(index)),
        )
        for index, trial in sorted(experiment.trials.items())
    ]
    return TrialTable(str(experiment.name), parameters, metrics, objectives, rows)


def results_frame(experiment: Any, live: Mapping[int, Mapping[str, Any]] | None = None) -> Any:
    """One row per trial of ``experiment``, sorted by trial index.

    Columns: ``trial_index``, ``status`` (Ax's: ``COMPLETED``, ``EARLY_STOPPED``,
    ``FAILED`` ...), one column per parameter, ``<metric>`` (mean) and
    ``<metric>_sem`` per metric (a trial that has not completed: its latest
    report), then ``last_step`` (the last step the trial reported with
    ``ax_scheduler.report``, NaN if it reported none), ``failure_reason``,
    ``early_stop_reason`` (why the early-stopping strategy stopped it),
    ``runner``, ``job_id`` (Slurm job id, container name or pid), ``host``,
    ``queued_at``/``started_at``/``finished_at`` (UTC timestamps), ``duration_s``
    (started to finished), ``workdir`` (the trial directory, on ``host`` for
    remote runners; empty once ``cleanup_after_completion`` removed it), the
    ``stdout``/``stderr`` log paths in it, and ``curve``.

    ``curve`` holds a trial's reports of the objectives: a dict of objective
    metric name -> a list of ``[step, value]`` pairs in order of step (its
    completed result is the last one, at its last step), or None if it reported
    none. Plain lists and dicts: a checkpoint stores them as they are, and
    ``ax-scheduler status --format json`` (CSV: as JSON text) prints them.

    ``df.attrs`` names the ``parameters``, ``metrics`` and ``objectives``
    (name -> ``"minimize"``/``"maximize"``) so code can tell the columns apart,
    and says what ``curve`` holds (``attrs["curve"]``).

    Args:
        experiment: An Ax ``Experiment``.
        live: Facts about running trials not yet in the run metadata (trial
            index -> the job's info), merged over it.

    Returns:
        A ``pandas.DataFrame``.
    """
    return table_frame(trial_table(experiment, live))


def table_frame(table: TrialTable) -> Any:
    """A :class:`TrialTable` as the ``pandas.DataFrame`` :func:`results_frame` returns."""
    import pandas as pd  # here: a checkpoint's table is read and printed without pandas

    columns = table.columns
    frame = pd.DataFrame(table.rows, columns=columns)
    for column in TIME_COLUMNS:
        at = columns.index(column)
        stamps = [_timestamp(row[at]) for row in table.rows]
        frame[column] = pd.to_datetime(pd.Series(stamps, dtype=object), utc=True)
    frame["duration_s"] = frame["duration_s"].astype("float64")
    frame["last_step"] = frame["last_step"].astype("float64")
    for name in table.metrics:
        frame[name] = frame[name].astype("float64")
        frame[f"{name}_sem"] = frame[f"{name}_sem"].astype("float64")
    frame.attrs.update(
        parameters=list(table.parameters),
        metrics=list(table.metrics),
        objectives=dict(table.objectives),
        curve=CURVE_ATTR,
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


def _measured_by_trial(experiment: Any, objectives: list[str]) -> dict[int, _Measured]:
    """Each trial's latest values (Ax's ``df``) and its reports by step (``full_df``)."""
    data = experiment.lookup_data()
    found: dict[int, _Measured] = {}
    latest = data.df
    for trial_index, metric, mean, sem in zip(
        latest.get("trial_index", []),
        latest.get("metric_name", []),
        latest.get("mean", []),
        latest.get("sem", []),
        strict=True,
    ):
        measured = found.setdefault(int(trial_index), _Measured())
        measured.latest[str(metric)] = (float(mean), float(sem))
    full = data.full_df
    if "step" in full.columns:  # only once some trial reported
        _add_curves(found, full, set(objectives))
        for measured in found.values():  # in the objectives' order, each by step
            curve = measured.curve
            measured.curve = {name: sorted(curve[name]) for name in objectives if name in curve}
    return found


def _add_curves(found: dict[int, _Measured], full: Any, objectives: set[str]) -> None:
    """Every reported step: the trial's last step, and its objectives' curves."""
    for trial_index, metric, mean, step in zip(
        full["trial_index"].tolist(),
        full["metric_name"].tolist(),
        full["mean"].tolist(),
        full["step"].tolist(),
        strict=True,
    ):
        if math.isnan(step):  # a result without a step, from a trial that never reported
            continue
        measured = found.setdefault(int(trial_index), _Measured())
        last = measured.last_step
        measured.last_step = float(step) if last is None else max(last, float(step))
        if metric in objectives and not math.isnan(mean):
            measured.curve.setdefault(str(metric), []).append([float(step), float(mean)])


def _row(
    trial: Any,
    parameters: list[str],
    metrics: list[str],
    data: _Measured,
    live: Mapping[str, Any] | None,
) -> list[Any]:
    info = {**trial.run_metadata.get(RUN_METADATA_KEY, {}), **(live or {})}
    status = trial.status  # each read of an Ax property costs: once (a table per checkpoint)
    # Trial.arm: Trial.arms reads it twice; a BatchTrial has only arms.
    arm = trial.arm if hasattr(type(trial), "arm") else next(iter(trial.arms), None)
    values = arm.parameters if arm is not None else {}
    latest = data.latest
    measured = [_number(value) for name in metrics for value in latest.get(name, (None, None))]
    # Ax's times only where the run metadata has none (read lazily: a table per checkpoint).
    queued = _time(info, "dispatched_at", lambda: trial.time_run_started or trial.time_created)
    # The scheduler stamps started_at when a trial gets a slot; Ax's time_run_started
    # is its dispatch, so a trial that waited and was abandoned would seem to have run.
    ran_by_us = "runner" in info
    started = info.get("started_at") if ran_by_us else _epoch(trial.time_run_started)
    finished = _time(info, "finished_at", lambda: trial.time_completed)
    if finished is None and status.is_terminal:
        finished = _epoch(getattr(trial, "time_staged", None))
    duration = finished - started if started is not None and finished is not None else None
    workdir = None if info.get("files_removed") else info.get("job_dir")
    reason = info.get("failure_reason") or getattr(trial, "failed_reason", None)
    if status.name == "ABANDONED":
        reason = reason or getattr(trial, "abandoned_reason", None)
    return [
        int(trial.index),
        status.name,
        *(_plain(values.get(name)) for name in parameters),
        *measured,
        data.last_step,
        reason if not status.is_completed else None,
        info.get("early_stop_reason"),
        info.get("runner"),
        _job_id(info),
        info.get("host"),
        queued,
        started,
        finished,
        duration,
        workdir,
        f"{workdir}/stdout.log" if workdir else None,
        f"{workdir}/stderr.log" if workdir else None,
        data.curve or None,
    ]


def _number(value: float | None) -> float | None:
    """A measurement as JSON holds it: None where Ax has NaN (no value, or no SEM)."""
    return None if value is None or math.isnan(value) else value


def _plain(value: Any) -> Any:
    """A parameter value as a Python scalar: a numpy one (``item()``) would not go to JSON."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _time(
    info: Mapping[str, Any], key: str, ax_time: Callable[[], dt.datetime | None]
) -> float | None:
    """The run metadata's time ``key``, else Ax's, as seconds since the epoch."""
    return info[key] if key in info else _epoch(ax_time())


def _job_id(info: Mapping[str, Any]) -> str | None:
    for key in JOB_ID_KEYS:
        if info.get(key) is not None:
            return str(info[key])
    return None


def _epoch(moment: dt.datetime | None) -> float | None:
    """Seconds since the epoch; Ax's naive datetimes are local time."""
    return None if moment is None else moment.astimezone(dt.UTC).timestamp()


def _timestamp(seconds: float | None) -> Any:
    import pandas as pd

    return None if seconds is None else pd.Timestamp(seconds, unit="s", tz="UTC")
