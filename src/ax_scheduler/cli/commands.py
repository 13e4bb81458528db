"""The ``ax-scheduler`` commands: ``run``, ``resume``, ``status`` and ``report``.

Each command checks what it was given before it imports Ax (see :mod:`.logs`),
and ends with a one-line error and an exit code rather than a traceback (see
:mod:`.errors`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from . import logs
from .errors import EXIT_BAD_INPUT, CommandError, exit_codes
from .helptext import Command, Group
from .inputs import expect, read_run, resume_target, stored_max_trials
from .output import Format, print_trials, shown
from .running import drive, new_scheduler, refuse_to_overwrite, resumed_scheduler

app = typer.Typer(
    name="ax-scheduler",
    help="Run Ax optimization experiments declared in a YAML file, and inspect their results.",
    epilog="Start with: ax-scheduler run experiment.yaml  (see docs/cli.md for the file format)",
    cls=Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # a bug's traceback should be a plain one
    rich_markup_mode="rich",
)

# -- options shared by commands -------------------------------------------------------
Verbose = Annotated[
    bool, typer.Option("--verbose", "-v", help="Also log debug messages, and Ax's own.")
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Log only warnings and errors.")]
RunFile = Annotated[
    str,
    typer.Argument(
        metavar="CHECKPOINT",
        help="A checkpoint (run.json, or the database URL a run's checkpoint_path named)"
        " or a file written by save_experiment().",
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


@contextmanager
def _command(verbose: bool, quiet: bool) -> Iterator[None]:
    """Logging for one command, and its errors as one line and an exit code."""
    with logs.command_logging(verbose, quiet), exit_codes():
        yield


# -- commands ---------------------------------------------------------------------------
@app.command(
    cls=Command,
    epilog="Examples:\n\n"
    "  ax-scheduler run experiment.yaml\n\n"
    "  ax-scheduler run experiment.yaml --max-trials 50 --checkpoint sweep.json\n\n"
    "Ctrl-C stops the running trials (ABANDONED), saves the checkpoint and tells how"
    " to resume.",
)
def run(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", exists=True, dir_okay=False, readable=True, help="The experiment file."
        ),
    ],
    max_trials: Annotated[
        int | None, typer.Option(min=1, help="Trials to run; default: the file's max_trials.")
    ] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            help="Where to keep the run (a file, or a database URL such as"
            " sqlite:///run.db); default: the file's, or run.json next to it."
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start over if the checkpoint already holds a run.")
    ] = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Run the experiment FILE declares, keeping a checkpoint to resume from."""
    # Imported here, not above: --help answers without loading the file's models.
    from .axclient import create_client
    from .filekinds import Use
    from .spec import checkpoint_target, load_file

    with _command(verbose, quiet):
        expect(file, Use.RUN)
        spec = load_file(file)
        path = checkpoint_target(checkpoint) if checkpoint is not None else spec.checkpoint_path()
        refuse_to_overwrite(path, overwrite)
        total = max_trials or spec.experiment.max_trials
        logs.import_ax(verbose)
        client = create_client(spec, verbose=verbose)
        if overwrite and isinstance(path, Path):  # only now: a failed start keeps the old run
            path.unlink(missing_ok=True)
        scheduler = new_scheduler(client, spec, path)
        drive(scheduler, spec, path, total)


@app.command(
    cls=Command,
    epilog="Examples:\n\n"
    "  ax-scheduler resume run.json\n\n"
    "  ax-scheduler resume run.json --max-trials 40    (extend a finished run to 40 trials)\n\n"
    "  ax-scheduler resume sqlite:///run.db",
)
def resume(
    run_json: Annotated[
        str,
        typer.Argument(
            metavar="CHECKPOINT",
            help="The checkpoint of the run: its file, or the database URL of its checkpoint_path.",
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
    from .filekinds import Use
    from .spec import load_file, load_stored

    with _command(verbose, quiet):
        target, header = resume_target(run_json)
        if experiment is not None:
            expect(experiment, Use.RUN)
            spec = load_file(experiment)
        else:
            spec = load_stored(header.get("spec"), str(run_json))
        if spec.experiment.name != header.get("experiment"):
            raise CommandError(
                f"{shown(target)} is a run of {header.get('experiment')!r}, the experiment file"
                f" declares {spec.experiment.name!r}",
                EXIT_BAD_INPUT,
            )
        total = max_trials or spec.experiment.max_trials
        logs.import_ax(verbose)
        scheduler = resumed_scheduler(target, spec, overrides=experiment is not None)
        drive(scheduler, spec, target, total)


@app.command(
    cls=Command,
    epilog="Examples:\n\n"
    "  ax-scheduler status run.json\n\n"
    "  ax-scheduler status run.json --format csv > trials.csv\n\n"
    "  ax-scheduler status sqlite:///run.db",
)
def status(
    run_json: RunFile,
    output_format: Annotated[
        Format, typer.Option("--format", "-f", help="table, or csv / json for other programs.")
    ] = Format.table,
) -> None:
    """Show every trial of a run: status, parameters, metrics, job, duration, failure reason.

    Trials that reported while they ran show their last step; those the
    early-stopping strategy stopped are EARLY_STOPPED, with its reason, and the
    summary estimates the compute that saved. Works while the run is going on:
    the checkpoint is replaced whole, never half-written.
    """
    from .filekinds import Use

    with _command(verbose=False, quiet=True):
        # Ax only for files without a table
        trials, header, shown = read_run(run_json, Use.STATUS)
        title = f"{trials.name} ({shown})"
        print_trials(trials, output_format, title, stored_max_trials(header))


@app.command(
    cls=Command,
    epilog="Examples:\n\n"
    "  ax-scheduler report run.json -o report.html\n\n"
    "  ax-scheduler report run.json -o sweep.html --title 'Sweep of 1 December'",
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
    from .filekinds import Use

    with _command(verbose=False, quiet=True):
        trials, _, _ = read_run(run_json, Use.REPORT)
        from .._report import write_report
        from .._table import table_frame

        try:
            # The report draws from the frame alone; of the experiment it reads only
            # the name, which the table has.
            written = write_report(trials, output, frame=table_frame(trials), title=title)
        except OSError as exc:
            raise CommandError(f"cannot write the report {output}: {exc}") from None
        typer.echo(f"wrote {written}")


def main() -> None:
    """The console script ``ax-scheduler``."""
    # Ax announces that the legacy AxClient, which the command uses, is deprecated;
    # the user of a command line can do nothing about it.
    warnings.filterwarnings("ignore", message=".*AxClient.*deprecated", category=Warning)
    app(prog_name="ax-scheduler")
