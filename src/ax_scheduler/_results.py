"""Turning what an objective returned into data Ax accepts, or a clear failure."""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ._exceptions import ResultError

#: metric name -> (mean, sem); sem None means "unknown, let Ax infer the noise".
MetricValues = dict[str, tuple[float, float | None]]


@dataclass(frozen=True)
class MetricSpec:
    """Which metrics a trial result must and may contain.

    Attributes:
        required: Metrics of the optimization config (objectives, constraints).
        optional: Other metrics the experiment tracks; kept when returned.
    """

    required: tuple[str, ...]
    optional: frozenset[str] = frozenset()


def parse_result(raw: Any, spec: MetricSpec) -> tuple[MetricValues, list[str]]:
    """Validate an objective's return value against the experiment's metrics.

    Accepted shapes: ``{"metric": value}``, ``{"metric": (mean, sem)}``, and, when
    the experiment needs exactly one metric, a bare ``value`` or ``(mean, sem)``.

    Args:
        raw: What the objective returned.
        spec: The metrics the experiment needs and tracks.

    Returns:
        The metric values, and the names of returned keys that the experiment does
        not know (they are dropped, so the caller can warn about them).

    Raises:
        ResultError: A required metric is missing, or a value is not a finite
            number, or the return value has an unusable shape.
    """
    if not isinstance(raw, Mapping):
        return {_single_metric(raw, spec): _mean_and_sem(raw, _single_metric(raw, spec))}, []
    missing = [name for name in spec.required if name not in raw]
    if missing:
        raise ResultError(
            f"objective result is missing metric {missing[0]!r}"
            f" (returned keys: {sorted(map(str, raw))}; required: {list(spec.required)})"
        )
    known = set(spec.required) | spec.optional
    values = {name: _mean_and_sem(raw[name], name) for name in raw if name in known}
    unknown = sorted(str(name) for name in raw if name not in known)
    return values, unknown


def parse_report(metrics: Mapping[str, Any], spec: MetricSpec) -> tuple[MetricValues, list[str]]:
    """Validate one intermediate report: any of the experiment's metrics, none required.

    Returns:
        The values of the metrics the experiment knows, and the other names.

    Raises:
        ResultError: A value is not a finite number or ``(mean, sem)``.
    """
    known = set(spec.required) | spec.optional
    values = {name: _mean_and_sem(value, name) for name, value in metrics.items() if name in known}
    unknown = sorted(str(name) for name in metrics if name not in known)
    return values, unknown


def _single_metric(raw: Any, spec: MetricSpec) -> str:
    if len(spec.required) != 1:
        raise ResultError(
            f"objective returned {raw!r} ({type(raw).__name__}), but this experiment needs"
            f" metrics {list(spec.required)}: return a dict like"
            f" {{{', '.join(repr(name) + ': value' for name in spec.required)}}}"
        )
    return spec.required[0]


def _mean_and_sem(value: Any, metric: str) -> tuple[float, float | None]:
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ResultError(
                f"metric {metric!r}: expected a number or a (mean, sem) pair, got {value!r}"
            )
        mean, sem = value
        sem_value = None if sem is None else _finite(sem, metric, "sem")
        if sem_value is not None and sem_value < 0:
            raise ResultError(f"metric {metric!r}: sem must be >= 0, got {sem!r}")
        return _finite(mean, metric, "value"), sem_value
    return _finite(value, metric, "value"), None


def _finite(value: Any, metric: str, what: str) -> float:
    number = _as_real(value)
    if number is None:
        raise ResultError(
            f"metric {metric!r}: {what} must be a number, got {value!r} ({type(value).__name__})"
        )
    if not math.isfinite(number):
        raise ResultError(f"metric {metric!r}: {what} must be finite, got {number!r}")
    return number


def _as_real(value: Any) -> float | None:
    """A float for real numbers, numpy scalars and 0-d arrays/tensors; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        return _as_real(item())
    return None


def ax_raw_data(values: MetricValues) -> dict[str, float | tuple[float, float]]:
    """The ``raw_data`` dict for Ax's ``complete_trial``."""
    return {name: mean if sem is None else (mean, sem) for name, (mean, sem) in values.items()}


def describe_metrics(names: Collection[str]) -> str:
    """``'a', 'b'`` for messages."""
    return ", ".join(repr(name) for name in sorted(names))
