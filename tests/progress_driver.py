"""A script run by test_progress.py, in a pseudo-terminal or a pipe.

argv: ``on``/``off`` (the ``progress`` option). It logs at INFO through a
handler created before the display starts, so the test can check that log lines
come out whole.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from ax_scheduler import AxScheduler, JobLibRunner
from conftest import legacy_client


def objective(p: dict[str, Any]) -> dict[str, float]:
    time.sleep(0.4)
    if p["x"] < -1:
        raise ValueError(f"x={p['x']:.3f} is out of the model's range")
    return {"objective": p["x"] ** 2 + p["y"] ** 2}


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="LOG %(levelname)s %(message)s")
    logging.getLogger("ax_scheduler").setLevel(logging.INFO)
    config = {"progress": sys.argv[1] == "on", "job_output_dir": sys.argv[2]}
    with AxScheduler(legacy_client(), JobLibRunner(n_jobs=2), config=config) as scheduler:
        scheduler.set_objective_function(objective)
        scheduler.run_optimization(max_trials=8)
    print("run finished")
