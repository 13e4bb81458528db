"""The live progress display of the sync API (rich), for terminals and notebooks.

It reads the core's :class:`~ax_scheduler._outcomes.Progress` counters from rich's
refresh thread (4 times a second) and never touches Ax. While it shows, stdout,
stderr and the logging handlers that wrote to them go through rich, which prints
each line above the display instead of through it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ._outcomes import Progress

REFRESH_PER_SECOND = 4


def display_mode(enabled: bool, console: Console) -> str | None:
    """How to show progress: ``"live"``, ``"summary"`` (once, at the end) or None.

    Live in a terminal, and in a notebook with ipywidgets (rich renders the
    display as a widget there). A notebook without ipywidgets gets the final
    state as one plain block instead of escape codes. Nothing when stderr is a
    file or a pipe, or when the ``progress`` option is off.
    """
    if not enabled:
        return None
    if console.is_jupyter:
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            return "summary"
        return "live"
    return "live" if console.is_terminal and not console.is_dumb_terminal else None


def render(progress: Progress, load: Mapping[str, int] | None, runner: str) -> RenderableType:
    """The display: a bar with counts and times, then the trial states and best values.

    Trials stopped early count as ended (the bar) and are named beside the
    completed ones ("3 stopped early") once there are any.
    """
    elapsed = time.monotonic() - progress.started
    head = Table.grid(padding=(0, 1))
    head.add_row(
        ProgressBar(total=max(progress.total, 1), completed=progress.ended, width=30),
        Text(f"{progress.ended}/{progress.total} trials", style="bold"),
        Text(f"{_clock(elapsed)} elapsed", style="dim"),
        Text(_remaining(progress, elapsed), style="dim"),
    )
    lines: list[RenderableType] = [head, _states(progress)]
    best = dict(progress.best)  # the Ax thread may add a key meanwhile
    if best:
        lines.append(Text("best so far: " + ", ".join(f"{k}={v:.6g}" for k, v in best.items())))
    if load:
        lines.append(Text(f"{runner}: " + ", ".join(f"{name}={n}" for name, n in load.items())))
    return Group(*lines)


def _states(progress: Progress) -> Text:
    """How many trials are in each state; those stopped early once there are any."""
    # Only then: a run without an early-stopping strategy has none, and its line
    # stays as it was.
    stopped = progress.early_stopped
    saved = progress.compute_saved if stopped else None
    label = f"{stopped} stopped early" + (f" (~{saved:.0%} compute saved)" if saved else "")
    early = [("  ", ""), (label, "magenta")] if stopped else []
    return Text.assemble(
        (f"{progress.running} running", "cyan"),
        "  ",
        (f"{progress.queued} queued", "blue"),
        "  ",
        (f"{progress.completed} completed", "green"),
        *early,
        "  ",
        (f"{progress.failed} failed", "red" if progress.failed else "dim"),
        "  ",
        (f"{progress.abandoned} abandoned", "yellow" if progress.abandoned else "dim"),
    )


def _remaining(progress: Progress, elapsed: float) -> str:
    """Time left at the pace so far (trials ended per second), once one has ended."""
    if not progress.ended or progress.ended >= progress.total:
        return ""
    left = elapsed / progress.ended * (progress.total - progress.ended)
    return f"~{_clock(left)} left"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


@contextmanager
def progress_display(
    progress: Progress,
    load: Callable[[], Mapping[str, int] | None],
    runner: str,
    *,
    enabled: bool = True,
    console: Console | None = None,
) -> Iterator[None]:
    """Show the display while the block runs, as :func:`display_mode` decides.

    Args:
        progress: The core's counters.
        load: The runner's load by state (Slurm: pending/running), or None.
        runner: The runner's kind, to label the load.
        enabled: The ``progress`` option.
        console: Where to draw; rich's console on stderr by default.
    """
    console = console or Console(stderr=True)
    mode = display_mode(enabled, console)
    if mode is None:
        yield
        return
    if mode == "summary":
        try:
            yield
        finally:
            console.print(render(progress, _safe(load), runner))
        return
    live = Live(
        get_renderable=lambda: render(progress, _safe(load), runner),
        console=console,
        refresh_per_second=REFRESH_PER_SECOND,
        redirect_stdout=True,
        redirect_stderr=True,
    )
    originals = sys.stdout, sys.stderr
    with live, _handlers_through(dict(zip(originals, (sys.stdout, sys.stderr), strict=True))):
        yield


def _safe(load: Callable[[], Mapping[str, int] | None]) -> Mapping[str, int] | None:
    try:
        return load()
    except RuntimeError:  # a runner's dict changed while read from this thread: next time
        return None


@contextmanager
def _handlers_through(streams: Mapping[IO[str], IO[str]]) -> Iterator[None]:
    """Point logging handlers that write to the real stdout/stderr at rich's proxies.

    A handler keeps the stream it was created with; writing to it directly would
    tear through the display, so for the display's lifetime it writes through the
    proxy (as tqdm's ``logging_redirect_tqdm`` does), and is put back afterwards.
    """
    swapped: list[tuple[logging.StreamHandler[Any], IO[str]]] = []
    for handler in _stream_handlers():
        target = streams.get(handler.stream)
        if target is not None and target is not handler.stream:
            swapped.append((handler, handler.stream))
            handler.setStream(target)
    try:
        yield
    finally:
        for handler, stream in swapped:
            handler.setStream(stream)


def _stream_handlers() -> list[logging.StreamHandler[Any]]:
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    return [
        handler
        for logger in loggers
        if isinstance(logger, logging.Logger)
        for handler in logger.handlers
        if isinstance(handler, logging.StreamHandler)
    ]
