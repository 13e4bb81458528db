"""A campaign that survives its driver: run it, kill it, run it again.

The first run creates the experiment and writes `campaign.json` after every change
of a trial's state. Kill it any way you like (Ctrl-C, `kill -9`, a reboot) and
start it again: it resumes from the checkpoint, re-attaches what can be
re-attached, and runs only the trials still missing. On the local pool, a
function trial cut short dies with its worker process (`requeue_lost_trials`
runs its parameters again); one whose result reached its trial folder is
collected, one that had not started runs now.
"""

import time
from pathlib import Path

from ax.service.ax_client import AxClient, ObjectiveProperties

from ax_scheduler import AxScheduler, JobLibRunner

CHECKPOINT = Path("campaign.json")
TOTAL_TRIALS = 12


def simulate(parameterization):
    time.sleep(1.0)  # the expensive part
    x, y = parameterization["x"], parameterization["y"]
    return {"objective": (1 - x) ** 2 + 100 * (y - x**2) ** 2}


def new_experiment():
    ax_client = AxClient()
    ax_client.create_experiment(
        name="campaign",
        parameters=[
            {"name": "x", "type": "range", "bounds": [-2.0, 2.0], "value_type": "float"},
            {"name": "y", "type": "range", "bounds": [-2.0, 2.0], "value_type": "float"},
        ],
        objectives={"objective": ObjectiveProperties(minimize=True)},
    )
    return ax_client


def main():
    runner = JobLibRunner(n_jobs=2)
    if CHECKPOINT.exists():
        scheduler = AxScheduler.resume(CHECKPOINT, runner)
    else:
        config = {
            "checkpoint_path": str(CHECKPOINT),
            "trial_timeout": 600,  # a hung trial is killed and FAILED with "timeout"
            "max_retries": 2,  # a dead worker's trial runs again, twice at most
            "requeue_lost_trials": True,  # on resume, rerun trials the crash killed
        }
        scheduler = AxScheduler(new_experiment(), runner, config)

    with scheduler:
        scheduler.set_objective_function(simulate)
        scheduler.wait_for_completed_trials()  # the re-attached trials of a resumed run
        remaining = TOTAL_TRIALS - len(scheduler.experiment.trials)
        best = scheduler.run_optimization(
            max_trials=max(remaining, 0), timeout=3600, on_timeout="finish"
        )

    summary = scheduler.last_run
    print(f"this run: {len(summary.trials)} trials, {len(summary.completed)} completed")
    for index, reason in summary.failed.items():
        print(f"trial {index} failed: {reason}")
    if summary.timed_out:
        print(f"timed out; running trials were left to {summary.on_timeout}")
    print("best parameters:", best)


if __name__ == "__main__":
    main()
