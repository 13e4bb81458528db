"""Running an experiment file's trials: the scheduler, the trials missing, the summary."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from .._exceptions import AxSchedulerError, SpecError
from .errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, CommandError
from .output import PLAIN, print_summary, shown

if TYPE_CHECKING:
    from .._facade import AxScheduler
    from .spec import RunSpec

#: Trial states that count toward ``max_trials`` (an ABANDONED trial was stopped
#: before its end, so ``resume`` runs another in its place).
FINISHED = ("COMPLETED", "FAILED", "EARLY_STOPPED")


def refuse_to_overwrite(checkpoint: Path | str, overwrite: bool) -> None:
    """Refuse to start a new run over an existing one, unless told to.

    Raises:
        CommandError: ``checkpoint`` exists and ``overwrite`` is false, or it is a
            database that holds a run (a database is never emptied by a command).
    """
    if isinstance(checkpoint, str):
        from .._exceptions import CheckpointError
        from .._sqlstore import stored_runs

        try:
            held = stored_runs(checkpoint, missing_ok=True)
        except CheckpointError as exc:
            raise CommandError(str(exc), EXIT_BAD_INPUT) from None
        if held:
            raise CommandError(
                f"{shown(checkpoint)} already holds a run: continue it with `ax-scheduler"
                f" resume {shlex.quote(shown(checkpoint))}`, or choose another database",
                EXIT_BAD_INPUT,
            )
        return
    if checkpoint.exists() and not overwrite:
        raise CommandError(
            f"{shown(checkpoint)} already holds a run: continue it with `ax-scheduler resume"
            f" {shown(checkpoint)}`, or start over with --overwrite, or choose another"
            " --checkpoint",
            EXIT_BAD_INPUT,
        )


def new_scheduler(client: Any, spec: RunSpec, checkpoint: Path | str) -> AxScheduler:
    """An ``AxScheduler`` for a new run of the file.

    Raises:
        CommandError: The scheduler refuses the file's options.
    """
    from .._facade import AxScheduler

    try:
        return AxScheduler(client, spec.runner, spec.scheduler_config(checkpoint))
    except AxSchedulerError as exc:
        raise CommandError(str(exc), EXIT_BAD_INPUT) from None


def resumed_scheduler(run_json: Path | str, spec: RunSpec, *, overrides: bool) -> AxScheduler:
    """The ``AxScheduler`` of a checkpoint; with the file's options if ``overrides``.

    Raises:
        CommandError: The checkpoint cannot be resumed, or the options are refused.
    """
    from .._facade import AxScheduler

    config = spec.scheduler_config(run_json) if overrides else None
    try:
        return AxScheduler.resume(run_json, spec.runner, config)
    except AxSchedulerError as exc:
        raise CommandError(str(exc), EXIT_BAD_INPUT) from None


def drive(scheduler: AxScheduler, spec: RunSpec, checkpoint: Path | str, total: int) -> None:
    """Run the trials missing to reach ``total``, then print what the run did.

    Raises:
        CommandError: The run failed; the message says where its trials are.
        SpecError: The scheduler refused the file's objective.
    """
    stored = spec.stored()
    stored["experiment"]["max_trials"] = total
    scheduler._core.spec = stored
    try:
        with scheduler:
            _run_missing(scheduler, spec, total)
    except KeyboardInterrupt:
        typer.echo(
            "interrupted: the running trials were stopped and recorded as ABANDONED, and"
            f" {shown(checkpoint)} is saved; continue with: ax-scheduler resume"
            f" {shlex.quote(shown(checkpoint))}",
            err=True,
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except SpecError:
        raise  # a mistake in the file, not a failed run
    except AxSchedulerError as exc:
        raise CommandError(
            f"{exc}\nthe trials so far are in {shown(checkpoint)}: ax-scheduler status"
            f" {shlex.quote(shown(checkpoint))}"
        ) from None
    from .._table import trial_table

    console = Console()
    print_summary(console, trial_table(scheduler.experiment), total)
    console.print(
        f"checkpoint: {shown(checkpoint)} (every trial: ax-scheduler status"
        f" {shlex.quote(shown(checkpoint))})",
        **PLAIN,
    )


def _run_missing(scheduler: AxScheduler, spec: RunSpec, total: int) -> None:
    experiment = scheduler.experiment
    pending = [t.index for t in experiment.trials.values() if t.status.name == "RUNNING"]
    if not pending and counted(experiment) >= total:
        typer.echo(
            f"nothing left to do: {counted(experiment)} of max_trials {total} trials finished;"
            " --max-trials N runs more"
        )
        return
    from .objective import set_objective

    set_objective(scheduler, spec)
    if pending:
        logging.getLogger("ax_scheduler").info(
            "waiting for %d trials the previous driver left running: %s", len(pending), pending
        )
        scheduler.wait_for_completed_trials()
    missing = total - counted(experiment)
    if missing > 0:
        scheduler.run_optimization(max_trials=missing)


def counted(experiment: Any) -> int:
    """Trials that count toward ``max_trials``: finished, and not lost with a driver."""
    return sum(
        trial.status.name in FINISHED and not _lost_with_driver(trial)
        for trial in experiment.trials.values()
    )


def _lost_with_driver(trial: Any) -> bool:
    """Whether the trial failed only because its job ended with the previous driver."""
    from .._runmetadata import RUN_METADATA_KEY

    return bool(trial.run_metadata.get(RUN_METADATA_KEY, {}).get("lost_with_driver"))
