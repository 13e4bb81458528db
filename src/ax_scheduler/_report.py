"""The HTML report: one self-contained file that shows how an optimization went.

``write_report`` turns the results table (``_table.results_frame``) into one HTML
file that opens offline: plotly.js is inlined once in the head and every figure
is a plotly div. Sections: a summary (with the trials stopped early and the
compute that saved, estimated as Ax does: ``_savings``), the optimization trace
(best so far against trials and against wall time, on an axis that outliers do
not squash: ``_valueaxis``), the learning curves (when trials reported while they
ran: ``_curves``), slice plots (each objective against each parameter), the
Pareto front (two or more objectives), a timeline of trials on one lane per slot
used, and the results table (what a reader needs first in the page's width, the
rest on demand).

Why plotly directly rather than Ax's analyses (``ax.analysis.plotly``): the ones
that need no fitted model do not fit a report that must render anywhere.
``ParallelCoordinatesPlot`` draws with WebGL (``go.Parcoords``); where WebGL is
unavailable (a GPU-less remote desktop, ``--disable-gpu``) plotly shows "WebGL is
not supported" in an otherwise healthy canvas, with no console error to notice
it by, and where it works headless Chromium logs GPU-stall warnings. Slice plots
are SVG. ``ScatterPlot(show_pareto_frontier=True)`` gives every trial its own
legend entry (unreadable beyond a few dozen trials) and does not mark the
front's points; ``UtilityProgressionAnalysis`` has no wall-time axis. And Ax's
analyses read the live experiment, while the report draws only from the frame,
a snapshot the caller took: it can run on a worker thread while Ax's thread
goes on changing the experiment.
"""

from __future__ import annotations

import datetime as dt
import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import plotly.graph_objects as go
import plotly.offline

from ._curves import curves_figure, curves_of
from ._figures import (
    assign_lanes,
    format_seconds,
    pareto_figure,
    pareto_mask,
    slice_figure,
    timeline_figure,
    trace_figure,
)
from ._files import write_atomically
from ._reporttable import format_value, results_table
from ._savings import describe, early_stopping_savings
from ._table import results_frame

NO_COMPLETED = "No completed trials yet."

#: How the summary names a status (others: Ax's name in lower case).
STATUS_WORDS = {"EARLY_STOPPED": "stopped early"}

TIME_COLUMNS = ("queued_at", "started_at", "finished_at")

PLOT_CONFIG = {"displaylogo": False, "responsive": True}

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       margin: 1.5rem 2rem; color: #222; }
h1 { font-size: 1.6rem; margin-bottom: 0.3rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
.summary { border-collapse: collapse; }
.summary th { text-align: left; padding: 0.15rem 1rem 0.15rem 0; color: #555; font-weight: 600; }
.summary td { padding: 0.15rem 0; }
.empty { color: #777; font-style: italic; }
.note { color: #666; font-size: 0.9rem; }
.table-wrap { overflow: auto; max-height: 40rem; margin-top: 0.3rem; }
table.results { border-collapse: collapse; font-size: 0.8rem; }
table.results th, table.results td { border: 1px solid #e3e3e3; padding: 0.2rem 0.4rem;
                                     vertical-align: top; }
table.results th { background: #f4f4f4; position: sticky; top: 0; text-align: left; }
table.results td { white-space: nowrap; }
table.results td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.results td.text { white-space: normal; overflow-wrap: anywhere; min-width: 12rem;
                        max-width: 22rem; }
table.results summary { cursor: pointer; }
table.results details[open] .short { display: none; }
table.results .more { display: none; }
#all-columns:checked ~ .table-wrap .more { display: table-cell; }
tr.FAILED td { background: #fdeeee; }
tr.RUNNING td { background: #eef4fb; }
tr.EARLY_STOPPED td { background: #f4f4f4; color: #555; }
"""


@dataclass(frozen=True)
class _Columns:
    """What the frame's columns mean (from ``frame.attrs``, read once)."""

    parameters: list[str]
    metrics: list[str]
    objectives: dict[str, str]  # metric -> "minimize" / "maximize"


def write_report(
    experiment: Any,
    path: str | os.PathLike[str],
    *,
    frame: Any | None = None,
    title: str | None = None,
) -> Path:
    """Write the HTML report of ``experiment`` to ``path`` (atomically).

    Args:
        experiment: An Ax ``Experiment``.
        path: Where to write the ``.html`` file; its directory is created.
        frame: The results table to draw from (``results_frame(experiment)`` if
            not given), e.g. a scheduler's ``results()`` with live facts.
        title: The page's heading; by default from the experiment's name.

    Returns:
        The path written.
    """
    target = Path(path)
    table = results_frame(experiment) if frame is None else frame
    write_atomically(target, render_report(experiment, table, title))
    return target


def render_report(
    experiment: Any, frame: Any, title: str | None = None, *, now: dt.datetime | None = None
) -> str:
    """The report as one self-contained HTML page.

    Args:
        experiment: An Ax ``Experiment`` (only its name is read).
        frame: The results table (``results_frame``), with its ``attrs``.
        title: The page's heading; by default from the experiment's name.
        now: When the report is made (default: the current time; naive means
            UTC): running trials' bars end here.

    Returns:
        The HTML text.
    """
    columns = _Columns(
        parameters=list(frame.attrs.get("parameters", [])),
        metrics=list(frame.attrs.get("metrics", [])),
        objectives=dict(frame.attrs.get("objectives", {})),
    )
    frame = _with_utc_times(frame)
    moment = pd.Timestamp(now or dt.datetime.now(dt.UTC))
    moment = moment if moment.tzinfo else moment.tz_localize("UTC")
    name = str(getattr(experiment, "name", None) or "experiment")
    heading = title or f"Optimization report: {name}"
    sections = [
        _section("Summary", _summary(frame, columns, name, moment)),
        _section("Optimization trace", _traces(frame, columns)),
    ]
    curves = _curves(frame, columns)  # only when some trial reported while it ran
    if curves:
        sections.append(_section("Learning curves", curves))
    sections.append(_section("Objectives against parameters", _slices(frame, columns)))
    if len(columns.objectives) >= 2:
        sections.append(_section("Pareto front", _pareto(frame, columns)))
    sections += [
        _section("Timeline of trials", _timeline(frame, moment)),
        _section("Results", _results(frame, columns)),
    ]
    return _page(heading, "\n".join(sections))


# --- the page ---------------------------------------------------------------------


def _page(heading: str, body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(heading)}</title>
<style>{STYLE}</style>
<script>{plotly.offline.get_plotlyjs()}</script>
</head>
<body>
<h1>{html.escape(heading)}</h1>
{body}
</body>
</html>
"""


def _section(heading: str, content: str) -> str:
    anchor = heading.lower().replace(" ", "-")
    return f'<section id="{anchor}">\n<h2>{html.escape(heading)}</h2>\n{content}\n</section>'


def _figure_html(figure: go.Figure) -> str:
    figure.update_layout(template="plotly_white", margin={"l": 60, "r": 30, "t": 50, "b": 50})
    return str(figure.to_html(full_html=False, include_plotlyjs=False, config=PLOT_CONFIG))


def _with_utc_times(frame: Any) -> Any:
    # A frame edited by hand, or read back from a file, may hold naive or text times.
    return frame.assign(**{c: pd.to_datetime(frame[c], utc=True) for c in TIME_COLUMNS})


def _empty(message: str) -> str:
    return f'<p class="empty">{html.escape(message)}</p>'


def _completed(frame: Any, metric: str) -> Any:
    """The completed trials with a value for ``metric``."""
    return frame[(frame["status"] == "COMPLETED") & frame[metric].notna()]


# --- summary ----------------------------------------------------------------------


def _summary(frame: Any, columns: _Columns, name: str, now: pd.Timestamp) -> str:
    counts = frame["status"].value_counts()
    by_status = ", ".join(
        f"{count} {STATUS_WORDS.get(status, status.lower())}" for status, count in counts.items()
    )
    rows = [
        ("Experiment", html.escape(name)),
        ("Trials", f"{len(frame)}" + (f" ({html.escape(by_status)})" if by_status else "")),
        *_best_rows(frame, columns),
        *_early_stopping_rows(frame),
        ("Run time", _time_span(frame, now)),
        ("Report made", now.strftime("%Y-%m-%d %H:%M:%S UTC")),
    ]
    body = "\n".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in rows)
    return f'<table class="summary">\n{body}\n</table>'


def _best_rows(frame: Any, columns: _Columns) -> list[tuple[str, str]]:
    if len(columns.objectives) != 1:
        return [("Objectives", html.escape(_directions_text(columns.objectives)) or "none")]
    ((metric, direction),) = columns.objectives.items()
    best = _best(frame, metric, direction)
    if best is None:
        return [(f"Best {html.escape(metric)} ({direction})", f"<i>{NO_COMPLETED}</i>")]
    values = ", ".join(f"{p} = {format_value(best[p])}" for p in columns.parameters)
    return [
        (
            f"Best {html.escape(metric)} ({direction})",
            f"<b>{format_value(best[metric])}</b> in trial {int(best['trial_index'])}",
        ),
        ("Best parameters", html.escape(values)),
    ]


def _best(frame: Any, metric: str, direction: str) -> Any:
    """The completed trial with the best ``metric`` (a row), or None."""
    done = _completed(frame, metric)
    if done.empty:
        return None
    return done.loc[done[metric].idxmin() if direction == "minimize" else done[metric].idxmax()]


def _early_stopping_rows(frame: Any) -> list[tuple[str, str]]:
    """Trials stopped early and the compute saved, once any trial reported or stopped."""
    if "last_step" not in frame:
        return []
    stopped = int((frame["status"] == "EARLY_STOPPED").sum())
    if not stopped and frame["last_step"].isna().all():
        return []
    rows = [("Stopped early", f"{stopped} of {len(frame)} trials")]
    if stopped:
        savings = early_stopping_savings(zip(frame["status"], frame["last_step"], strict=True))
        rows.append(("Compute saved", html.escape(describe(savings))))
    return rows


def _directions_text(objectives: dict[str, str]) -> str:
    return ", ".join(f"{metric} ({direction})" for metric, direction in objectives.items())


def _time_span(frame: Any, now: pd.Timestamp) -> str:
    times = pd.concat([frame[column] for column in TIME_COLUMNS]).dropna()
    if times.empty:
        return "no trial has started yet"
    first, last = times.min(), now if (frame["status"] == "RUNNING").any() else times.max()
    span = format_seconds((last - first).total_seconds())
    return f"{first:%Y-%m-%d %H:%M:%S} to {last:%Y-%m-%d %H:%M:%S} UTC ({span})"


# --- optimization trace -----------------------------------------------------------


def _traces(frame: Any, columns: _Columns) -> str:
    if not columns.objectives:
        return _empty("The experiment has no objective.")
    parts = [
        _figure_html(trace_figure(done, metric, direction))
        for metric, direction in columns.objectives.items()
        if len(done := _completed(frame, metric))
    ]
    return "\n".join(parts) if parts else _empty(NO_COMPLETED)


# --- learning curves ------------------------------------------------------------


def _curves(frame: Any, columns: _Columns) -> str:
    """The objectives' learning curves, or "" if no trial reported one."""
    parts = []
    for metric, direction in columns.objectives.items():
        curves = curves_of(frame, metric)
        if curves:
            best = _best(frame, metric, direction)
            chosen = None if best is None else int(best["trial_index"])
            parts.append(_figure_html(curves_figure(curves, metric, direction, chosen)))
    if not parts:
        return ""
    note = (
        '<p class="note">What each trial reported with <code>ax_scheduler.report</code>, '
        "step by step: one line per trial. Dashed grey lines are trials the early-stopping "
        "strategy stopped, with a cross where it stopped them.</p>"
    )
    return note + "\n".join(parts)


# --- parameters -------------------------------------------------------------------


def _slices(frame: Any, columns: _Columns) -> str:
    if not columns.parameters:
        return _empty("The search space has no parameters.")
    parts = [
        _figure_html(slice_figure(_completed(frame, metric), metric, columns.parameters))
        for metric in columns.objectives or columns.metrics
        if len(_completed(frame, metric))
    ]
    return "\n".join(parts) if parts else _empty(NO_COMPLETED)


# --- Pareto front -----------------------------------------------------------------


def _pareto(frame: Any, columns: _Columns) -> str:
    (x, x_direction), (y, y_direction) = list(columns.objectives.items())[:2]
    done = frame[(frame["status"] == "COMPLETED") & frame[x].notna() & frame[y].notna()]
    if done.empty:
        return _empty(NO_COMPLETED)
    front = pareto_mask(done[x].to_numpy(float), done[y].to_numpy(float), x_direction, y_direction)
    note = ""
    if len(columns.objectives) > 2:
        note = '<p class="note">The first two objectives; the front is over these two.</p>'
    figure = pareto_figure(done, front, (x, x_direction), (y, y_direction))
    return note + _figure_html(figure)


# --- timeline ---------------------------------------------------------------------


def _timeline(frame: Any, now: pd.Timestamp) -> str:
    bars = timeline_bars(frame, now)
    if bars.empty:
        return _empty("No trial has started yet.")
    note = (
        '<p class="note">A lane is a slot as the trials used it: each trial takes the lowest '
        "lane free when it started, so there are as many lanes as trials ran at once. The thin "
        "light strip before a bar is the time the trial waited (for a free slot, or in a "
        "cluster's queue).</p>"
    )
    return note + _figure_html(timeline_figure(bars))


def timeline_bars(frame: Any, now: pd.Timestamp) -> Any:
    """Started trials, with ``start``, ``end`` and ``lane``."""
    bars = frame[frame["started_at"].notna()].copy()
    running = bars["finished_at"].isna() & (bars["status"] == "RUNNING")
    bars["end"] = bars["finished_at"].where(~running, now)
    bars["end"] = bars["end"].fillna(bars["started_at"])  # ended, time not recorded
    bars["start"] = bars["started_at"]
    bars = bars.sort_values(["start", "trial_index"])
    bars["lane"] = assign_lanes(zip(bars["start"], bars["end"], strict=True))
    return bars


def _results(frame: Any, columns: _Columns) -> str:
    if frame.empty:
        return _empty("No trials yet.")
    shown = frame.drop(columns=["curve"], errors="ignore")  # drawn as the learning curves
    # How far a trial got, and why it was stopped, at first where some trial has them.
    progress = [
        c for c in ("last_step", "early_stop_reason") if c in shown and shown[c].notna().any()
    ]
    return results_table(shown, [*columns.parameters, *columns.metrics, *progress])
