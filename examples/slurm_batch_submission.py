"""The batch trial tutorial's complete example, on a Slurm cluster over SSH (docs/slurm.md).

The same script as batch_trial_submission.py with one change: the runner. Trials
run as tasks of Slurm job arrays on the cluster; the driver (this script) can run
on a laptop and reaches the login node over SSH. Where the cluster is, and how to
log in, comes from environment variables, so the script runs unchanged on any
cluster:

    SLURM_LOGIN_HOST, SLURM_LOGIN_PORT (22), SLURM_LOGIN_USER, SLURM_LOGIN_KEY,
    SLURM_KNOWN_HOSTS (~/.ssh/known_hosts), SLURM_PARTITION (the cluster's default),
    SLURM_PYTHON (python3: the cluster's Python, with cloudpickle installed),
    SLURM_JOB_DIR (ax_scheduler_jobs, under the remote home)

Functions defined in this script travel to the cluster by value (cloudpickle), so
nothing of it needs to be installed there.
"""

import os

from ax.service.ax_client import AxClient, ObjectiveProperties

from ax_scheduler import AxScheduler, SlurmRunner


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

    # Create a runner for Slurm, reached over SSH (host keys are verified)
    env = os.environ
    runner = SlurmRunner(
        partition=env.get("SLURM_PARTITION"),
        time_limit="00:10:00",
        memory="500M",
        cpus_per_task=1,
        config={
            "python": env.get("SLURM_PYTHON", "python3"),
            "job_dir": env.get("SLURM_JOB_DIR", "ax_scheduler_jobs"),
        },
        ssh={
            "host": env["SLURM_LOGIN_HOST"],
            "port": int(env.get("SLURM_LOGIN_PORT", "22")),
            "username": env.get("SLURM_LOGIN_USER"),
            "client_keys": [env["SLURM_LOGIN_KEY"]] if "SLURM_LOGIN_KEY" in env else None,
            "known_hosts": env.get("SLURM_KNOWN_HOSTS", "~/.ssh/known_hosts"),
        },
    )

    # Create the scheduler; Slurm is polled at most 5 s apart
    scheduler = AxScheduler(ax_client, runner, config={"monitoring_interval": 5})

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
    scheduler.save_experiment("slurm_batch_results.json")
    scheduler.close()  # disconnects; no job of ours is left in the queue


if __name__ == "__main__":
    main()
