"""Code written for the older `scheduler` package, moved to ax-scheduler.

docs/migrating.md quotes this file and says why each change is needed. The test
suite runs it.
"""

from pathlib import Path

from ax.service.ax_client import AxClient, ObjectiveProperties

from ax_scheduler import AxScheduler, JobLibRunner  # was: from scheduler import ...

HERE = Path(__file__).parent


def objective_function(x, y):
    """Written for the older package, which called it as fn(**parameters)."""
    return {"objective": (1 - x) ** 2 + 100 * (y - x**2) ** 2}


def main():
    ax_client = AxClient()
    ax_client.create_experiment(
        name="migrated",
        parameters=[
            {"name": "x", "type": "range", "bounds": [-2.0, 2.0], "value_type": "float"},
            {"name": "y", "type": "range", "bounds": [-2.0, 2.0], "value_type": "float"},
        ],
        # was: objectives={"objective": "minimize"}, which Ax 1.x rejects
        objectives={"objective": ObjectiveProperties(minimize=True)},
    )

    # n_jobs is how many trials run at once (the older default was -1, all cores).
    with AxScheduler(ax_client, JobLibRunner(n_jobs=4)) as scheduler:
        # ax-scheduler passes one dict, fn(parameters): unpack it for fn(x, y).
        scheduler.set_objective_function(lambda parameters: objective_function(**parameters))
        with scheduler.batch_trial_context() as batch:
            batch.add_trial({"x": 0.5, "y": 0.5})
            batch.add_trial({"x": -0.5, "y": 0.5})
        scheduler.save_experiment("migrated.json")  # the client's snapshot, not only the experiment

    # load_experiment is a classmethod: it returns a new scheduler for the saved run.
    scheduler = AxScheduler.load_experiment("migrated.json", JobLibRunner(n_jobs=4))
    with scheduler:
        # A script needs its interpreter named (or to be executable itself).
        scheduler.set_script_objective(
            HERE / "simulate.py",
            script_options={"interpreter": "python3", "args": ["{params_file}", "{output_file}"]},
        )
        best = scheduler.run_optimization(max_trials=4)
        statuses = [trial.status.name for trial in scheduler.experiment.trials.values()]

    print(f"trials: {len(statuses)}, completed: {statuses.count('COMPLETED')}")
    print("best parameters:", best)


if __name__ == "__main__":
    main()
