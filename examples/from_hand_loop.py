"""A hand-written ask/tell loop over a process pool, and the same run with AxScheduler.

docs/coming-from-ax.md shows the two functions side by side. Running this file runs
each on an experiment of its own and prints what it found.
"""

import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from ax.exceptions.core import DataRequiredError
from ax.exceptions.generation_strategy import MaxParallelismReachedException
from ax.service.ax_client import AxClient, ObjectiveProperties

from ax_scheduler import AxScheduler, JobLibRunner


def simulate(parameters):
    time.sleep(0.2)  # stands in for the real work
    x, y = parameters["x"], parameters["y"]
    return {"objective": (1 - x) ** 2 + 100 * (y - x**2) ** 2}


def make_client():
    ax_client = AxClient(verbose_logging=False)
    ax_client.create_experiment(
        name="coming_from_a_loop",
        parameters=[{"name": name, "type": "range", "bounds": [-2.0, 2.0]} for name in "xy"],
        objectives={"objective": ObjectiveProperties(minimize=True)},
    )
    return ax_client


def hand_written_loop(ax_client, max_trials, slots=4):
    running = {}  # future -> trial index
    launched = 0
    with ProcessPoolExecutor(slots) as pool:
        while running or launched < max_trials:
            # Fill the free slots, as far as Ax proposes candidates without new data.
            while len(running) < slots and launched < max_trials:
                try:
                    parameters, index = ax_client.get_next_trial()
                except (MaxParallelismReachedException, DataRequiredError):
                    break
                running[pool.submit(simulate, parameters)] = index
                launched += 1
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                index = running.pop(future)
                if future.exception() is None:
                    ax_client.complete_trial(index, raw_data=future.result())
                else:
                    ax_client.log_trial_failure(index)
    return ax_client.get_best_parameters()[0]


def with_ax_scheduler(ax_client, max_trials, slots=4):
    with AxScheduler(ax_client, JobLibRunner(n_jobs=slots)) as scheduler:
        scheduler.set_objective_function(simulate)
        return scheduler.run_optimization(max_trials=max_trials)


def main():
    for run in (hand_written_loop, with_ax_scheduler):
        ax_client = make_client()
        best = run(ax_client, max_trials=12)
        trials = ax_client.experiment.trials.values()
        completed = sum(trial.status.is_completed for trial in trials)
        print(f"{run.__name__}: {completed} of {len(trials)} trials completed")
        print(f"{run.__name__}: best parameters: {best}")


if __name__ == "__main__":
    main()
