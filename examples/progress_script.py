"""A script objective that reports while it runs: JSON lines in $JOB_PROGRESS_FILE.

Any program can do this (a C++ simulation, a shell loop): append one line per
step, ``{"step": <n>, "<metric>": <value>}``, to the file the variable names.
The early-stopping strategy may stop the trial; the script then gets SIGTERM.
"""

import json
import os
import time

with open(os.environ["JOB_PARAMS_FILE"]) as file:
    params = json.load(file)

loss = 0.0
with open(os.environ["JOB_PROGRESS_FILE"], "a") as progress:
    for epoch in range(20):
        time.sleep(0.04)  # one epoch of work
        loss = (params["lr"] - 0.3) ** 2 + (params["width"] - 0.6) ** 2 + 2.0 / (epoch + 1)
        progress.write(json.dumps({"step": epoch, "loss": loss}) + "\n")
        progress.flush()  # the driver reads whole lines as they come

with open(os.environ["JOB_OUTPUT_FILE"], "w") as file:
    json.dump({"loss": loss}, file)
