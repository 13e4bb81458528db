"""The report's learning curves: what each trial reported of an objective, step by step.

The points are the results table's ``curve`` column (``_table``), so the figure
comes from a saved run as from a live one. One line per trial; the trials the
early-stopping strategy stopped are dashed and grey, with a cross where they
stopped, and the best completed trial is drawn over the rest. Each kind of trial
is one plotly trace, its trials' lines separated by gaps: a run of a thousand
trials is a handful of SVG paths, not a thousand traces (and a thousand legend
entries).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import plotly.graph_objects as go

from ._savings import format_step
from ._valueaxis import spans_decades

#: How each kind of trial's line is drawn: its legend name and line style.
LINE_STYLES: dict[str, tuple[str, dict[str, Any]]] = {
    "COMPLETED": ("completed", {"color": "#1f77b4", "width": 1.5}),
    "EARLY_STOPPED": ("stopped early", {"color": "#9a9a9a", "width": 1.2, "dash": "dash"}),
    "RUNNING": ("running", {"color": "#17becf", "width": 1.5}),
}
#: Failed, abandoned and other trials' curves.
OTHER_STYLE = ("other", {"color": "#d3d3d3", "width": 1.0, "dash": "dot"})
STOP_MARKER = {"symbol": "x", "size": 9, "color": "#ff7f0e", "line": {"width": 1}}
BEST_LINE = {"color": "#d62728", "width": 3}


@dataclass(frozen=True)
class TrialCurve:
    """One trial's reports of one objective.

    Attributes:
        trial: The trial's index.
        status: Its Ax status.
        points: ``[step, value]`` pairs in order of step.
    """

    trial: int
    status: str
    points: Sequence[Sequence[float]]


def curves_of(frame: Any, metric: str) -> list[TrialCurve]:
    """The curves of ``metric`` in the results table (trials that reported it)."""
    if "curve" not in frame:
        return []
    found = []
    for trial, status, curve in zip(
        frame["trial_index"], frame["status"], frame["curve"], strict=True
    ):
        points = curve.get(metric) if isinstance(curve, dict) else None
        if points:
            found.append(TrialCurve(int(trial), str(status), points))
    return found


def curves_figure(
    curves: list[TrialCurve], metric: str, direction: str, best: int | None
) -> go.Figure:
    """One line per trial of ``metric`` against step, by kind of trial.

    Args:
        curves: The trials' curves (not empty).
        metric: The objective's name.
        direction: ``"minimize"`` or ``"maximize"``.
        best: The best completed trial's index, drawn over the rest, or None.
    """
    figure = go.Figure()
    for status in [*LINE_STYLES, None]:
        kind = [c for c in curves if _kind(c.status) == status]
        if kind:
            name, line = LINE_STYLES.get(status or "", OTHER_STYLE)
            figure.add_trace(_lines(kind, name, line))
    stopped = [c for c in curves if c.status == "EARLY_STOPPED"]
    if stopped:
        figure.add_trace(_stop_markers(stopped))
    chosen = [c for c in curves if c.trial == best]
    if chosen:
        figure.add_trace(_lines(chosen, f"best: trial {best}", BEST_LINE))
    values = [value for c in curves for _, value in c.points]
    figure.update_layout(
        height=420,
        title_text=f"{metric}: learning curves",
        xaxis_title="step",
        yaxis={
            "title": {"text": f"{metric} ({direction})"},
            "type": "log" if spans_decades(pd.Series(values, dtype="float64")) else "linear",
        },
        hovermode="closest",
    )
    return figure


def _kind(status: str) -> str | None:
    return status if status in LINE_STYLES else None


def _lines(curves: list[TrialCurve], name: str, line: dict[str, Any]) -> go.Scatter:
    """The trials' lines as one trace, a gap (None) between one trial and the next."""
    x: list[float | None] = []
    y: list[float | None] = []
    text: list[str | None] = []
    for curve in curves:
        for step, value in curve.points:
            x.append(step)
            y.append(value)
            text.append(
                f"trial {curve.trial} ({curve.status})<br>step {format_step(step)}: {value:.6g}"
            )
        x.append(None)
        y.append(None)
        text.append(None)
    return go.Scatter(
        x=x,
        y=y,
        text=text,
        mode="lines",
        line=line,
        name=name,
        connectgaps=False,
        hoverinfo="text",
    )


def _stop_markers(stopped: list[TrialCurve]) -> go.Scatter:
    """A cross at each stopped trial's last report: where the strategy stopped it."""
    ends = [curve.points[-1] for curve in stopped]
    return go.Scatter(
        x=[step for step, _ in ends],
        y=[value for _, value in ends],
        text=[
            f"trial {curve.trial} stopped at step {format_step(step)}: {value:.6g}"
            for curve, (step, value) in zip(stopped, ends, strict=True)
        ],
        mode="markers",
        marker=STOP_MARKER,
        name="where stopped",
        hoverinfo="text",
    )
