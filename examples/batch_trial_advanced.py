"""The tutorial's two "Advanced" sections, run as written (docs/tutorial.md).

1. A batch of model-generated trials: `ax_client.get_next_trial()` four times
   inside the batch, run together on leaving the block (no duplicate trials).
2. Asynchronous batch execution: `synchronous=False`, ten model-generated trials,
   the block returns at once and `wait_for_completed_trials()` waits for them.

Ax refuses a 4th pending BoTorch candidate unless the client is created with
`AxClient(enforce_sequential_optimization=False)`, so this example does that.
"""

import time

from ax.service.ax_client import AxClient, ObjectiveProperties

from ax_scheduler import AxScheduler, JobLibRunner


def objective_function(parameterization):
    """Rosenbrock, taking a moment like a real simulation would."""
    time.sleep(0.2)
    x = parameterization["x"]
    y = parameterization["y"]
    return {"objective": (1 - x) ** 2 + 100 * (y - x**2) ** 2}


def make_client():
    ax_client = AxClient(enforce_sequential_optimization=False)
    ax_client.create_experiment(
        name="batch_trial_advanced",
        parameters=[
            {"name": "x", "type": "range", "bounds": [-2.0, 2.0], "value_type": "float"},
            {"name": "y", "type": "range", "bounds": [-2.0, 2.0], "value_type": "float"},
        ],
        objectives={"objective": ObjectiveProperties(minimize=True)},
    )
    return ax_client


def main():
    ax_client = make_client()
    runner = JobLibRunner(n_jobs=4)
    scheduler = AxScheduler(ax_client, runner)
    scheduler.set_objective_function(objective_function)

    # Advanced: Batch Trials with Ax Generation Strategy
    print("Running batch of model-generated trials...")
    with scheduler.batch_trial_context() as batch:
        # Generate multiple parameter sets using the model
        for _ in range(4):
            parameters, trial_index = ax_client.get_next_trial()
            # Add the trial to the batch
            batch.add_trial(parameters)
    print(f"Trials after the model-generated batch: {ax_client.experiment.num_trials}")

    # Advanced: Asynchronous Batch Execution
    # Create the scheduler with asynchronous execution
    scheduler = AxScheduler(
        ax_client,
        runner,
        config={
            "synchronous": False,  # Run trials asynchronously
            "monitoring_interval": 1,  # Check status every second
        },
    )

    # Set the objective function
    scheduler.set_objective_function(objective_function)

    # Create an asynchronous batch of trials
    with scheduler.batch_trial_context() as batch:
        for _ in range(10):
            parameters, trial_index = ax_client.get_next_trial()
            batch.add_trial(parameters)
        leaving = time.monotonic()
    running = len(scheduler.running_trials)
    print(f"Asynchronous batch submitted in {time.monotonic() - leaving:.2f} s;")
    print(f"{running} trials still running in the background")

    # Wait for all trials to complete
    scheduler.wait_for_completed_trials()
    counts = {}
    for trial in ax_client.experiment.trials.values():
        counts[trial.status.name] = counts.get(trial.status.name, 0) + 1
    print(f"All trials finished: {ax_client.experiment.num_trials} trials, {counts}")
    scheduler.close()


if __name__ == "__main__":
    main()
