"""Watch a run, then look back at it: the log, the results table, the HTML report.

Run it in a terminal to see the live progress display:

    python examples/watch_and_report.py
"""

import logging
import time

from ax.service.ax_client import AxClient, ObjectiveProperties

from ax_scheduler import AxScheduler, JobLibRunner


def simulate(parameters):
    print(f"simulating x={parameters['x']:.3f}, y={parameters['y']:.3f}")  # -> stdout.log
    time.sleep(0.5)
    if parameters["x"] > 1.5:
        raise RuntimeError("the solver diverged")  # the trial is FAILED, the run goes on
    x, y = parameters["x"], parameters["y"]
    return {"objective": (1 - x) ** 2 + 100 * (y - x**2) ** 2}


if __name__ == "__main__":
    # The library only logs; the application chooses what to show.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    logging.getLogger("ax_scheduler").setLevel(logging.INFO)

    ax_client = AxClient(verbose_logging=False)
    ax_client.create_experiment(
        name="watched",
        parameters=[{"name": n, "type": "range", "bounds": [-2.0, 2.0]} for n in "xy"],
        objectives={"objective": ObjectiveProperties(minimize=True)},
    )
    config = {"job_output_dir": "trials"}  # one folder per trial: params, logs, result
    with AxScheduler(ax_client, JobLibRunner(n_jobs=2), config=config) as scheduler:
        scheduler.set_objective_function(simulate)
        scheduler.run_optimization(max_trials=8)  # the progress display shows meanwhile
        results = scheduler.results()
        scheduler.report("report.html")

    columns = ["trial_index", "status", "x", "y", "objective", "duration_s", "stdout"]
    print(results[columns].to_string(index=False))
    for row in results[results["status"] == "FAILED"].itertuples():
        print(f"trial {row.trial_index} failed: {row.failure_reason}")
    print("report written to report.html")
