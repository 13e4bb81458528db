"""Objectives that the Slurm benches run as jobs.

Jobs import this module by name (the bench's job config puts bench/ on the job's
PYTHONPATH), like a user's own module installed on the cluster: standard library
only, so a job does not pay for importing Ax.
"""

from __future__ import annotations

import time
from typing import Any


def sleepy_rosenbrock(p: dict[str, Any]) -> dict[str, float]:
    """Sleeps ``p["seconds"]``, then returns Rosenbrock at ``(x, y)``."""
    time.sleep(p["seconds"])
    return {"objective": (1 - p["x"]) ** 2 + 100 * (p["y"] - p["x"] ** 2) ** 2}
