"""What the scheduler keeps in a trial's run metadata, and how log lines name a job.

One small module that the Ax adapter, the results table and the core share, so
none of them imports another for a constant.
"""

from __future__ import annotations

import time
from typing import Any

#: Key under which the scheduler stores its bookkeeping in a trial's run metadata.
RUN_METADATA_KEY = "ax_scheduler"

#: What identifies a job in log lines, most specific first (job_dir only when re-attaching).
HANDLE_KEYS = ("slurm_job_id", "host", "pid", "container", "job_dir")


def dispatch_info(runner: str) -> dict[str, Any]:
    """The facts recorded when a trial is handed to a runner."""
    return {"runner": runner, "dispatched_at": time.time()}


def describe_job(runner: str, info: dict[str, Any]) -> str:
    """``joblib`` / ``slurm, slurm_job_id=12_3`` / ``ssh, host=node1, pid=42`` for log lines."""
    return ", ".join([runner, *_handle_fields(info, HANDLE_KEYS[:-1])])


def where(info: dict[str, Any]) -> str:
    """Where a re-attached job is: ``slurm_job_id=12_3``, ``job_dir=...``."""
    return ", ".join(_handle_fields(info, HANDLE_KEYS)) or "(no handle)"


def _handle_fields(info: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    return [f"{key}={info[key]}" for key in keys if info.get(key) is not None]
