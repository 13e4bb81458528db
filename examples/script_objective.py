"""Optimizing an external program: a script objective on the local runner.

Each trial runs `simulate.py` as its own process, in its own directory under
`job_output_dir`, with its parameters in `params.json`; the program writes
`result.json`. Parameter values reach it as data (an argv list and a JSON file),
never through a shell.
"""

from pathlib import Path

from ax.service.ax_client import AxClient, ObjectiveProperties

from ax_scheduler import AxScheduler, JobLibRunner

HERE = Path(__file__).parent


def main():
    ax_client = AxClient()
    ax_client.create_experiment(
        name="script_demo",
        parameters=[
            {"name": "x", "type": "range", "bounds": [-2.0, 2.0], "value_type": "float"},
            {"name": "y", "type": "range", "bounds": [-2.0, 2.0], "value_type": "float"},
        ],
        objectives={"objective": ObjectiveProperties(minimize=True)},
    )
    config = {"job_output_dir": "script_runs"}
    with AxScheduler(ax_client, JobLibRunner(n_jobs=4), config) as scheduler:
        scheduler.set_script_objective(
            HERE / "simulate.py",
            script_options={
                "interpreter": "python3",
                "args": ["{params_file}", "{output_file}"],
                "timeout": 600,  # seconds; the whole process group is stopped after
            },
        )
        best = scheduler.run_optimization(max_trials=8)

    print(f"best parameters: {best}")
    print(Path("script_runs/script_demo-trial-0/stdout.log").read_text().strip())


if __name__ == "__main__":
    main()
