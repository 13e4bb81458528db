#!/usr/bin/env python3
"""A script objective: reads params.json, writes result.json, as users' scripts do."""

import json
import os
import sys

params_file, output_file = sys.argv[1], sys.argv[2]
with open(params_file) as file:
    p = json.load(file)
print(f"trial {os.environ['JOB_TRIAL_INDEX']} label={p.get('label')!s}")
print(f"extra env {os.environ.get('SIM_MODE')}", file=sys.stderr)
assert os.environ["JOB_PARAMS_FILE"] == params_file
assert os.environ["JOB_OUTPUT_FILE"] == output_file
assert os.getcwd() == os.environ["JOB_WORKDIR"]
value = (1 - p["x"]) ** 2 + 100 * (p["y"] - p["x"] ** 2) ** 2
with open(output_file, "w") as file:
    json.dump({"objective": [value, 0.0]}, file)
