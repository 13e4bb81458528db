"""The compute early stopping saved, estimated as Ax does, from the results table alone.

Ax's ``ax.early_stopping.utils.estimate_early_stopping_savings(experiment)`` counts
a trial's compute as its last reported step, and assumes that each early-stopped
trial would have run as far as the completed trials did on average. The same
estimate from each trial's ``status`` and ``last_step`` (``_table``) works where
Ax is not imported: ``ax-scheduler status`` of a checkpoint, the report of a
saved run. Standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Savings:
    """What early stopping saved, in steps (Ax's progressions).

    Attributes:
        share: ``saved / (saved + run)``: the part of the compute the run would
            have used without early stopping that it did not use (Ax's estimate).
        saved: Steps the stopped trials did not run: for each, ``baseline`` less
            its last step (never below 0).
        run: Steps every trial that reported ran: their last steps, summed.
        baseline: How far a completed trial ran on average: their mean last step.
        stopped: How many trials were stopped early.
    """

    share: float
    saved: float
    run: float
    baseline: float
    stopped: int


def early_stopping_savings(trials: Iterable[tuple[str, float | None]]) -> Savings | None:
    """Estimate what early stopping saved, as Ax's ``estimate_early_stopping_savings``.

    Args:
        trials: Each trial's status (``"COMPLETED"``, ``"EARLY_STOPPED"`` ...) and
            last reported step (None or NaN if it reported none).

    Returns:
        The estimate, or None where Ax's is 0 for want of data: no trial was
        stopped early, or no completed trial reported a step to compare with.
    """
    ran = [(status, step) for status, step in trials if step is not None and not math.isnan(step)]
    completed = [step for status, step in ran if status == "COMPLETED"]
    stopped = [step for status, step in ran if status == "EARLY_STOPPED"]
    if not completed or not stopped:
        return None
    baseline = math.fsum(completed) / len(completed)
    saved = math.fsum(max(baseline - step, 0.0) for step in stopped)
    run = math.fsum(step for _, step in ran)
    if saved + run <= 0:  # every trial stopped at step 0, and the completed ones too
        return None
    return Savings(saved / (saved + run), saved, run, baseline, len(stopped))


def describe(savings: Savings | None) -> str:
    """The estimate in words: ``about 29%: 22 of the 76 steps ... (... to step 19)``."""
    if savings is None:
        return "not known yet: no completed trial reported a step to compare with"
    saved, total, baseline = (
        format_step(round(value, 1))
        for value in (savings.saved, savings.saved + savings.run, savings.baseline)
    )
    return (
        f"about {savings.share:.0%}: {saved} of the {total} steps the trials would have"
        " run without it (a stopped trial counted as running as far as the completed"
        f" ones did on average, to step {baseline})"
    )


def format_step(value: float) -> str:
    """A step as people write one: ``19``, ``250000``, ``12.5`` (not ``2.5e+05``)."""
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"
