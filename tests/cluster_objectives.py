"""Objectives that tests run as Slurm jobs. Jobs import this module by name (the
test runner's job config puts tests/ on the job's PYTHONPATH), like a user's own
module installed on the cluster."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any


def rosenbrock(p: dict[str, Any]) -> dict[str, float]:
    return {"objective": (1 - p["x"]) ** 2 + 100 * (p["y"] - p["x"] ** 2) ** 2}


def slow_rosenbrock(p: dict[str, Any]) -> dict[str, float]:
    time.sleep(float(os.environ.get("AXS_TEST_SLEEP", "3")))
    return rosenbrock(p)


def counted_rosenbrock(p: dict[str, Any]) -> dict[str, float]:
    """Appends one line per call to $AXS_TEST_CALLS (a shared directory): run exactly once?"""
    calls = os.environ["AXS_TEST_CALLS"]
    with open(os.path.join(calls, f"{p['x']:.6f}"), "a") as file:
        file.write(f"{os.environ.get('SLURM_JOB_ID')}\n")
    time.sleep(4)
    return rosenbrock(p)


def sleeps_long(p: dict[str, Any]) -> dict[str, float]:
    """Starts a child process too, and writes both pids to its trial directory (the
    worker's cwd): cancelling must end both."""
    child = subprocess.Popen(["sleep", "600"])
    with open("pids", "w") as file:
        file.write(f"{os.getpid()} {child.pid}\n")
    time.sleep(600)
    return rosenbrock(p)


def by_mode(p: dict[str, Any]) -> dict[str, float]:
    """Fails in the way its ``mode`` parameter names."""
    mode = p["mode"]
    if mode == "raise":
        raise ValueError(f"simulated crash at x={p['x']}")
    if mode == "memory":
        hog = bytearray(600 * 1024 * 1024)
        for i in range(0, len(hog), 4096):
            hog[i] = 1
        time.sleep(30)  # memory is sampled every second: killed long before this ends
    if mode == "exit":
        os._exit(3)
    if mode == "forever":
        time.sleep(600)
    return {"objective": p["x"] ** 2}
