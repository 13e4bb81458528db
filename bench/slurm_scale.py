"""SlurmRunner at scale on the local cluster: N one-second trials as job arrays.

Run from the repository root with the cluster up (``bash ci/start-slurm.sh``)::

    python bench/slurm_scale.py            # 200 trials
    python bench/slurm_scale.py -n 40      # quicker

One ``batch_trial_context`` of N trials (each sleeps ``--seconds``) goes to Slurm over
SSH. Printed: sbatch calls, status commands per polling tick, time to submit the
batch, and the wall time against two references measured in the same run:

* ``ideal``: N x seconds / CPUs of the cluster (perfect packing, zero overhead);
* ``bare array``: the same N tasks as one hand-written ``sbatch --array`` of
  ``sleep`` (no Python, no files, no Ax), timed from submission until sacct shows
  every task finished, polled every 0.5 s: what the cluster itself costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from ax.service.ax_client import AxClient, ObjectiveProperties

from ax_scheduler import AxScheduler, SlurmRunner
from cluster import PollCounter, cluster_env, ssh_options


def sleepy(p: dict[str, Any]) -> dict[str, float]:
    time.sleep(p["seconds"])
    return {"objective": p["x"] ** 2}


def cluster_cpus(env: dict[str, str]) -> int:
    out = subprocess.run(
        ["sinfo", "-h", "-o", "%C"], capture_output=True, text=True, check=True, env=env
    ).stdout
    return int(out.strip().split("/")[-1])  # allocated/idle/other/total


def bare_array(n: int, seconds: float, workdir: Path, env: dict[str, str]) -> float:
    """Wall time of the same tasks as a plain sbatch array, until sacct shows them done."""
    started = time.monotonic()
    job = subprocess.run(
        [
            "sbatch",
            "--parsable",
            f"--array=0-{n - 1}",
            "--mem=100M",
            f"--output={workdir}/bare-%a.out",
            f"--wrap=sleep {seconds}",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.split(";")[0]
    while True:
        time.sleep(0.5)
        out = subprocess.run(
            ["sacct", "-n", "-P", "-X", "-j", job, "-o", "JobID,State"],
            capture_output=True,
            text=True,
            env=env,
        ).stdout
        done = [line for line in out.splitlines() if "COMPLETED" in line or "FAILED" in line]
        if len(done) == n and "[" not in out:
            return time.monotonic() - started


async def ours(n: int, seconds: float, workdir: Path) -> dict[str, Any]:
    client = AxClient(verbose_logging=False)
    client.create_experiment(
        name="slurm_scale",
        parameters=[
            {"name": "x", "type": "range", "bounds": [-2.0, 2.0], "value_type": "float"},
            {"name": "seconds", "type": "fixed", "value": seconds},
        ],
        objectives={"objective": ObjectiveProperties(minimize=True)},
    )
    clock = PollCounter()
    ticks = clock.ticks

    runner = SlurmRunner(
        partition=cluster_env()["LOCALSLURM_PARTITION"],
        time_limit="00:10:00",
        memory="100M",
        config={
            "python": sys.executable,
            "job_dir": str(workdir / "jobs"),
            "max_parallel": n,
            "monitoring_interval": 2,
        },
        ssh=ssh_options(),
        clock=clock,
    )
    sent: list[str] = []
    submitted_at: list[float] = []
    real_run = runner.transport.run

    async def recording_run(argv: Any, **kwargs: Any) -> Any:
        sent.append(argv[0])
        result = await real_run(argv, **kwargs)
        if argv[0] == "sbatch" and "--test-only" not in argv:
            submitted_at.append(time.monotonic())
        return result

    runner.transport.run = recording_run  # type: ignore[method-assign]
    async with AxScheduler(client, runner, config={"synchronous": False}) as scheduler:
        scheduler.set_objective_function(sleepy)
        await runner.start()  # connecting and checking options is not the batch's cost
        started = time.monotonic()
        async with scheduler.batch_trial_context_async() as batch:
            for i in range(n):
                batch.add_trial({"x": i / n, "seconds": seconds})
        await scheduler.wait_for_completed_trials_async()
        wall = time.monotonic() - started
        submitted = max(submitted_at) - started
    statuses = {t.status.name for t in client.experiment.trials.values()}
    return {
        "wall": wall,
        "submitted": submitted,
        "sbatch": sent.count("sbatch") - 1,  # minus the --test-only check at start
        "sacct": sent.count("sacct"),
        "ticks": len(ticks),
        "statuses": statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=200, help="trials (default 200)")
    parser.add_argument("--seconds", type=float, default=1.0, help="each trial's sleep")
    args = parser.parse_args()
    env = {**os.environ, **cluster_env()}
    cpus = cluster_cpus(env)
    ideal = args.n * args.seconds / cpus
    with tempfile.TemporaryDirectory(prefix="axs-bench-") as tmp:
        workdir = Path(tmp)
        bare = bare_array(args.n, args.seconds, workdir, env)
        result = asyncio.run(ours(args.n, args.seconds, workdir))
    print(f"{args.n} trials x {args.seconds:g} s on {cpus} CPUs: ideal {ideal:.1f} s")
    print(f"trial states: {sorted(result['statuses'])}")
    print(f"sbatch calls:             {result['sbatch']}")
    print(
        f"status commands per tick: {result['sacct'] / max(result['ticks'], 1):.2f}"
        f" ({result['sacct']} sacct over {result['ticks']} ticks)"
    )
    print(f"batch submitted in:       {result['submitted']:.2f} s")
    print(f"{'':26}{'wall s':>8}{'efficiency':>12}{'vs bare':>9}")
    print(f"{'bare sbatch --array':26}{bare:8.1f}{ideal / bare:12.3f}{1:9.2f}")
    print(
        f"{'ax-scheduler SlurmRunner':26}{result['wall']:8.1f}{ideal / result['wall']:12.3f}"
        f"{result['wall'] / bare:9.2f}"
    )


if __name__ == "__main__":
    main()
