"""The report's plotly figures, each a pure function of rows of the results table.

``_report`` puts them into sections; see its docstring for why plotly directly.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ._valueaxis import ValueAxis, spans_decades, value_axis

#: Text longer than this is cut: in a hover, and in a table cell (the rest a click away).
MAX_CELL_CHARS = 80

#: Bar colour per Ax trial status; anything else (staged, stale...) light grey.
STATUS_COLOURS = {
    "COMPLETED": "#2ca02c",
    "FAILED": "#d62728",
    "RUNNING": "#1f77b4",
    "EARLY_STOPPED": "#ff7f0e",
    "ABANDONED": "#7f7f7f",
}


OTHER_STATUS_COLOUR = "#c7c7c7"


def trace_figure(done: Any, metric: str, direction: str) -> go.Figure:
    """Observed values and the best so far, against trial index and against finish time."""
    figure = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=("against trials", "against wall time (UTC)"),
    )
    by_index = done.sort_values("trial_index")
    by_time = done[done["finished_at"].notna()].sort_values("finished_at")
    panels = [(by_index, by_index["trial_index"]), (by_time, naive_utc(by_time["finished_at"]))]
    best = pd.concat([best_so_far(rows[metric], direction) for rows, _ in panels])
    axis = value_axis(done[metric], best, direction)
    for col, (rows, x) in enumerate(panels, start=1):
        for trace in _trace_panel(rows, x, metric, direction, axis, legend=col == 1):
            figure.add_trace(trace, row=1, col=col)
    figure.update_xaxes(title_text="trial index", row=1, col=1)
    figure.update_yaxes(title_text=f"{metric} ({direction})", **axis.layout())
    figure.update_layout(height=380, title_text=f"{metric}: best so far")
    if axis.clip is not None:
        figure.add_annotation(_off_scale_note(done[metric], axis))
    return figure


def _trace_panel(
    rows: Any, x: Any, metric: str, direction: str, axis: ValueAxis, legend: bool
) -> list[Any]:
    values, x = rows[metric], np.asarray(x)
    off = axis.off_scale(values)
    hover = np.array([f"trial {i}" for i in rows["trial_index"]])
    observed = go.Scatter(
        x=x[~off],
        y=values[~off],
        mode="markers",
        marker={"color": "#9aa7b8", "size": 7},
        **_series("observed", list(hover[~off]), legend),
    )
    best = go.Scatter(
        x=x,
        y=best_so_far(values, direction),
        mode="lines",
        line={"shape": "hv", "color": "#1f77b4", "width": 2.5},
        **_series("best so far", list(hover), legend),
    )
    traces = [observed, best]
    if off.any():
        traces.append(_off_scale_trace(rows[off], x[off], metric, axis, legend))
    return traces


def _off_scale_trace(rows: Any, x: Any, metric: str, axis: ValueAxis, legend: bool) -> go.Scatter:
    """Values beyond the clipped axis, on its edge, their real value in the hover."""
    assert axis.clip is not None
    above = (rows[metric] > axis.clip[1]).to_numpy()
    bottom, top = axis.edges()
    values = zip(rows["trial_index"], rows[metric], strict=True)
    hover = [f"trial {i}: {v:.6g} (off scale)" for i, v in values]
    return go.Scatter(
        x=x,
        y=np.where(above, top, bottom),
        mode="markers",
        marker={
            "color": "#9aa7b8",
            "size": 10,
            "symbol": np.where(above, "triangle-up", "triangle-down"),
        },
        hoverinfo="text",
        **_series("off scale", hover, legend),
    )


def _off_scale_note(values: Any, axis: ValueAxis) -> dict[str, Any]:
    """The note that says the axis is clipped, under the legend (clear of plotly's toolbar)."""
    return {
        "text": axis.note(values),
        "xref": "paper",
        "yref": "paper",
        "x": 1.02,
        "y": 0.6,
        "xanchor": "left",
        "yanchor": "top",
        "align": "left",
        "showarrow": False,
        "font": {"size": 11, "color": "#666"},
    }


def _series(name: str, hover: list[str], legend: bool) -> dict[str, Any]:
    """One legend entry for a series drawn in several panels."""
    return {"name": name, "text": hover, "legendgroup": name, "showlegend": legend}


def best_so_far(values: Any, direction: str) -> Any:
    """The running best of ``values`` (a Series, in order) for ``direction``."""
    return values.cummin() if direction == "minimize" else values.cummax()


def slice_figure(done: Any, metric: str, parameters: Sequence[str]) -> go.Figure:
    """``metric`` against each parameter, one panel each; colour is the trial index."""
    cols = min(3, len(parameters))
    rows = math.ceil(len(parameters) / cols)
    figure = make_subplots(
        rows=rows, cols=cols, subplot_titles=list(parameters), vertical_spacing=0.5 / rows
    )
    hover = [f"trial {i}" for i in done["trial_index"]]
    for position, parameter in enumerate(parameters):
        row, col = divmod(position, cols)
        figure.add_trace(
            go.Scatter(
                x=done[parameter],
                y=done[metric],
                mode="markers",
                text=hover,
                name=parameter,
                showlegend=False,
                marker={
                    "color": done["trial_index"],
                    "colorscale": "Viridis",
                    "size": 8,
                    "showscale": position == 0,
                    "colorbar": {"title": {"text": "trial"}},
                },
            ),
            row=row + 1,
            col=col + 1,
        )
    # Positive values spanning decades on a log axis, as in the trace above them.
    figure.update_yaxes(type="log" if spans_decades(done[metric]) else "linear")
    figure.update_yaxes(title_text=metric, col=1)
    figure.update_layout(height=300 * rows + 60, title_text=f"{metric} against each parameter")
    return figure


def pareto_mask(x: np.ndarray, y: np.ndarray, x_direction: str, y_direction: str) -> np.ndarray:
    """Which points no other point dominates (better or equal in both, better in one).

    A sweep in order of ``x`` (then ``y``): a point is on the front when its ``y``
    beats every ``y`` before it, or it equals the last front point.
    """
    xs = x if x_direction == "minimize" else -x
    ys = y if y_direction == "minimize" else -y
    mask = np.zeros(len(xs), dtype=bool)
    best_y, last = math.inf, (math.nan, math.nan)
    for i in np.lexsort((ys, xs)):
        if ys[i] < best_y or (xs[i], ys[i]) == last:
            mask[i] = True
            best_y, last = ys[i], (xs[i], ys[i])
    return mask


def pareto_figure(
    done: Any, front: np.ndarray, x: tuple[str, str], y: tuple[str, str]
) -> go.Figure:
    """All completed trials, the non-dominated ones highlighted and joined."""
    (x_metric, x_direction), (y_metric, y_direction) = x, y
    figure = go.Figure()
    for on_front, name, style in [
        (False, "dominated", {"color": "#b8c2cf", "size": 8}),
        (True, "Pareto front", {"color": "#d62728", "size": 11, "symbol": "diamond"}),
    ]:
        points = done[front == on_front].sort_values(x_metric)
        figure.add_trace(
            go.Scatter(
                x=points[x_metric],
                y=points[y_metric],
                mode="lines+markers" if on_front else "markers",
                line={"color": "#d62728", "width": 1.5, "dash": "dot"},
                marker=style,
                name=name,
                text=[f"trial {i}" for i in points["trial_index"]],
            )
        )
    figure.update_layout(
        height=450,
        title_text=f"{x_metric} and {y_metric}",
        xaxis_title=f"{x_metric} ({x_direction})",
        yaxis_title=f"{y_metric} ({y_direction})",
    )
    return figure


def assign_lanes(intervals: Iterable[tuple[Any, Any]]) -> list[int]:
    """Interval partitioning: each (begin, end), in order of begin, takes the lowest free lane.

    This opens exactly as many lanes as intervals overlap at most. The scheduler
    stamps a trial's start when it takes a slot and its end as it gives the slot
    back, before the next trial can take it, so a lane is free again at that very
    end. No slack, then: any would put trials that overlapped by less than it on
    one lane (a 2-slot run of trials that take a few ms drew a single lane).

    Args:
        intervals: (begin, end) pairs sorted by begin.

    Returns:
        The lane (from 0) of each interval.
    """
    lane_ends: list[Any] = []
    lanes = []
    for begin, end in intervals:
        lane = next((n for n, busy in enumerate(lane_ends) if busy <= begin), None)
        if lane is None:
            lane = len(lane_ends)
            lane_ends.append(end)
        lane_ends[lane] = end
        lanes.append(lane)
    return lanes


def timeline_figure(bars: Any) -> go.Figure:
    """One horizontal bar per trial on its lane, coloured by status; queued time lighter."""
    figure = go.Figure()
    queued = bars[bars["queued_at"] < bars["started_at"]]
    if len(queued):
        # A thin strip along the lane's edge: while a trial waits, the lane's previous
        # trial may still be running, and the two must not hide each other.
        strip = {"width": 0.15, "offset": 0.3, "opacity": 0.45}
        figure.add_trace(_bar_trace(queued, "queued_at", "started_at", "queued", **strip))
    for status, rows in bars.groupby("status", sort=False):
        figure.add_trace(_bar_trace(rows, "start", "end", str(status)))
    lanes = int(bars["lane"].max()) + 1
    figure.update_layout(
        barmode="overlay",
        height=140 + min(36 * lanes, 840),  # hundreds of Slurm jobs: thinner bars
        title_text="Trials per worker lane",
        xaxis={"type": "date", "title": {"text": "time (UTC)"}},
        yaxis={
            "title": {"text": "lane"},
            "autorange": "reversed",
            "tickprefix": "lane ",
            "dtick": 1 if lanes <= 24 else None,
            "showgrid": False,
            "zeroline": False,
        },
    )
    return figure


def _bar_trace(
    rows: Any,
    begin: str,
    end: str,
    name: str,
    *,
    width: float = 0.6,
    offset: float = -0.3,
    opacity: float = 1.0,
) -> go.Bar:
    # Plotly draws a date-axis bar from `base` for `x` milliseconds (as px.timeline does).
    return go.Bar(
        orientation="h",
        base=naive_utc(rows[begin]),
        x=(rows[end] - rows[begin]).dt.total_seconds() * 1000,
        y=rows["lane"] + 1,
        width=width,
        offset=offset,
        name=name,
        marker={
            "color": _colours(rows),
            "opacity": opacity,
            "line": {"width": 1, "color": "white"},
        },
        hovertext=[_bar_hover(row) for row in rows.itertuples()],
        hoverinfo="text",
    )


def _colours(rows: Any) -> list[str]:
    return [STATUS_COLOURS.get(status, OTHER_STATUS_COLOUR) for status in rows["status"]]


def _bar_hover(row: Any) -> str:
    # Plotly renders hover text as a little HTML; what came from a trial is escaped.
    lines = [
        f"trial {row.trial_index}: {row.status}",
        f"{'running for' if row.status == 'RUNNING' else 'ran'} "
        + format_seconds((row.end - row.start).total_seconds()),
    ]
    if row.queued_at < row.start:
        lines.append(f"queued {format_seconds((row.start - row.queued_at).total_seconds())}")
    where = ", ".join(
        f"{label} {value}"
        for label, value in [("job", row.job_id), ("on", row.host), ("runner", row.runner)]
        if present(value)
    )
    lines += [html.escape(where)] if where else []
    reason = row.failure_reason
    if not present(reason):  # why it was stopped early (a hand-made frame may lack it)
        reason = getattr(row, "early_stop_reason", None)
    if present(reason):
        lines.append(html.escape(shorten(str(reason))))
    return "<br>".join(lines)


def present(value: Any) -> bool:
    """Not None, NaN or NaT."""
    return value is not None and not (pd.api.types.is_scalar(value) and pd.isna(value))


def shorten(text: str) -> str:
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "\u2026"


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.3g} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60} min"


def naive_utc(times: Any) -> list[str]:
    # Plotly's date axes ignore a UTC offset; ISO text without one is read as is.
    return [f"{moment:%Y-%m-%d %H:%M:%S.%f}" for moment in times.dt.tz_convert("UTC")]
