"""The batch trial tutorial's complete example (docs/tutorial.md), end to end.

Two deliberate differences from the older `scheduler` package's tutorial: the import
is `from ax_scheduler import ...`, and the objective is declared with Ax's
`ObjectiveProperties(minimize=True)` (Ax rejects the string "minimize").
"""

from ax.service.ax_client import AxClient, ObjectiveProperties

from ax_scheduler import AxScheduler, JobLibRunner


def objective_function(parameterization):
    """Simple objective function for demonstration."""
    x = parameterization["x"]
    y = parameterization["y"]

    # Simple objective function: Rosenbrock function
    a = 1
    b = 100
    objective = (a - x) ** 2 + b * (y - x**2) ** 2

    return {"objective": objective}


def main():
    # Initialize Ax client
    ax_client = AxClient()

    # Define the parameter space
    ax_client.create_experiment(
        name="batch_trial_demo",
        parameters=[
            {
                "name": "x",
                "type": "range",
                "bounds": [-2.0, 2.0],
                "value_type": "float",
            },
            {
                "name": "y",
                "type": "range",
                "bounds": [-2.0, 2.0],
                "value_type": "float",
            },
        ],
        objectives={"objective": ObjectiveProperties(minimize=True)},
    )

    # Create a runner for local execution
    runner = JobLibRunner(n_jobs=4)  # Use 4 cores

    # Create the scheduler
    scheduler = AxScheduler(ax_client, runner)

    # Set the objective function
    scheduler.set_objective_function(objective_function)

    # Create a batch of trials with manually specified values
    print("Running batch of manually specified trials...")
    with scheduler.batch_trial_context() as batch:
        # Add trials with specific parameter values
        batch.add_trial({"x": 0.5, "y": 0.5})
        batch.add_trial({"x": -0.5, "y": 0.5})
        batch.add_trial({"x": 0.5, "y": -0.5})
        batch.add_trial({"x": -0.5, "y": -0.5})

    # Print results of the batch trials
    print("\nResults from batch trials:")
    for trial_idx in range(ax_client.experiment.num_trials):
        trial = ax_client.experiment.trials[trial_idx]
        params = trial.arm.parameters
        metrics = trial.objective_mean
        print(f"Trial {trial_idx}: Params {params}, Objective: {metrics}")

    # Run more trials using standard optimization
    print("\nRunning additional optimization trials...")
    best_params = scheduler.run_optimization(max_trials=6)  # 6 more trials

    # Print the final results
    print("\nBest parameters after all trials:")
    print(best_params)

    # Save the experiment for later analysis
    scheduler.save_experiment("batch_trial_results.json")


if __name__ == "__main__":
    main()
