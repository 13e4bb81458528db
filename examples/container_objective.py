"""Optimizing a containerized program: a container objective on DockerRunner.

Each trial is a `docker run --rm` of the image with the trial directory mounted at
/job. This example uses `hostusr:latest`, the tiny image `ci/start-docker.sh`
makes without a registry, which runs the host's python3 through a read-only /usr
mount; with your own image, drop that volume and use its interpreter.
"""

from pathlib import Path

from ax.service.ax_client import AxClient, ObjectiveProperties

from ax_scheduler import AxScheduler, DockerRunner

HERE = Path(__file__).parent.resolve()


def main():
    ax_client = AxClient()
    ax_client.create_experiment(
        name="container_demo",
        parameters=[
            {"name": "x", "type": "range", "bounds": [-2.0, 2.0], "value_type": "float"},
            {"name": "y", "type": "range", "bounds": [-2.0, 2.0], "value_type": "float"},
        ],
        objectives={"objective": ObjectiveProperties(minimize=True)},
    )
    config = {"job_output_dir": "container_runs"}
    with AxScheduler(ax_client, DockerRunner(max_parallel=2), config) as scheduler:
        scheduler.set_container_objective(
            container_image="hostusr:latest",
            container_command="/usr/bin/python3 /app/simulate.py {params_file} {output_file}",
            container_options={
                "volumes": {"/usr": "/usr:ro", str(HERE): "/app:ro"},
                "network": "none",
                "cpus": 1,
                "memory": "512m",
                "timeout": 600,
            },
        )
        with scheduler.batch_trial_context() as batch:
            batch.add_trial({"x": 0.5, "y": 0.5})
            batch.add_trial({"x": -0.5, "y": 0.5})
        best = scheduler.run_optimization(max_trials=4)

    print(f"best parameters: {best}")
    print(Path("container_runs/container_demo-trial-0/stdout.log").read_text().strip())


if __name__ == "__main__":
    main()
