"""What the commands print: the trials as a table, CSV or JSON, and a run's summary."""

from __future__ import annotations

import math
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

STATUS_STYLES = {"COMPLETED": "green", "FAILED": "red", "ABANDONED": "yellow", "RUNNING": "cyan"}
REASON_WIDTH = 60
#: How lines with user data are printed: no markup, no wrapping at the terminal's width.
PLAIN: dict[str, Any] = {"markup": False, "highlight": False, "soft_wrap": True}


class Format(StrEnum):
    """Output formats of ``status``."""

    table = "table"
    csv = "csv"
    json = "json"


def print_trials(frame: Any, output_format: Format, title: str, total: int | None) -> None:
    """Print a results frame (``_table.results_frame``): a table and a summary, or CSV or JSON.

    Args:
        frame: The trials.
        output_format: How to print them.
        title: The table's title.
        total: The run's max_trials, for the summary, if known.
    """
    if output_format is Format.csv:
        sys.stdout.write(frame.to_csv(index=False))
    elif output_format is Format.json:
        sys.stdout.write(frame.to_json(orient="records", date_format="iso", indent=2) + "\n")
    else:
        console = Console()
        console.print(_trials_table(frame, title))
        print_summary(console, frame, total)


def print_summary(console: Console, frame: Any, total: int | None) -> None:
    """How many trials are in each state, and the best one of a single objective."""
    counts = frame["status"].value_counts()
    states = ", ".join(f"{count} {state}" for state, count in counts.items())
    target = f" (max_trials {total})" if total is not None else ""
    console.print(f"{len(frame)} trials: {states or 'none yet'}{target}", **PLAIN)
    best = _best_row(frame)
    if best is not None:
        metric, row = best
        parameters = ", ".join(f"{name}={_number(row[name])}" for name in frame.attrs["parameters"])
        console.print(
            f"best: trial {row['trial_index']}, {metric}={_number(row[metric])} ({parameters})",
            **PLAIN,
        )


def shown(path: Path) -> str:
    """A path as the user would type it: relative to here if it is below here."""
    try:
        return str(Path(os.path.abspath(path)).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _trials_table(frame: Any, title: str) -> Table:
    metrics = frame.attrs["metrics"]
    table = Table(title=title, title_justify="left")
    for name in ("trial", "status", "parameters", *metrics, "job", "duration", "reason"):
        numeric = name in ("trial", "duration", *metrics)
        table.add_column(name, justify="right" if numeric else "left", overflow="fold")
    for row in frame.to_dict("records"):
        # Text, not markup: a parameter value or a reason may hold "[...]".
        table.add_row(
            Text(str(row["trial_index"])),
            Text(row["status"], style=STATUS_STYLES.get(row["status"], "")),
            Text(", ".join(f"{name}={_number(row[name])}" for name in frame.attrs["parameters"])),
            *(Text(_measurement(row[name], row[f"{name}_sem"])) for name in metrics),
            Text(" ".join(str(part) for part in (row["runner"], row["job_id"]) if _present(part))),
            Text("" if math.isnan(row["duration_s"]) else f"{row['duration_s']:.1f} s"),
            Text(_truncated(row["failure_reason"])),
        )
    return table


def _best_row(frame: Any) -> tuple[str, dict[str, Any]] | None:
    """The observed best trial of a single-objective experiment, if any has data."""
    objectives = frame.attrs["objectives"]
    if len(objectives) != 1:
        return None
    ((metric, direction),) = objectives.items()
    done = frame[frame["status"] == "COMPLETED"].dropna(subset=[metric])
    if done.empty:
        return None
    index = done[metric].idxmin() if direction == "minimize" else done[metric].idxmax()
    return metric, done.loc[index].to_dict()


def _measurement(mean: float, sem: float) -> str:
    if math.isnan(mean):
        return ""
    return _number(mean) if math.isnan(sem) or sem == 0 else f"{_number(mean)} ± {_number(sem)}"


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _truncated(reason: Any) -> str:
    if not _present(reason):
        return ""
    text = " ".join(str(reason).split())
    return text if len(text) <= REASON_WIDTH else text[: REASON_WIDTH - 1] + "…"
