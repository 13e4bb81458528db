"""A run kept in a database: Ax's SQL store, written a changed trial at a time.

Run it, then run it again: the first run creates the experiment in `campaign.db`
and runs 4 trials; each later run resumes from the database and runs 4 more.
`ax-scheduler status sqlite:///campaign.db` shows every trial, also while it runs.
"""

from pathlib import Path

from ax.service.ax_client import AxClient, ObjectiveProperties

from ax_scheduler import AxScheduler, JobLibRunner

DATABASE = "sqlite:///campaign.db"  # or "mysql+pymysql://user:password@host/campaign"


def simulate(parameterization):
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
    if Path("campaign.db").exists():
        scheduler = AxScheduler.resume(DATABASE, runner)
    else:
        scheduler = AxScheduler(new_experiment(), runner, {"checkpoint_path": DATABASE})
    with scheduler:
        scheduler.set_objective_function(simulate)
        scheduler.run_optimization(max_trials=4)
    print(f"{len(scheduler.experiment.trials)} trials in {DATABASE}")


if __name__ == "__main__":
    main()
