"""Checkpoints: the experiment and the scheduler's state, rewritten after every change.

A checkpoint is one JSON file: a small header (format version, experiment name,
runner kind, the scheduler's options), the results table (``_table.TrialTable``,
under :data:`TABLE_KEY`) and Ax's own JSON snapshot of the client, whose trials
carry each job's handle in their run metadata. It is always written whole (temp
file, fsync, rename), so a crash leaves the previous or the next version, never
half of one.

The table is made on the Ax thread in the same call as the snapshot, so the two
agree. It is what ``ax-scheduler status`` prints, read with ``json`` alone:
decoding the snapshot means importing Ax, torch and BoTorch, seconds before the
first line. A checkpoint without one (an older ax-scheduler's) is read through Ax.

Writes are coalesced and paced. While one is in progress, further changes only
mark the state dirty, and one more write follows that includes all of them. After
a write that took t seconds the next waits until ``PACING * t`` has passed, so
checkpointing never takes more than about 1 / (PACING + 1) of the scheduler's Ax
thread however large the experiment grows (Ax's snapshot of 1,000 trials takes
about a second). A runner that is about to start a job that outlives the driver
(a Slurm array, a container) asks for an urgent write (:meth:`Checkpointer.flush`),
which is not paced.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._aio import shielded
from ._exceptions import CheckpointError

if TYPE_CHECKING:
    from ._ax import AxAdapter
    from ._table import TrialTable

logger = logging.getLogger("ax_scheduler")

#: The header key that marks a file as an ax-scheduler checkpoint, and its version.
FORMAT_KEY = "ax_scheduler_checkpoint"
FORMAT_VERSION = 1
#: The header key of the results table (``_table.TrialTable.to_json()``). Adding
#: it kept FORMAT_VERSION: readers that do not know it ignore it.
TABLE_KEY = "table"

#: A routine write waits this many times the previous write's duration: at most
#: about 1/20 = 5 % of the time goes to checkpoints.
PACING = 19.0


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read back from disk.

    Attributes:
        path: Where it was read from (a database's URL without its password).
        experiment: The experiment's name.
        runner: The kind of runner that ran its trials (``"slurm"`` ...).
        config: The scheduler's options, as written.
        client: Ax's JSON snapshot of the client.
    """

    path: Path | str
    experiment: str
    runner: str
    config: dict[str, Any]
    client: dict[str, Any]

    @property
    def trial_count(self) -> int:
        experiment = self.client.get("experiment", self.client)
        return len(experiment.get("trials", {}) or {})


@dataclass(frozen=True)
class Snapshot:
    """What one checkpoint write stores from the Ax thread, taken in one call.

    Attributes:
        client: Ax's JSON snapshot of the client.
        table: The results table as JSON, or None if it could not be made.
    """

    client: dict[str, Any]
    table: dict[str, Any] | None


def take_snapshot(adapter: AxAdapter) -> Snapshot:
    """Ax's snapshot and the results table of the same moment (call on the Ax thread)."""
    return Snapshot(adapter.snapshot(), results_table(adapter))


def results_table(adapter: AxAdapter) -> dict[str, Any] | None:
    """The results table as a checkpoint stores it, or None (call on the Ax thread)."""
    from ._table import trial_table

    try:
        return _as_the_snapshot_holds(trial_table(adapter.experiment)).to_json()
    except Exception as exc:  # noqa: BLE001 - the table only saves time; the snapshot is the run
        logger.warning("checkpoint written without its results table: %r", exc)
        return None


def _as_the_snapshot_holds(table: TrialTable) -> TrialTable:
    """The table with the measurements Ax's snapshot holds, not the ones measured.

    Ax's JSON store writes data with pandas' ``to_json`` (10 decimal places) and
    reads it back with ``read_json``: a resumed run, and ``status`` of a file
    without a table, see those values. The same two calls make the table's (the
    metrics, the last step and every point of the curves), so ``status`` prints
    the same whichever way it reads the file.
    """
    measured = {"last_step", *(c for metric in table.metrics for c in (metric, f"{metric}_sem"))}
    at = [index for index, column in enumerate(table.columns) if column in measured]
    curve_at = table.columns.index("curve")
    curves = [row[curve_at] or {} for row in table.rows]
    values = [row[index] for row in table.rows for index in at]
    values += [x for curve in curves for points in curve.values() for pair in points for x in pair]
    if not values:
        return table
    stored = iter(_through_ax_json(values))
    rows = [list(row) for row in table.rows]
    for row in rows:
        for index in at:
            row[index] = next(stored)
    for row, curve in zip(rows, curves, strict=True):
        if curve:
            row[curve_at] = {
                name: [[next(stored), next(stored)] for _ in points]
                for name, points in curve.items()
            }
    return replace(table, rows=rows)


def _through_ax_json(values: list[float | None]) -> list[float | None]:
    """``values`` written and read back as Ax's JSON store does (None for a missing one)."""
    import pandas as pd

    text = pd.Series(values, dtype="float64").to_json(orient="values")
    stored = pd.read_json(io.StringIO(text), typ="series", orient="values", dtype=False)
    return [None if pd.isna(value) else float(value) for value in stored]


def encode(
    header: dict[str, Any], client: dict[str, Any], table: dict[str, Any] | None = None
) -> str:
    """The checkpoint file's text; Ax's snapshot last, after the small parts."""
    parts = {} if table is None else {TABLE_KEY: table}
    return json.dumps({FORMAT_KEY: FORMAT_VERSION, **header, **parts, "client": client})


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and check a checkpoint file.

    Raises:
        CheckpointError: The file is missing, is not JSON, or is not a checkpoint
            (the message says which, and what to use instead).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist") from None
    except UnicodeDecodeError:
        raise _not_a_checkpoint(path) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if not _starts_as_checkpoint(path):
            raise _not_a_checkpoint(path) from None
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt: not JSON ({exc}); ax-scheduler never"
            " writes half a file, so it was changed or truncated by something else"
        ) from None
    if not isinstance(data, dict) or FORMAT_KEY not in data:
        raise _not_a_checkpoint(path)
    if data[FORMAT_KEY] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {data[FORMAT_KEY]!r};"
            f" this ax-scheduler reads version {FORMAT_VERSION}"
        )
    try:
        return Checkpoint(
            path, str(data["experiment"]), str(data["runner"]), dict(data["config"]), data["client"]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt: {exc!r} is missing") from None


def _starts_as_checkpoint(path: Path) -> bool:
    from .cli.filekinds import Kind, file_kind  # here: cli.filekinds imports this module

    return file_kind(path).kind is Kind.CHECKPOINT


def _not_a_checkpoint(path: Path) -> CheckpointError:
    """What ``path`` is instead, and what takes it (an experiment file, an Ax snapshot ...)."""
    from .cli.filekinds import Use, file_kind, wrong_kind_message

    message = wrong_kind_message(path, file_kind(path), Use.RESUME_API)
    return CheckpointError(message or f"{str(path)!r} is not an ax-scheduler checkpoint")


def check_overwrite(path: Path, experiment: str, trial_count: int) -> None:
    """Refuse to start writing over another run's checkpoint.

    Raises:
        CheckpointError: ``path`` holds something else than an older checkpoint of
            this same run: another experiment's, one with more trials (resume it
            instead), or a file that is not a checkpoint at all.
    """
    if not path.exists():
        return
    try:
        found = read_checkpoint(path)
    except CheckpointError as exc:
        raise CheckpointError(f"checkpoint_path {str(path)!r} exists and: {exc}") from None
    if found.experiment != experiment:
        raise CheckpointError(
            f"checkpoint_path {str(path)!r} holds the checkpoint of experiment"
            f" {found.experiment!r}, not of {experiment!r}: choose another path, or"
            " continue that run with AxScheduler.resume(path, runner)"
        )
    if found.trial_count > trial_count:
        raise CheckpointError(
            f"checkpoint_path {str(path)!r} holds a run of {experiment!r} with"
            f" {found.trial_count} trials, more than this client's {trial_count}: continue"
            " it with AxScheduler.resume(path, runner), or choose another path"
        )


#: Writes one checkpoint with the given header; raises CheckpointError or OSError.
Save = Callable[[dict[str, Any]], Awaitable[None]]


def file_save(
    path: Path,
    snapshot: Callable[[], Awaitable[Snapshot]],
    write: Callable[[Path, str], None],
) -> Save:
    """The :data:`Save` of a JSON checkpoint file.

    Args:
        path: The file.
        snapshot: Returns Ax's JSON snapshot and the results table (on the
            scheduler's Ax thread: see :func:`take_snapshot`).
        write: Writes text to a path atomically (runs in a worker thread).
    """

    async def save(header: dict[str, Any]) -> None:
        taken = await snapshot()
        text = await asyncio.to_thread(encode, header, taken.client, taken.table)
        await asyncio.to_thread(write, path, text)

    return save


class Checkpointer:
    """Writes the checkpoint after changes, coalescing changes that come in a burst.

    Args:
        target: The checkpoint file, or a database URL (for messages).
        header: Returns the header fields (cheap; called on the event loop).
        save: Writes one checkpoint (:func:`file_save`, or the database's).
    """

    def __init__(
        self, target: Path | str, header: Callable[[], dict[str, Any]], save: Save
    ) -> None:
        self.target = target
        self._header = header
        self._save = save
        self._changes = 0  # changes so far
        self._included = 0  # changes the last finished write included
        self._urgent = asyncio.Event()
        self._written = asyncio.Event()  # set after each write
        self._not_before = 0.0  # monotonic time the next routine write may start
        self._writer: asyncio.Task[None] | None = None
        #: Writes done and the seconds they took, for the bench and tests.
        self.writes = 0
        self.seconds = 0.0

    def changed(self) -> int:
        """Note that the state changed; a write that includes it follows (paced).

        Returns:
            The change's number, for :meth:`includes`.
        """
        self._changes += 1
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_dirty(), name="ax-scheduler-checkpoint")
        return self._changes

    async def flush(self) -> None:
        """Write now (unpaced); return once the file includes every change so far."""
        wanted = self.changed()
        self._urgent.set()
        await self.includes(wanted)

    async def includes(self, change: int) -> bool:
        """Wait until the file on disk includes change number ``change`` (paced).

        Returns:
            True once it does; False if a write failed first (it was logged).
        """
        while self._included < change:
            writer = self._writer
            if writer is None or writer.done():
                return False  # the write failed (and was logged); the run goes on
            written = asyncio.ensure_future(self._written.wait())
            try:
                await shielded(asyncio.wait([written, writer], return_when=asyncio.FIRST_COMPLETED))
            finally:
                written.cancel()
        return True

    async def _write_dirty(self) -> None:
        while self._included < self._changes:
            await self._pace()
            self._urgent.clear()
            started = time.perf_counter()
            including = self._changes
            try:
                await self._save(self._header())
            except (OSError, CheckpointError) as exc:
                # The run goes on (its trials are worth more than the file); the
                # next change tries again, and every failure is logged.
                logger.error("cannot write the checkpoint %s: %s", self.target, exc)
                return
            took = time.perf_counter() - started
            self._included = including
            self._not_before = time.monotonic() + PACING * took
            self.writes += 1
            self.seconds += took
            self._written.set()
            self._written = asyncio.Event()

    async def _pace(self) -> None:
        """Wait until a routine write is due, or an urgent one is asked for."""
        wait = self._not_before - time.monotonic()
        if wait > 0 and not self._urgent.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._urgent.wait()
