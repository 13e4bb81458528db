"""How a command fails: its exit codes, and its errors as one line on stderr."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from .._exceptions import AxSchedulerError, SpecError

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class CommandError(AxSchedulerError):
    """A problem the command reports in one line, exiting with ``code``.

    Attributes:
        code: The exit code: :data:`EXIT_FAILED` (the run failed) or
            :data:`EXIT_BAD_INPUT` (a wrong file or option).
    """

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


@contextmanager
def exit_codes() -> Iterator[None]:
    """End the command with its error's line on stderr and exit code, not a traceback."""
    try:
        yield
    except SpecError as exc:  # its lines start with the file's name: no "error:" before them
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except CommandError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.code) from None
    except KeyboardInterrupt:
        typer.echo("interrupted before any trial started", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
