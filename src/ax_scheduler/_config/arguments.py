"""Checking a constructor's or a method's arguments the way the option models check
their keys: a :class:`~ax_scheduler.ConfigError` that names the argument, the value
and what would be valid."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .._exceptions import ConfigError


def positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` if it is an int >= ``minimum`` (never a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        wanted = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ConfigError(f"{name} must be {wanted}, got {value!r}")
    return value


def positive_seconds(name: str, value: Any) -> float:
    """``value`` as float seconds if it is a finite number > 0 (never a bool)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def one_of(name: str, value: Any, choices: Sequence[str], meanings: str = "") -> str:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        listed = meanings or "one of " + ", ".join(repr(choice) for choice in choices)
        raise ConfigError(f"{name} must be {listed}, got {value!r}")
    return str(value)
