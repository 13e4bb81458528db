"""What the commands print: the trials as a table, CSV or JSON, and a run's summary.

Everything here works on a :class:`~.._table.TrialTable` of plain values, with the
standard library and rich: ``status`` prints a checkpoint's trials without pandas.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import sys
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from .._savings import describe, early_stopping_savings, format_step
from .._table import TIME_COLUMNS, TrialTable
from .tables import Column, draw, folded, width_of

STATUS_STYLES = {
    "COMPLETED": "green",
    "EARLY_STOPPED": "magenta",
    "FAILED": "red",
    "ABANDONED": "yellow",
    "RUNNING": "cyan",
}
REASON_WIDTH = 60
#: How lines with user data are printed: no markup, no wrapping at the terminal's width.
PLAIN: dict[str, Any] = {"markup": False, "highlight": False, "soft_wrap": True}


class Format(StrEnum):
    """Output formats of ``status``."""

    table = "table"
    csv = "csv"
    json = "json"


def print_trials(table: TrialTable, output_format: Format, title: str, total: int | None) -> None:
    """Print a run's trials: a table and a summary, or CSV or JSON with every column.

    Args:
        table: The trials.
        output_format: How to print them.
        title: The table's title.
        total: The run's max_trials, for the summary, if known.
    """
    if output_format is Format.csv:
        write_csv(table)
    elif output_format is Format.json:
        sys.stdout.write(json_text(exported(table)) + "\n")
    else:
        console = Console()
        print_table(console, title, *_trials_cells(table))
        print_summary(console, table, total)


def print_table(
    console: Console, title: str, columns: list[Column], rows: list[list[Text]]
) -> None:
    """Print a table whole, one line per row, or folded to fit a terminal narrower than it.

    A pipe or a file has no width to fit: there each row stays on one line however
    wide (grep, sort and ``less -S`` need whole rows), not folded at 80 columns.
    """
    if console.is_terminal and width_of(columns, rows) > console.width:
        console.print(folded(title, columns, rows))
    else:
        console.print(draw(title, columns, rows), soft_wrap=True)


def write_csv(table: TrialTable) -> None:
    """Every column of every trial as CSV on stdout: empty cells where a value is missing,
    a curve as JSON text (``{"loss": [[0.0, 0.9], [1.0, 0.7]]}``)."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(table.columns)
    for record in exported(table):
        writer.writerow([_csv_cell(value) for value in record.values()])


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, dict | list) else value


#: A pair of numbers as ``json.dumps(indent=2)`` lays it out, over four lines. A
#: newline never occurs inside a JSON string, so this matches no text of a trial's.
_PAIR = re.compile(r"\[\n\s+(-?\d[\d.eE+-]*),\n\s+(-?\d[\d.eE+-]*)\n\s+\]")


def json_text(records: list[dict[str, Any]]) -> str:
    """The records as indented JSON, each ``[step, value]`` of a curve on one line."""
    return _PAIR.sub(r"[\1, \2]", json.dumps(records, indent=2))


def exported(table: TrialTable) -> list[dict[str, Any]]:
    """The trials as CSV and JSON show them: times as ISO 8601 in UTC, missing as None."""
    records = table.records()
    for record in records:
        for column in TIME_COLUMNS:
            record[column] = _iso(record[column])
    return records


def print_summary(console: Console, table: TrialTable, total: int | None) -> None:
    """How many trials are in each state, those stopped early and the compute that saved
    (estimated as Ax does), and the best trial of a single objective."""
    counts = Counter(record["status"] for record in table.records())
    # Most common first; equal counts in the order of their first trial.
    states = ", ".join(f"{count} {state}" for state, count in counts.most_common())
    target = f" (max_trials {total})" if total is not None else ""
    console.print(f"{len(table.rows)} trials: {states or 'none yet'}{target}", **PLAIN)
    stopped = counts.get("EARLY_STOPPED", 0)
    if stopped:
        savings = early_stopping_savings(
            (record["status"], record["last_step"]) for record in table.records()
        )
        console.print(f"stopped early: {stopped}; compute saved {describe(savings)}", **PLAIN)
    best = _best_row(table)
    if best is not None:
        metric, row = best
        parameters = ", ".join(f"{name}={_number(row[name])}" for name in table.parameters)
        console.print(
            f"best: trial {row['trial_index']}, {metric}={_number(row[metric])} ({parameters})",
            **PLAIN,
        )


def shown(path: Path | str) -> str:
    """A path as the user would type it: relative to here if it is below here; a
    database URL without its password."""
    from .._sqlstore import is_database_url, redacted

    if is_database_url(path):
        return redacted(str(path))
    try:
        return str(Path(os.path.abspath(path)).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _trials_cells(trials: TrialTable) -> tuple[list[Column], list[list[Text]]]:
    """The columns and the cells of the trials table (reasons truncated; see csv/json).

    A ``step`` column (each trial's last reported step) once some trial reported
    while it ran; the reason is why a trial failed, was abandoned or stopped early.
    """
    metrics = trials.metrics
    records = trials.records()
    steps = ["step"] if any(row["last_step"] is not None for row in records) else []
    numeric = ("trial", "duration", "step", *metrics)
    names = ("trial", "status", "parameters", *metrics, *steps, "job", "duration", "reason")
    columns = [Column(name, right=name in numeric) for name in names]
    # Text, not markup: a parameter value or a reason may hold "[...]".
    rows = [
        [
            Text(str(row["trial_index"])),
            Text(row["status"], style=STATUS_STYLES.get(row["status"], "")),
            _one_line(", ".join(f"{name}={_number(row[name])}" for name in trials.parameters)),
            *(Text(_measurement(row[name], row[f"{name}_sem"])) for name in metrics),
            *(
                Text("" if row["last_step"] is None else format_step(row["last_step"]))
                for _ in steps
            ),
            _one_line(_job(row)),
            Text("" if row["duration_s"] is None else f"{row['duration_s']:.1f} s"),
            Text(_truncated(row["failure_reason"] or row["early_stop_reason"])),
        ]
        for row in records
    ]
    return columns, rows


def _one_line(text: str) -> Text:
    """A cell's text with newlines and tabs as spaces: a row is one line."""
    return Text(re.sub(r"\s", " ", text))


def _job(row: dict[str, Any]) -> str:
    """Where the trial ran: ``slurm 4242``, ``joblib 1234`` (a pid), ``docker name``."""
    return " ".join(str(part) for part in (row["runner"], row["job_id"]) if part is not None)


def _best_row(table: TrialTable) -> tuple[str, dict[str, Any]] | None:
    """The observed best trial of a single-objective experiment (the first of equals)."""
    if len(table.objectives) != 1:
        return None
    ((metric, direction),) = table.objectives.items()
    done = [
        row
        for row in table.records()
        if row["status"] == "COMPLETED" and row.get(metric) is not None
    ]
    if not done:
        return None
    pick = min if direction == "minimize" else max
    return metric, pick(done, key=lambda row: row[metric])


def _measurement(mean: float | None, sem: float | None) -> str:
    if mean is None:
        return ""
    return _number(mean) if sem is None or sem == 0 else f"{_number(mean)} ± {_number(sem)}"


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="microseconds")


def _truncated(reason: Any) -> str:
    if reason is None:
        return ""
    text = " ".join(str(reason).split())
    return text if len(text) <= REASON_WIDTH else text[: REASON_WIDTH - 1] + "…"
