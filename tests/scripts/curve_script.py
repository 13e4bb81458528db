"""A script objective that appends progress lines to $JOB_PROGRESS_FILE.

Step 2's line is malformed on purpose (the driver must skip it and go on). A
SIGTERM (the driver's early stop) ends it at once, like most programs.
"""

import json
import os
import sys
import time

with open(os.environ["JOB_PARAMS_FILE"]) as file:
    params = json.load(file)
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
seconds = float(os.environ.get("CURVE_STEP_SECONDS", "0.03"))
if params["x"] ** 2 + params["y"] ** 2 > 1:
    seconds *= 4  # bad trials run longer: a stop lands before their end on a busy machine


def loss(step):
    return (params["x"] ** 2 + params["y"] ** 2 + 0.1) * (1 + 5 / (step + 1))


with open(os.environ["JOB_PROGRESS_FILE"], "a") as progress:
    for step in range(steps):
        time.sleep(seconds)
        line = (
            "{not json\n"
            if step == 2
            else json.dumps({"step": step, "objective": loss(step)}) + "\n"
        )
        progress.write(line)
        progress.flush()
with open(os.environ["JOB_OUTPUT_FILE"], "w") as file:
    json.dump({"objective": loss(steps - 1)}, file)
