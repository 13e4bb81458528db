"""Per-trial overhead of container and script objectives, against running the same
program by hand, measured in one run.

Run from the repository root with a Docker engine up (``ci/start-docker.sh``)::

    DOCKER_HOST=unix:///tmp/localdocker/run/docker.sock python bench/container_overhead.py

For each way of running ``examples/simulate.py`` (one trial's program) it prints the
median wall time of N serial runs:

* ``docker run by hand``: ``subprocess.run(["docker", "run", "--rm", ...])``, the
  same command line DockerRunner builds, with params.json written beforehand.
* ``DockerRunner.run``: ax-scheduler's runner for one trial: writes params.json,
  runs the container, reads result.json (no Ax involved).
* ``script by hand`` / ``JobLibRunner script``: the same program as a local
  process, by hand and through ax-scheduler's script objective.

``overhead`` is ours minus by hand: what ax-scheduler adds per trial.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ax_scheduler import DockerRunner, JobLibRunner
from ax_scheduler._config import ContainerOptions, ScriptOptions
from ax_scheduler._container import container_name, docker_run_argv, make_container_objective
from ax_scheduler._jobs import Job
from ax_scheduler._script import make_script_objective

EXAMPLES = Path(__file__).parents[1] / "examples"
IMAGE = "hostusr:latest"
COMMAND = "/usr/bin/python3 /app/simulate.py {params_file} {output_file}"
PARAMS = {"x": 0.5, "y": 0.5}


def median_ms(samples: list[float]) -> float:
    return 1000 * statistics.median(samples)


def time_calls(call: Callable[[int], None], n: int) -> list[float]:
    times = []
    for i in range(n):
        started = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=15, help="runs per variant (default 15)")
    n = parser.parse_args().n
    root = Path(tempfile.mkdtemp(prefix="axs-bench-"))
    objective = make_container_objective(
        IMAGE,
        COMMAND,
        ContainerOptions(volumes={"/usr": "/usr:ro", str(EXAMPLES): "/app:ro"}, network="none"),
    )
    script = make_script_objective(
        EXAMPLES / "simulate.py",
        ScriptOptions(interpreter=sys.executable, args=["{params_file}", "{output_file}"]),
    )
    user = f"{os.getuid()}:{os.getgid()}"

    def job(kind: str, i: int, objective_: object) -> Job:
        return Job(i, dict(PARAMS), objective_, f"bench-{kind}-{i}", workdir=root / f"{kind}-{i}")  # type: ignore[arg-type]

    def docker_by_hand(i: int) -> None:
        trial = job("hand", i, objective)
        assert trial.workdir is not None
        trial.workdir.mkdir(parents=True)
        (trial.workdir / "params.json").write_text(json.dumps(PARAMS))
        argv = docker_run_argv("docker", objective, trial, container_name(trial, "hand"), user)
        subprocess.run(argv, check=True, capture_output=True)
        json.loads((trial.workdir / "result.json").read_text())

    runner = DockerRunner(max_parallel=1)
    asyncio.run(runner.start())

    async def time_runner(
        run: Callable[[Job], Any], kind: str, objective_: object, start: int
    ) -> list[float]:
        # One event loop for all runs, as in a scheduler: no per-call loop start-up.
        times = []
        for i in range(start, start + n // 2 + 1):
            trial = job(kind, i, objective_)
            started = time.perf_counter()
            await run(trial)
            times.append(time.perf_counter() - started)
        return times

    def script_by_hand(i: int) -> None:
        workdir = root / f"script-hand-{i}"
        workdir.mkdir(parents=True)
        (workdir / "params.json").write_text(json.dumps(PARAMS))
        argv = [sys.executable, str(EXAMPLES / "simulate.py"), "params.json", "result.json"]
        subprocess.run(argv, check=True, capture_output=True, cwd=workdir)
        json.loads((workdir / "result.json").read_text())

    local = JobLibRunner(n_jobs=1)

    rows = []
    results: dict[str, list[float]] = {name: [] for name in ("dh", "do", "sh", "so")}
    for _ in range(2):  # interleave two halves so drift hits every variant alike
        results["dh"] += time_calls(lambda i: docker_by_hand(i + len(results["dh"])), n // 2 + 1)
        results["do"] += asyncio.run(time_runner(runner.run, "ours", objective, len(results["do"])))
        results["sh"] += time_calls(lambda i: script_by_hand(i + len(results["sh"])), n // 2 + 1)
        results["so"] += asyncio.run(
            time_runner(local.run, "script-ours", script, len(results["so"]))
        )
    dh, do, sh, so = (median_ms(results[k]) for k in ("dh", "do", "sh", "so"))
    rows = [
        ("docker run by hand", dh, "-"),
        ("DockerRunner.run", do, f"{do - dh:+.1f} ms"),
        ("script by hand", sh, "-"),
        ("JobLibRunner script", so, f"{so - sh:+.1f} ms"),
    ]
    print(f"median of {len(results['dh'])} serial runs each (image {IMAGE}):")
    print(f"{'variant':22} | {'ms/trial':>9} | overhead")
    print(f"{'-' * 22}-+-{'-' * 9}-+---------")
    for name, ms, overhead in rows:
        print(f"{name:22} | {ms:9.1f} | {overhead}")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
