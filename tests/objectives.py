"""Objective functions for tests. Module-level so loky workers can import them."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any


def rosenbrock(p: dict[str, Any]) -> float:
    return (1 - p["x"]) ** 2 + 100 * (p["y"] - p["x"] ** 2) ** 2


def rosenbrock_dict(p: dict[str, Any]) -> dict[str, float]:
    return {"objective": rosenbrock(p)}


def rosenbrock_bare(p: dict[str, Any]) -> float:
    return rosenbrock(p)


def rosenbrock_with_sem(p: dict[str, Any]) -> dict[str, tuple[float, float]]:
    return {"objective": (rosenbrock(p), 0.0)}


def slow_rosenbrock(p: dict[str, Any]) -> dict[str, float]:
    time.sleep(0.3)
    return rosenbrock_dict(p)


def one_second_rosenbrock(p: dict[str, Any]) -> dict[str, float]:
    time.sleep(1.0)
    return rosenbrock_dict(p)


def three_second_rosenbrock(p: dict[str, Any]) -> dict[str, float]:
    time.sleep(3.0)
    return rosenbrock_dict(p)


def sleep_forever(p: dict[str, Any]) -> dict[str, float]:
    """Writes its pid so a test can check the process was killed."""
    marker = os.environ.get("AX_SCHEDULER_TEST_PID_DIR")
    if marker:
        with open(os.path.join(marker, f"{os.getpid()}.pid"), "w") as file:
            file.write(str(os.getpid()))
    time.sleep(3600)
    return rosenbrock_dict(p)


def fails_when_x_negative(p: dict[str, Any]) -> dict[str, float]:
    if p["x"] < 0:
        raise ZeroDivisionError(f"simulated crash at x={p['x']}")
    return rosenbrock_dict(p)


def dies_when_x_negative(p: dict[str, Any]) -> dict[str, float]:
    if p["x"] < 0:
        os._exit(13)
    time.sleep(0.5)
    return rosenbrock_dict(p)


def segfaults_when_x_negative(p: dict[str, Any]) -> dict[str, float]:
    if p["x"] < 0:
        import ctypes

        ctypes.string_at(0)
    time.sleep(0.5)
    return rosenbrock_dict(p)


def returns_by_x(p: dict[str, Any]) -> Any:
    """Bad results chosen by x: missing metric, NaN, a string, or fine."""
    x = p["x"]
    if x == -1.0:
        return {"other": 1.0}
    if x == -0.5:
        return {"objective": float("nan")}
    if x == 0.0:
        return {"objective": "high"}
    return {"objective": rosenbrock(p), "not_a_metric": 3}


def two_objectives(p: dict[str, Any]) -> dict[str, float]:
    return {"a": (p["x"] - 1) ** 2 + p["y"] ** 2, "b": (p["x"] + 1) ** 2 + p["y"] ** 2}


async def async_rosenbrock(p: dict[str, Any]) -> dict[str, float]:
    await asyncio.sleep(0.5)
    return rosenbrock_dict(p)


async def async_fails(p: dict[str, Any]) -> dict[str, float]:
    await asyncio.sleep(0)
    raise RuntimeError("async objective broke")


def always_fails(p: dict[str, Any]) -> dict[str, float]:
    raise RuntimeError(f"solver diverged at x={p['x']:.3f}")


def returns_for_negative_x(returned: Any, p: dict[str, Any]) -> Any:
    """``returned`` as the result when x < 0, Rosenbrock's value otherwise.

    Bind ``returned`` with functools.partial: one batch then holds a trial with a
    bad result and a good trial next to it.
    """
    return returned if p["x"] < 0 else rosenbrock_dict(p)


def dies_on_first_attempt(marker_dir: str, p: dict[str, Any]) -> dict[str, float]:
    """Kills its worker the first time it runs for these parameters (a flaky node)."""
    marker = os.path.join(marker_dir, f"{p['x']:.6f}")
    with open(marker, "a") as file:
        file.write("attempt\n")
    with open(marker) as file:
        if len(file.read().split()) == 1:
            os._exit(9)
    return rosenbrock_dict(p)


def one_second_counted(marker_dir: str, p: dict[str, Any]) -> dict[str, float]:
    """Counts its calls per parameters in ``marker_dir``, then sleeps a second."""
    with open(os.path.join(marker_dir, f"{p['x']:.6f}"), "a") as file:
        file.write("call\n")
    time.sleep(1.0)
    return rosenbrock_dict(p)


def chatty_fails_when_x_negative(p: dict[str, Any]) -> dict[str, float]:
    """Prints through Python and straight to the file descriptors, then fails for x < 0."""
    import sys

    print(f"python stdout x={p['x']}")
    print(f"python stderr x={p['x']}", file=sys.stderr)
    os.write(1, b"fd stdout\n")
    return fails_when_x_negative(p)
