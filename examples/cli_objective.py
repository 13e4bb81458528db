"""Objectives of the experiment files in this directory (`ax-scheduler run experiment.yaml`).

An experiment file names one as `cli_objective:rosenbrock`: the module is found
next to the file.
"""

import math


def rosenbrock(parameters):
    """Rosenbrock's banana function: its minimum, 0, is at x = y = 1."""
    x, y = parameters["x"], parameters["y"]
    return {"loss": (1 - x) ** 2 + 100 * (y - x**2) ** 2}


def simulate(parameters):
    """A stand-in for a simulation with two objectives and a memory budget."""
    loss = rosenbrock(parameters)["loss"]
    steps = 200 if parameters["solver"] == "cg" else 120
    return {"loss": loss, "runtime": steps / (1 + abs(parameters["x"])), "memory": 1.5}


def train(parameters):
    """A stand-in for training a model: accuracy peaks at learning_rate 0.01, 4 layers."""
    distance = math.log10(parameters["learning_rate"] / 0.01) ** 2 + (parameters["layers"] - 4) ** 2
    return {"accuracy": 0.95 * math.exp(-distance / 8)}
