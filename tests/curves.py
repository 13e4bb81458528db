"""Learning-curve objectives that report while they run (``ax_scheduler.report``).

Importable by worker processes (tests/ is on their PYTHONPATH). The curve's final
value is predictable from its early steps: ``(x**2 + y**2 + 0.1) * (1 + 5 / (step + 1))``,
so a percentile strategy can tell bad trials early.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from ax_scheduler import TrialStoppedEarly, report

STEPS = 20
STEP_SECONDS = float(os.environ.get("CURVE_STEP_SECONDS", "0.03"))


def loss(parameters: dict[str, Any], step: int) -> float:
    return (parameters["x"] ** 2 + parameters["y"] ** 2 + 0.1) * (1 + 5 / (step + 1))


def step_seconds(parameters: dict[str, Any]) -> float:
    """Bad trials' steps take longer, so that on a loaded 2-core machine the stop
    still lands long before their natural end (a test that expects a stop)."""
    return STEP_SECONDS * (4 if parameters["x"] ** 2 + parameters["y"] ** 2 > 1 else 1)


def curve(parameters: dict[str, Any]) -> dict[str, float]:
    """Reports ``objective`` at steps 0..19, then returns the last value."""
    for step in range(STEPS):
        time.sleep(step_seconds(parameters))
        report({"objective": loss(parameters, step)}, step=step)
    return {"objective": loss(parameters, STEPS - 1)}


async def async_curve(parameters: dict[str, Any]) -> dict[str, float]:
    for step in range(STEPS):
        await asyncio.sleep(step_seconds(parameters))
        report({"objective": loss(parameters, step)}, step=step)
    return {"objective": loss(parameters, STEPS - 1)}


def stubborn_curve(parameters: dict[str, Any]) -> dict[str, float]:
    """Catches every TrialStoppedEarly and goes on, counting them in a file: the
    grace period's kill is what ends it."""
    told = 0
    for step in range(10_000):
        time.sleep(STEP_SECONDS)
        try:
            report({"objective": loss(parameters, step)}, step=step)
        except TrialStoppedEarly:
            told += 1
            with open(f"{os.environ['CURVE_LOG']}/told-{os.getpid()}", "w") as file:
                file.write(str(told))
    return {"objective": loss(parameters, 0)}
