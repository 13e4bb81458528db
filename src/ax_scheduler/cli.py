"""The ``ax-scheduler`` command: run, resume and inspect an experiment declared in YAML.

Exit codes: 0 done; 1 the run failed (the runner could not run trials, too many
trials failed, the report could not be written); 2 bad input (an invalid
experiment file, a file that is not a checkpoint, bad options); 130 Ctrl-C.

Ax is imported only by the commands that need it, after the experiment file is
checked: ``--help`` and a mistake in the file answer at once.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from ._facade import AxScheduler
    from ._filekinds import Kind, Use
    from ._spec import RunSpec

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

#: Trial states that count toward ``max_trials`` (an ABANDONED trial was stopped
#: before its end, so ``resume`` runs another in its place).
FINISHED = ("COMPLETED", "FAILED", "EARLY_STOPPED")
STATUS_STYLES = {"COMPLETED": "green", "FAILED": "red", "ABANDONED": "yellow", "RUNNING": "cyan"}
REASON_WIDTH = 60
#: How lines with user data are printed: no markup, no wrapping at the terminal's width.
PLAIN: dict[str, Any] = {"markup": False, "highlight": False, "soft_wrap": True}

app = typer.Typer(
    name="ax-scheduler",
    help="Run Ax optimization experiments declared in a YAML file, and inspect their results.",
    epilog="Start with: ax-scheduler run experiment.yaml  (see docs/cli.md for the file format)",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # a bug's traceback should be a plain one
    rich_markup_mode="rich",
)


class CommandError(Exception):
    """A problem the command reports in one line, exiting with ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


class Format(StrEnum):
    """Output formats of ``status``."""

    table = "table"
    csv = "csv"
    json = "json"


# -- options shared by commands -------------------------------------------------------
Verbose = Annotated[
    bool, typer.Option("--verbose", "-v", help="Also log debug messages, and Ax's own.")
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Log only warnings and errors.")]
RunFile = Annotated[
    Path,
    typer.Argument(
        exists=True,
        dir_okay=False,
        readable=True,
        help="A checkpoint (run.json) or a file written by save_experiment().",
    ),
]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"ax-scheduler {version('ax-scheduler')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Run Ax optimization experiments declared in a YAML file, and inspect their results."""


# -- commands ---------------------------------------------------------------------------
@app.command(
    epilog="Examples:\n\n"
    "  ax-scheduler run experiment.yaml\n\n"
    "  ax-scheduler run experiment.yaml --max-trials 50 --checkpoint sweep.json\n\n"
    "Ctrl-C stops the running trials (ABANDONED), saves the checkpoint and tells how"
    " to resume."
)
def run(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="The experiment file."),
    ],
    max_trials: Annotated[
        int | None, typer.Option(min=1, help="Trials to run; default: the file's max_trials.")
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Where to keep the run; default: the file's, or run.json next to it."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start over if the checkpoint already holds a run.")
    ] = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Run the experiment FILE declares, keeping a checkpoint to resume from."""
    from ._filekinds import Use
    from ._spec import absolute, create_client, load_file

    with _command(verbose, quiet):
        _expect(file, Use.RUN)
        spec = load_file(file)
        path = absolute(checkpoint) if checkpoint is not None else spec.checkpoint_path()
        _refuse_to_overwrite(path, overwrite)
        total = max_trials or spec.experiment.max_trials
        _import_ax(verbose)
        client = create_client(spec, verbose=verbose)
        if overwrite:  # only now: a run that cannot start keeps the old one
            path.unlink(missing_ok=True)
        scheduler = _scheduler(client, spec, path)
        _drive(scheduler, spec, path, total)


@app.command(
    epilog="Examples:\n\n"
    "  ax-scheduler resume run.json\n\n"
    "  ax-scheduler resume run.json --max-trials 40    (extend a finished run to 40 trials)"
)
def resume(
    run_json: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="The checkpoint of the run."
        ),
    ],
    max_trials: Annotated[
        int | None,
        typer.Option(min=1, help="The run's new total of trials; default: its max_trials."),
    ] = None,
    experiment: Annotated[
        Path | None,
        typer.Option(
            "--experiment",
            "-e",
            exists=True,
            dir_okay=False,
            help="Take objective, runner and options from this file instead of the checkpoint.",
        ),
    ] = None,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Continue an interrupted run (or extend a finished one) from its checkpoint.

    Trials that finished (COMPLETED, FAILED, EARLY_STOPPED) count toward max_trials;
    trials stopped by Ctrl-C or a timeout (ABANDONED) and those that died with a
    local driver do not, so as many new ones run. Jobs still running on Slurm,
    SSH hosts or Docker are re-attached and waited for first.
    """
    from ._filekinds import Use
    from ._spec import load_file, load_stored

    with _command(verbose, quiet):
        _expect(run_json, Use.RESUME)
        header = _read_json(run_json)
        header.pop("client", None)  # AxScheduler.resume reads it again; not kept for the run
        if experiment is not None:
            _expect(experiment, Use.RUN)
            spec = load_file(experiment)
        else:
            spec = load_stored(header.get("spec"), str(run_json))
        if spec.experiment.name != header.get("experiment"):
            raise CommandError(
                f"{run_json} is a run of {header.get('experiment')!r}, the experiment file"
                f" declares {spec.experiment.name!r}",
                EXIT_BAD_INPUT,
            )
        total = max_trials or spec.experiment.max_trials
        _import_ax(verbose)
        scheduler = _resumed(run_json, spec, overrides=experiment is not None)
        _drive(scheduler, spec, Path(os.path.abspath(run_json)), total)


@app.command(
    epilog="Examples:\n\n"
    "  ax-scheduler status run.json\n\n"
    "  ax-scheduler status run.json --format csv > trials.csv"
)
def status(
    run_json: RunFile,
    output_format: Annotated[
        Format, typer.Option("--format", "-f", help="table, or csv / json for other programs.")
    ] = Format.table,
) -> None:
    """Show every trial of a run: status, parameters, metrics, job, duration, failure reason.

    Works while the run is going on: the checkpoint is replaced whole, never
    half-written.
    """
    from ._filekinds import Use

    with _command(verbose=False, quiet=True):
        kind = _expect(run_json, Use.STATUS)  # before Ax's import: a wrong file answers at once
        _import_ax(verbose=False)
        experiment, header = _load_experiment(run_json, kind)
        from ._table import results_frame

        frame = results_frame(experiment)
        if output_format is Format.csv:
            sys.stdout.write(frame.to_csv(index=False))
        elif output_format is Format.json:
            sys.stdout.write(frame.to_json(orient="records", date_format="iso", indent=2) + "\n")
        else:
            console = Console()
            console.print(_trials_table(frame, f"{experiment.name} ({run_json})"))
            _print_summary(console, frame, _max_trials(header))


@app.command(
    epilog="Examples:\n\n"
    "  ax-scheduler report run.json -o report.html\n\n"
    "  ax-scheduler report run.json -o sweep.html --title 'Sweep of 1 December'"
)
def report(
    run_json: RunFile,
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")] = Path(
        "report.html"
    ),
    title: Annotated[
        str | None, typer.Option(help="The report's title; default: the experiment's name.")
    ] = None,
) -> None:
    """Write an HTML report of a run: its trials, the optimization's progress and the best."""
    from ._filekinds import Use

    with _command(verbose=False, quiet=True):
        kind = _expect(run_json, Use.REPORT)
        _import_ax(verbose=False)
        experiment, _ = _load_experiment(run_json, kind)
        from ._report import write_report

        try:
            written = write_report(experiment, output, title=title)
        except OSError as exc:
            raise CommandError(f"cannot write the report {output}: {exc}") from None
        typer.echo(f"wrote {written}")


def main() -> None:
    """The console script ``ax-scheduler``."""
    # Ax announces that the legacy AxClient, which the command uses, is deprecated;
    # the user of a command line can do nothing about it.
    warnings.filterwarnings("ignore", message=".*AxClient.*deprecated", category=Warning)
    app(prog_name="ax-scheduler")


# -- running ---------------------------------------------------------------------------
@contextmanager
def _command(verbose: bool, quiet: bool) -> Iterator[None]:
    """Logging for one command, and its errors as one line and an exit code."""
    from ._yamlspec import SpecError

    with _logging(verbose, quiet):
        try:
            yield
        except SpecError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except CommandError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted before any trial started", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None


def _refuse_to_overwrite(checkpoint: Path, overwrite: bool) -> None:
    """Refuse to start a new run over an existing one, unless told to."""
    if checkpoint.exists() and not overwrite:
        raise CommandError(
            f"{_shown(checkpoint)} already holds a run: continue it with `ax-scheduler resume"
            f" {_shown(checkpoint)}`, or start over with --overwrite, or choose another"
            " --checkpoint",
            EXIT_BAD_INPUT,
        )


def _scheduler(client: Any, spec: RunSpec, checkpoint: Path) -> AxScheduler:
    from ._exceptions import AxSchedulerError
    from ._facade import AxScheduler

    try:
        scheduler = AxScheduler(client, spec.runner, spec.scheduler_config(checkpoint))
    except AxSchedulerError as exc:
        raise CommandError(str(exc), EXIT_BAD_INPUT) from None
    return scheduler


def _resumed(run_json: Path, spec: RunSpec, *, overrides: bool) -> AxScheduler:
    from ._exceptions import AxSchedulerError
    from ._facade import AxScheduler

    config = spec.scheduler_config(Path(os.path.abspath(run_json))) if overrides else None
    try:
        return AxScheduler.resume(run_json, spec.runner, config)
    except AxSchedulerError as exc:
        raise CommandError(str(exc), EXIT_BAD_INPUT) from None


def _drive(scheduler: AxScheduler, spec: RunSpec, checkpoint: Path, total: int) -> None:
    """Run the trials missing to reach ``total``, then print what the run did."""
    from ._exceptions import AxSchedulerError

    stored = spec.stored()
    stored["experiment"]["max_trials"] = total
    scheduler._core.spec = stored
    try:
        with scheduler:
            _run_missing(scheduler, spec, total)
    except KeyboardInterrupt:
        typer.echo(
            "interrupted: the running trials were stopped and recorded as ABANDONED, and"
            f" {_shown(checkpoint)} is saved; continue with: ax-scheduler resume"
            f" {shlex.quote(_shown(checkpoint))}",
            err=True,
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except AxSchedulerError as exc:
        raise CommandError(
            f"{exc}\nthe trials so far are in {_shown(checkpoint)}: ax-scheduler status"
            f" {shlex.quote(_shown(checkpoint))}"
        ) from None
    from ._table import results_frame

    console = Console()
    _print_summary(console, results_frame(scheduler.experiment), total)
    console.print(
        f"checkpoint: {_shown(checkpoint)} (every trial: ax-scheduler status"
        f" {shlex.quote(_shown(checkpoint))})",
        **PLAIN,
    )


def _run_missing(scheduler: AxScheduler, spec: RunSpec, total: int) -> None:
    experiment = scheduler.experiment
    pending = [t.index for t in experiment.trials.values() if t.status.name == "RUNNING"]
    if not pending and _counted(experiment) >= total:
        typer.echo(
            f"nothing left to do: {_counted(experiment)} of max_trials {total} trials finished;"
            " --max-trials N runs more"
        )
        return
    from ._spec import set_objective

    set_objective(scheduler, spec)
    if pending:
        logging.getLogger("ax_scheduler").info(
            "waiting for %d trials the previous driver left running: %s", len(pending), pending
        )
        scheduler.wait_for_completed_trials()
    missing = total - _counted(experiment)
    if missing > 0:
        scheduler.run_optimization(max_trials=missing)


def _counted(experiment: Any) -> int:
    """Trials that count toward ``max_trials``: finished, and not lost with a driver."""
    from ._core import DRIVER_RESTARTED

    return sum(
        trial.status.name in FINISHED
        and not (trial.status_reason or "").startswith(DRIVER_RESTARTED)
        for trial in experiment.trials.values()
    )


# -- reading runs ------------------------------------------------------------------------
def _expect(path: Path, use: Use) -> Kind:
    """The kind of file ``path`` is, if one that ``use`` takes.

    Raises:
        CommandError: It is not: the message says what it is and what takes it.
    """
    from ._filekinds import file_kind, wrong_kind_message

    try:
        found = file_kind(path)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}", EXIT_BAD_INPUT) from None
    message = wrong_kind_message(path, found, use)
    if message is not None:
        raise CommandError(message, EXIT_BAD_INPUT)
    return found.kind


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read {path}: {exc}", EXIT_BAD_INPUT) from None
    if not isinstance(data, dict):
        raise CommandError(f"{path} is not a run: it holds a {type(data).__name__}", EXIT_BAD_INPUT)
    return data


def _load_experiment(path: Path, kind: Kind) -> tuple[Any, dict[str, Any]]:
    """The Ax experiment of a checkpoint or a save_experiment() file, and the header."""
    from ._ax import AxAdapter, client_from_snapshot
    from ._filekinds import Kind

    checkpoint = kind is Kind.CHECKPOINT
    data = _read_json(path)
    snapshot = data.pop("client", None) if checkpoint else data
    try:
        client = client_from_snapshot(snapshot)
    except Exception as exc:  # noqa: BLE001 - whatever Ax's decoder raises
        raise CommandError(
            f"{path} {kind.value}, but Ax cannot load it ({type(exc).__name__}: {exc})",
            EXIT_BAD_INPUT,
        ) from None
    return AxAdapter.wrap(client).experiment, data if checkpoint else {}


def _max_trials(header: dict[str, Any]) -> int | None:
    spec = header.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("experiment"), dict):
        found = spec["experiment"].get("max_trials")
        return found if isinstance(found, int) else None
    return None


# -- output ------------------------------------------------------------------------------
def _trials_table(frame: Any, title: str) -> Table:
    metrics = frame.attrs["metrics"]
    table = Table(title=title, title_justify="left")
    for name in ("trial", "status", "parameters", *metrics, "job", "duration", "reason"):
        numeric = name in ("trial", "duration", *metrics)
        table.add_column(name, justify="right" if numeric else "left", overflow="fold")
    for row in frame.to_dict("records"):
        # Text, not markup: a parameter value or a reason may hold "[...]".
        table.add_row(
            Text(str(row["trial_index"])),
            Text(row["status"], style=STATUS_STYLES.get(row["status"], "")),
            Text(", ".join(f"{name}={_number(row[name])}" for name in frame.attrs["parameters"])),
            *(Text(_measurement(row[name], row[f"{name}_sem"])) for name in metrics),
            Text(" ".join(str(part) for part in (row["runner"], row["job_id"]) if _present(part))),
            Text("" if math.isnan(row["duration_s"]) else f"{row['duration_s']:.1f} s"),
            Text(_truncated(row["failure_reason"])),
        )
    return table


def _print_summary(console: Console, frame: Any, total: int | None) -> None:
    counts = frame["status"].value_counts()
    states = ", ".join(f"{count} {state}" for state, count in counts.items())
    target = f" (max_trials {total})" if total is not None else ""
    console.print(f"{len(frame)} trials: {states or 'none yet'}{target}", **PLAIN)
    best = _best_row(frame)
    if best is not None:
        metric, row = best
        parameters = ", ".join(f"{name}={_number(row[name])}" for name in frame.attrs["parameters"])
        console.print(
            f"best: trial {row['trial_index']}, {metric}={_number(row[metric])} ({parameters})",
            **PLAIN,
        )


def _best_row(frame: Any) -> tuple[str, dict[str, Any]] | None:
    """The observed best trial of a single-objective experiment, if any has data."""
    objectives = frame.attrs["objectives"]
    if len(objectives) != 1:
        return None
    ((metric, direction),) = objectives.items()
    done = frame[frame["status"] == "COMPLETED"].dropna(subset=[metric])
    if done.empty:
        return None
    index = done[metric].idxmin() if direction == "minimize" else done[metric].idxmax()
    return metric, done.loc[index].to_dict()


def _measurement(mean: float, sem: float) -> str:
    if math.isnan(mean):
        return ""
    return _number(mean) if math.isnan(sem) or sem == 0 else f"{_number(mean)} ± {_number(sem)}"


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _truncated(reason: Any) -> str:
    if not _present(reason):
        return ""
    text = " ".join(str(reason).split())
    return text if len(text) <= REASON_WIDTH else text[: REASON_WIDTH - 1] + "…"


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to here if it is below here."""
    try:
        return str(Path(os.path.abspath(path)).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# -- logging -------------------------------------------------------------------------------
@contextmanager
def _logging(verbose: bool, quiet: bool) -> Iterator[None]:
    """Show ax-scheduler's log (one line per finished trial) on stderr for one command."""
    ours = logging.getLogger("ax_scheduler")
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = _handler()
    previous = ours.level
    ours.addHandler(handler)
    ours.setLevel(level)
    try:
        yield
    finally:
        ours.removeHandler(handler)
        ours.setLevel(previous)
        _set_ax_level(None)


def _handler() -> logging.Handler:
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        return RichHandler(console=Console(stderr=True), show_path=False)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    return handler


_ax_levels: list[int] = []  # the Ax handler's level before _import_ax changed it


def _import_ax(verbose: bool) -> None:
    """Import Ax without its start-up notices; keep its log to warnings unless verbose."""
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)  # Ax logs at INFO while it is imported
    try:
        import ax.service.ax_client  # noqa: F401
    finally:
        logging.disable(previous)
    _set_ax_level(logging.INFO if verbose else logging.WARNING)


def _set_ax_level(level: int | None) -> None:
    """Set Ax's stderr handler to ``level``; None restores what it was."""
    if "ax.utils.common.logger" not in sys.modules:
        return
    from ax.utils.common.logger import ROOT_STREAM_HANDLER

    if level is None:
        if _ax_levels:
            ROOT_STREAM_HANDLER.setLevel(_ax_levels.pop())
        return
    _ax_levels.append(ROOT_STREAM_HANDLER.level)
    ROOT_STREAM_HANDLER.setLevel(level)


if __name__ == "__main__":
    main()
