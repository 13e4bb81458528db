"""The older `scheduler` package's enhanced detector example, moved to ax-scheduler.

Three objectives make it a multi-objective experiment, so `run_optimization`
returns the list of Pareto-optimal parameterizations, not one dict: the older
example's `best_params["field_strength"]` needs a point picked first. Its
`JobLibRunner(config={"tmp_dir": ..., "container_engine": ...})` keys have no
meaning here (docs/migrating.md says what to write instead), and its `JobType`
import is gone: the setter you call says what kind of objective it is. The test
suite runs this file.
"""

import math

from ax.service.ax_client import AxClient, ObjectiveProperties

from ax_scheduler import AxScheduler, JobLibRunner  # was: ..., JobType, Job


def evaluate_detector_design(field_strength, detector_length, detector_radius):
    """A stand-in for the detector simulation: resolution, acceptance and cost."""
    resolution = (
        0.1 / field_strength * (1 + math.exp(-detector_length)) * (1 + math.exp(-detector_radius))
    )
    acceptance = (1 - math.exp(-detector_length * detector_radius)) * 100
    cost = field_strength * 2 + detector_length * 10 + detector_radius * 15
    return {"resolution": resolution, "acceptance": acceptance, "cost": cost}


def optimization_function(parameterization):
    return evaluate_detector_design(**parameterization)


def main():
    ax_client = AxClient()
    ax_client.create_experiment(
        name="epic_detector_optimization",
        parameters=[
            {"name": "field_strength", "type": "range", "bounds": [0.5, 3.0]},
            {"name": "detector_length", "type": "range", "bounds": [3.0, 8.0]},
            {"name": "detector_radius", "type": "range", "bounds": [0.8, 2.5]},
        ],
        # was: {"resolution": "minimize", "acceptance": "maximize", "cost": "minimize"}
        objectives={
            "resolution": ObjectiveProperties(minimize=True, threshold=0.2),
            "acceptance": ObjectiveProperties(minimize=False, threshold=50.0),
            "cost": ObjectiveProperties(minimize=True, threshold=150.0),
        },
    )
    # was: JobLibRunner(n_jobs=-1, config={"tmp_dir": "./tmp", "container_engine": "docker"})
    runner = JobLibRunner(n_jobs=2)
    config = {"job_output_dir": "./detector_outputs", "cleanup_after_completion": True}
    with AxScheduler(ax_client, runner, config=config) as scheduler:
        scheduler.set_objective_function(optimization_function)
        best_params = scheduler.run_optimization(max_trials=6)

    # Multi-objective: a list of Pareto-optimal parameterizations. Pick a point.
    first = best_params[0]
    best_metrics = evaluate_detector_design(**first)
    print(f"{len(best_params)} Pareto-optimal designs; the first:", first)
    for metric, value in best_metrics.items():
        print(f"{metric}: {value:.4f}")


if __name__ == "__main__":
    main()
