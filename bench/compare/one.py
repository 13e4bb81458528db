"""One timed run of one tool, in a fresh interpreter: ``python -m bench.compare.one``.

The suite runs every (tool, rep) here so that no tool measures in a process that
another tool changed: a pool forked from the driver (the hand loop's, the
Orchestrators') left later BoTorch runs in the same process 25-35 % slower,
measured. Prints the :class:`Run` as one JSON line.
"""

from __future__ import annotations

import dataclasses
import json
import sys

from .common import Run, Workload


def warm_up() -> None:
    """Untimed: import what the tools import lazily (Ax's generators, BoTorch).

    Imports only, no computation: the first thread to run torch's OpenMP code
    keeps its thread team, and a later thread's team then spins less (libgomp
    throttles when teams outnumber the cores: 1.5 s became 2.6 s for the same
    matrix products, measured), which would favour whichever tool warmed up.
    """
    import ax.generators.torch.botorch_modular.generator  # noqa: F401
    import botorch.acquisition  # noqa: F401
    import gpytorch  # noqa: F401


def run_as_json(tool_name: str, workload_json: str, log_path: str) -> str:
    """Run the tool named ``tool_name`` once; its :class:`Run` as one JSON line."""
    from .suite import tool_named

    workload = Workload(**json.loads(workload_json))
    warm_up()
    run = tool_named(tool_name).run(workload, log_path)
    fields = dataclasses.asdict(run)
    fields["recorded"] = [[x, y, when] for (x, y), when in run.recorded.items()]
    return json.dumps(fields)


def run_from_json(line: str) -> Run:
    """The :class:`Run` that :func:`run_as_json` printed."""
    fields = json.loads(line)
    fields["recorded"] = {(x, y): when for x, y, when in fields["recorded"]}
    return Run(**fields)


def main(argv: list[str]) -> None:
    tool_name, workload_json, log_path = argv
    print(run_as_json(tool_name, workload_json, log_path))


if __name__ == "__main__":
    main(sys.argv[1:])
