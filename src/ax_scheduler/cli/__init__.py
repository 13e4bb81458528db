"""The ``ax-scheduler`` command: run, resume and inspect an experiment declared in YAML.

Exit codes: 0 done; 1 the run failed (the runner could not run trials, too many
trials failed, the report could not be written); 2 bad input (an invalid
experiment file, a file that is not a checkpoint, bad options); 130 Ctrl-C.

Ax is imported only by the commands that need it, after the experiment file is
checked: ``--help`` and a mistake in the file answer at once, and ``status`` and
``report`` read the results table a checkpoint keeps without it.

The package's modules, by concern:

- ``commands``: the typer app and its commands;
- ``errors``: exit codes, and errors as one line on stderr;
- ``logs``: the command's log, and Ax's kept quiet;
- ``inputs``: the files a command is given: their kind, checkpoints, Ax snapshots;
- ``running``: running the trials of a file;
- ``output``: tables, CSV, JSON and summaries;
- ``tables``: a table drawn line by line, fast, as rich draws it;
- ``helptext``: the help screens' usage line and flags, the same under every typer;
- ``models``: the experiment file's pydantic models;
- ``spec``: loading and checking an experiment file, building its runner;
- ``objective``: checking and setting its objective;
- ``axclient``: its Ax client;
- ``yamlspec``: YAML whose errors point at ``file:line: key``;
- ``filekinds``: what kind of file a path is (also used by ``AxScheduler.resume``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .commands import app as app
    from .commands import main as main

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: AxScheduler.resume imports cli.filekinds, and needs no typer app.
    if name in __all__:
        from . import commands

        return getattr(commands, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
