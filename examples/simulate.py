#!/usr/bin/env python3
"""A stand-in for a simulation program: reads params.json, writes result.json.

Any executable works the same way: it finds its files in JOB_PARAMS_FILE and
JOB_OUTPUT_FILE (or as arguments, here), and what it prints lands in the trial's
stdout.log / stderr.log.
"""

import json
import sys

params_file, output_file = sys.argv[1], sys.argv[2]
with open(params_file) as file:
    params = json.load(file)

x, y = params["x"], params["y"]
energy = (1 - x) ** 2 + 100 * (y - x**2) ** 2
print(f"simulated x={x:.3f} y={y:.3f}: energy {energy:.3f}")

with open(output_file, "w") as file:
    json.dump({"objective": energy}, file)
