"""The workload every tool runs: a family of learning curves, and trials that log themselves.

Standard library only: the local pool's workers and Slurm jobs import this module
by name (bench/ is on their path), and must not pay for importing Ax.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

NAMES = ("x", "y", "z")
METRIC = "loss"
NOISE_SD = 0.005

Params = dict[str, float]
#: How a trial hands a step's value to its tool; may raise to stop the trial.
Report = Callable[[int, float], None]


@dataclass(frozen=True)
class Workload:
    """What every tool runs, and the early-stopping strategy they share.

    Attributes:
        trials: Trials per run.
        steps: Steps per trial, each reported.
        step_seconds: Seconds each step sleeps.
        slots: Trials running at once.
        percentile, min_progression, min_curves: ``PercentileEarlyStoppingStrategy``'s
            options (our ``config["early_stopping"]`` keys).
    """

    trials: int = 40
    steps: int = 30
    step_seconds: float = 0.1
    slots: int = 4
    percentile: float = 50.0
    min_progression: int = 5
    min_curves: int = 5

    @property
    def budget(self) -> float:
        """Compute seconds if every trial ran every step."""
        return self.trials * self.steps * self.step_seconds

    def early_stopping(self) -> dict[str, float]:
        """Our ``config["early_stopping"]``."""
        return {
            "percentile": self.percentile,
            "min_progression": self.min_progression,
            "min_curves": self.min_curves,
        }

    def strategy(self) -> Any:
        """Ax's strategy with the same options, as our config builds it (imports Ax)."""
        from ax.early_stopping.strategies import PercentileEarlyStoppingStrategy

        return PercentileEarlyStoppingStrategy(
            percentile_threshold=self.percentile,
            min_progression=self.min_progression,
            min_curves=self.min_curves,
        )

    def describe(self) -> str:
        return (
            f"{self.trials} trials x {self.steps} steps x {self.step_seconds:g} s,"
            f" {self.slots} at a time (budget {self.budget:g} compute-s); stopping:"
            f" percentile {self.percentile:g}, min_progression {self.min_progression},"
            f" min_curves {self.min_curves}"
        )


def point_key(parameters: Params) -> str:
    """A point as text, the same in every process and tool."""
    return ",".join(f"{float(parameters[name]):.9f}" for name in NAMES)


def loss(parameters: Params, step: int, *, noisy: bool = True) -> float:
    """The curve at ``step``: x and y set where it ends, z how fast it gets there."""
    x, y, z = (float(parameters[name]) for name in NAMES)
    value = (x - 0.3) ** 2 + (y - 0.7) ** 2 + (0.6 + 0.4 * z) / (1 + step)
    if noisy:  # a str seed is hashed with SHA-512, not hash(): the same in every process
        value += random.Random(f"{point_key(parameters)}/{step}").gauss(0.0, NOISE_SD)
    return value


def run_curve(
    parameters: Params, report: Report, log_path: str, steps: int, seconds: float
) -> float:
    """One trial: ``steps`` steps of ``seconds``, each reported and logged.

    The log is what the bench counts compute from, for every tool alike: JSON
    lines (the start, each step's end and value, the end and how it came),
    appended with O_APPEND, so trials in other processes do not split a line.
    """
    key = point_key(parameters)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def log(**fields: Any) -> None:
        os.write(fd, (json.dumps({"k": key, "t": time.time(), **fields}) + "\n").encode())

    log(e="start", p={name: float(parameters[name]) for name in NAMES})
    ended = "done"
    try:
        for step in range(steps):
            time.sleep(seconds)
            value = loss(parameters, step)
            log(e="step", s=step, v=value)
            report(step, value)
        return value
    except BaseException as exc:
        ended = type(exc).__name__
        raise
    finally:
        log(e="end", why=ended)
        os.close(fd)


def ours_objective(
    log_path: str, steps: int, seconds: float, parameters: Params
) -> dict[str, float]:
    """Our function objective: each step goes out through ``ax_scheduler.report``."""
    from ax_scheduler import report

    def send(step: int, value: float) -> None:
        report({METRIC: value}, step=step)

    return {METRIC: run_curve(parameters, send, log_path, steps, seconds)}
