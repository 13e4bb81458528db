"""The value axis of the report's trace: linear, log, or clipped around the best so far.

One outlier on a linear axis squashes the best-so-far trace into a flat line at
the bottom (1827 against a best of 6). When every value is positive and they span
decades, a log axis is what reads best: every point stays in view, and it shows
what an improvement of a loss means (6 to 3 is as far as 600 to 300). Where log
cannot help (zero or negative values; a best so far that varies by a small part
of its size) the axis is clipped on the worse side, around the best so far, and
the values beyond it are drawn on its edge and named in a note in the figure: the
trace the figure is about fills the plot, and no value is hidden without a word.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: Values whose largest is this many times their smallest span decades: a log axis.
DECADES = 100

#: The least part of the value axis the best-so-far trace must span to be read.
MIN_SHARE = 0.25

#: Room on each side of a clipped axis, as a part of its range, for markers on its edge.
CLIP_PAD = 0.05


@dataclass(frozen=True)
class ValueAxis:
    """How a figure draws its value axis.

    Attributes:
        type: ``"linear"`` or ``"log"``.
        clip: The (low, high) a linear axis is clipped to; values beyond are drawn
            on its edge, marked off scale. None: the axis shows every value.
    """

    type: str = "linear"
    clip: tuple[float, float] | None = None

    def off_scale(self, values: Any) -> Any:
        """Which of ``values`` (a Series) lie beyond the clipped axis (a bool array)."""
        if self.clip is None:
            return np.zeros(len(values), dtype=bool)
        low, high = self.clip
        return ((values < low) | (values > high)).to_numpy()

    def edges(self) -> tuple[float, float]:
        """Where markers of values below and above a clipped axis are drawn."""
        low, high = self._padded()
        pad = self._pad()
        return low + pad / 2, high - pad / 2

    def layout(self) -> dict[str, Any]:
        """The plotly axis settings."""
        if self.clip is None:
            return {"type": self.type}
        return {"type": self.type, "range": list(self._padded()), "autorange": False}

    def note(self, values: Any) -> str:
        """What a clipped axis leaves out of ``values``: its bounds, counts and extremes."""
        assert self.clip is not None
        low, high = self.clip
        above, below = values[values > high], values[values < low]
        lines = ["axis clipped around", "the best so far;", "off scale:"]
        if len(above):
            lines += [f"\u25b2 {len(above)} above {high:.3g}", f"(up to {above.max():.6g})"]
        if len(below):
            lines += [f"\u25bc {len(below)} below {low:.3g}", f"(down to {below.min():.6g})"]
        return "<br>".join(lines)

    def _pad(self) -> float:
        assert self.clip is not None
        low, high = self.clip
        return CLIP_PAD * (high - low)

    def _padded(self) -> tuple[float, float]:
        assert self.clip is not None
        low, high = self.clip
        return low - self._pad(), high + self._pad()


def value_axis(values: Any, best: Any, direction: str) -> ValueAxis:
    """The axis on which ``best`` (best-so-far values) reads best among ``values``.

    Args:
        values: Every value the figure draws (a Series).
        best: The best-so-far values of its traces (a Series).
        direction: ``"minimize"`` or ``"maximize"``: which side is worse.

    Returns:
        Log if it spreads the trace; else linear if the trace spans enough of it;
        else linear, clipped on the worse side to twice the trace's span.
    """
    if spans_decades(values) and _trace_share(np.log10(best), np.log10(values)) >= MIN_SHARE:
        return ValueAxis("log")
    if _trace_share(best, values) >= MIN_SHARE:
        return ValueAxis("linear")
    # The best value is an end of both ranges: only the worse side needs clipping.
    span = best.max() - best.min()
    if direction == "minimize":
        return ValueAxis("linear", (float(values.min()), float(best.max() + span)))
    return ValueAxis("linear", (float(best.min() - span), float(values.max())))


def spans_decades(values: Any) -> bool:
    """Every value positive and the largest at least ``DECADES`` times the smallest."""
    return bool(len(values) > 1 and (values > 0).all() and values.max() >= DECADES * values.min())


def _trace_share(best: Any, values: Any) -> float:
    """The part of an axis over ``values`` the best so far spans (1 if it never changed)."""
    span, full = best.max() - best.min(), values.max() - values.min()
    return 1.0 if span == 0 or full == 0 else float(span / full)
