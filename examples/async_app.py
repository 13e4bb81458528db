"""Embedding ax-scheduler in an asyncio application.

The scheduler runs on the application's own event loop. While Ax fits BoTorch
models (in a worker thread) and trials run (in worker processes), the loop stays
free: here a heartbeat task stands in for the rest of the app (a web server, a
UI) and reports the longest time it had to wait for the loop.
"""

import asyncio
import time

from ax.service.ax_client import AxClient, ObjectiveProperties

from ax_scheduler import AxScheduler, JobLibRunner


def simulate(parameterization):
    """A stand-in for an expensive simulation."""
    time.sleep(0.2)
    x, y = parameterization["x"], parameterization["y"]
    return {"objective": (1 - x) ** 2 + 100 * (y - x**2) ** 2}


async def heartbeat(gaps):
    """Tick every 10 ms and record how late each tick was."""
    while True:
        before = time.perf_counter()
        await asyncio.sleep(0.01)
        gaps.append(time.perf_counter() - before - 0.01)


async def main():
    ax_client = AxClient(verbose_logging=False)
    ax_client.create_experiment(
        name="async_app",
        parameters=[
            {"name": "x", "type": "range", "bounds": [-2.0, 2.0], "value_type": "float"},
            {"name": "y", "type": "range", "bounds": [-2.0, 2.0], "value_type": "float"},
        ],
        objectives={"objective": ObjectiveProperties(minimize=True)},
    )
    gaps = []
    ticker = asyncio.create_task(heartbeat(gaps))
    async with AxScheduler(ax_client, JobLibRunner(n_jobs=4)) as scheduler:
        scheduler.set_objective_function(simulate)

        # A few hand-picked starting points, run together.
        async with scheduler.batch_trial_context_async() as batch:
            batch.add_trial({"x": 0.0, "y": 0.0})
            batch.add_trial({"x": 1.5, "y": 1.5})

        # Then Bayesian optimization, four trials at a time.
        best = await scheduler.run_optimization_async(max_trials=12)
    ticker.cancel()

    print(f"trials: {ax_client.experiment.num_trials}")
    print(f"best parameters: {best}")
    print(f"largest heartbeat gap: {max(gaps) * 1000:.1f} ms over {len(gaps)} ticks")


if __name__ == "__main__":
    asyncio.run(main())
