"""What a live scheduler hands out: the results table, the HTML report, Ax's snapshot.

Each is built on the Ax thread, between trial recordings, so it sees a
consistent experiment; files are written whole, off the event loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._context import Context
from ._files import write_atomically
from ._jobs import Job
from ._table import results_frame


async def results(ctx: Context, jobs: Mapping[int, Job]) -> Any:
    """The results table (see ``_table.results_frame``), running ``jobs`` included."""
    live = {index: dict(job.info) for index, job in jobs.items()}
    return await ctx.call_ax(lambda: results_frame(ctx.ax.experiment, live))


async def report(
    ctx: Context, jobs: Mapping[int, Job], path: str | os.PathLike[str], title: str | None
) -> Path:
    """Write the HTML report (see ``_report.write_report``); returns its path."""
    from ._report import write_report  # plotly is imported only for a report

    frame = await results(ctx, jobs)
    return await ctx.call_ax(
        lambda: write_report(ctx.ax.experiment, path, frame=frame, title=title)
    )


async def save(ctx: Context, path: str | os.PathLike[str]) -> Path:
    """Write Ax's JSON snapshot of client, experiment and generation strategy."""
    text = await ctx.call_ax(ctx.ax.snapshot_json)
    target = Path(path)
    await asyncio.to_thread(write_atomically, target, text)
    return target
