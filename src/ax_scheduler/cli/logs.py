"""A command's log on stderr: ax-scheduler's at the level asked for, Ax's kept quiet."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console


@contextmanager
def command_logging(verbose: bool, quiet: bool) -> Iterator[None]:
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


_ax_levels: list[int] = []  # the Ax handler's level before import_ax changed it


def import_ax(verbose: bool) -> None:
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
