"""Unit tests of result parsing: every accepted shape and every refusal."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from ax_scheduler import ResultError
from ax_scheduler._results import MetricSpec, ax_raw_data, parse_result

ONE = MetricSpec(required=("objective",))
TWO = MetricSpec(required=("a", "b"), optional=frozenset({"tracked"}))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"objective": 1.5}, {"objective": (1.5, None)}),
        ({"objective": (1.5, 0.1)}, {"objective": (1.5, 0.1)}),
        ({"objective": [1.5, None]}, {"objective": (1.5, None)}),
        (2, {"objective": (2.0, None)}),
        ((2.0, 0.0), {"objective": (2.0, 0.0)}),
        (np.float32(0.5), {"objective": (0.5, None)}),
        ({"objective": np.array(3.0)}, {"objective": (3.0, None)}),
    ],
)
def test_accepted_shapes(raw: Any, expected: dict[str, Any]) -> None:
    assert parse_result(raw, ONE) == (expected, [])


def test_tracked_metrics_are_kept_and_unknown_ones_reported() -> None:
    values, unknown = parse_result({"a": 1, "b": 2, "tracked": 3, "note": "x"}, TWO)
    assert values == {"a": (1.0, None), "b": (2.0, None), "tracked": (3.0, None)}
    assert unknown == ["note"]


@pytest.mark.parametrize(
    ("raw", "spec", "message"),
    [
        ({"a": 1}, TWO, "missing metric 'b' (returned keys: ['a']; required: ['a', 'b'])"),
        ({"objective": math.nan}, ONE, "metric 'objective': value must be finite, got nan"),
        ({"objective": math.inf}, ONE, "value must be finite, got inf"),
        ({"objective": None}, ONE, "value must be a number, got None (NoneType)"),
        ({"objective": True}, ONE, "value must be a number, got True (bool)"),
        ({"objective": (1.0, -0.1)}, ONE, "sem must be >= 0, got -0.1"),
        ({"objective": (1.0, 2.0, 3.0)}, ONE, "expected a number or a (mean, sem) pair"),
        ({"objective": np.array([1.0, 2.0])}, ONE, "value must be a number"),
        (1.0, TWO, "needs metrics ['a', 'b']"),
        ("7", ONE, "value must be a number, got '7' (str)"),
    ],
)
def test_refusals_name_metric_and_value(raw: Any, spec: MetricSpec, message: str) -> None:
    with pytest.raises(ResultError) as raised:
        parse_result(raw, spec)
    assert message in str(raised.value)


def test_raw_data_for_ax_omits_unknown_sem() -> None:
    assert ax_raw_data({"a": (1.0, None), "b": (2.0, 0.5)}) == {"a": 1.0, "b": (2.0, 0.5)}
