"""Early stopping: trials report while they run, and the bad ones stop early.

A training-like objective reports its loss after every epoch with
``ax_scheduler.report``; Ax's percentile strategy stops a trial whose loss is
worse than the median of the others at the same epoch. With ``--script`` the same
objective is a script (examples/progress_script.py) that appends progress lines
to ``$JOB_PROGRESS_FILE``.
"""

import sys
import time
from pathlib import Path

from ax.api.client import Client
from ax.api.configs import RangeParameterConfig

from ax_scheduler import AxScheduler, JobLibRunner, report


def train(parameters):
    """20 epochs of a stand-in training run; its loss is reported after each."""
    loss = 0.0
    for epoch in range(20):
        time.sleep(0.04)  # one epoch of work
        loss = (parameters["lr"] - 0.3) ** 2 + (parameters["width"] - 0.6) ** 2 + 2.0 / (epoch + 1)
        report({"loss": loss}, step=epoch)
    return {"loss": loss}


client = Client(random_seed=0)
client.configure_experiment(
    name="early_stopping",
    parameters=[
        RangeParameterConfig(name="lr", parameter_type="float", bounds=(0.0, 1.0)),
        RangeParameterConfig(name="width", parameter_type="float", bounds=(0.0, 1.0)),
    ],
)
client.configure_optimization(objective="-loss")

config = {
    # Stop a trial worse than 50 % of the others at the same epoch, from epoch 8
    # on, once 3 trials have whole curves.
    "early_stopping": {"percentile": 50, "min_progression": 8, "min_curves": 3},
    "early_stopping_grace": 5.0,  # seconds to end by itself before it is killed
}
scheduler = AxScheduler(client, JobLibRunner(n_jobs=2), config=config)
if "--script" in sys.argv:
    script = Path(__file__).with_name("progress_script.py")
    scheduler.set_script_objective(script, {"interpreter": sys.executable})
else:
    scheduler.set_objective_function(train)

best = scheduler.run_optimization(max_trials=8)
summary = scheduler.last_run
print(f"best parameters: {best}")
print(f"completed: {summary.completed}")
print(f"stopped early: {sorted(summary.early_stopped)}")
for index, reason in sorted(summary.early_stopped.items()):
    print(f"  trial {index}: {reason}")
scheduler.close()
