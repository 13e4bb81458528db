"""The benchmark's objective, shared by every tool.

Kept free of Ax and of the other bench modules: worker processes import this
module to unpickle the objective, and must not pay for importing Ax.
"""

from __future__ import annotations

import os
import threading
import time

METRIC = "objective"


def rosenbrock(x: float, y: float) -> float:
    """Rosenbrock's banana function; minimum 0 at (1, 1)."""
    return (1.0 - x) ** 2 + 100.0 * (y - x * x) ** 2


def noop(parameters: dict[str, float]) -> dict[str, float]:
    """Rosenbrock at once, no log: bench/local_load.py's no-op trial."""
    return {METRIC: rosenbrock(parameters["x"], parameters["y"])}


def evaluate(log_path: str, sleep: float, parameters: dict[str, float]) -> dict[str, float]:
    """Rosenbrock after ``sleep`` seconds; appends when it ran to ``log_path``.

    The line holds the parameters (exactly, via repr), the worker (pid and thread:
    Optuna's slots are threads) and epoch start and end times, so the harness can
    tell when each tool noticed the result and how long each slot sat idle.
    """
    start = time.time()
    if sleep:
        time.sleep(sleep)
    value = rosenbrock(parameters["x"], parameters["y"])
    end = time.time()
    line = (
        f"{parameters['x']!r} {parameters['y']!r} {os.getpid()} {threading.get_ident()}"
        f" {start!r} {end!r}\n"
    )
    # One write() to an O_APPEND file: lines from concurrent workers never interleave.
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return {METRIC: value}
