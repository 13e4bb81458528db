"""Reading what a command is given: the kind of file it is, a checkpoint, an Ax snapshot.

A checkpoint's trials are read from the results table it keeps (``json`` alone:
``status`` answers in a fraction of a second); an older checkpoint without one,
and a save_experiment() file, through Ax (seconds, to import it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._checkpoint import TABLE_KEY
from .._table import TrialTable
from . import logs
from .errors import EXIT_BAD_INPUT, CommandError

if TYPE_CHECKING:
    from .._sqlstore import StoredRun
    from .filekinds import Kind, Use


def expect(path: Path, use: Use) -> Kind:
    """The kind of file ``path`` is, if one that ``use`` takes.

    Raises:
        CommandError: It is not: the message says what it is and what takes it.
    """
    from .filekinds import file_kind, wrong_kind_message

    try:
        found = file_kind(path)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}", EXIT_BAD_INPUT) from None
    message = wrong_kind_message(path, found, use)
    if message is not None:
        raise CommandError(message, EXIT_BAD_INPUT)
    return found.kind


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file that holds an object (a checkpoint's or a snapshot's).

    Raises:
        CommandError: It cannot be read, is not JSON, or holds no object.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read {path}: {exc}", EXIT_BAD_INPUT) from None
    if not isinstance(data, dict):
        raise CommandError(f"{path} is not a run: it holds a {type(data).__name__}", EXIT_BAD_INPUT)
    return data


def read_run(target: str, use: Use) -> tuple[TrialTable, dict[str, Any], str]:
    """The trials of a checkpoint (a file or a database URL) or a save_experiment()
    file, a checkpoint's header, and how to name it in messages (no password).

    Raises:
        CommandError: It is missing, of the wrong kind, or cannot be read.
    """
    from .._sqlstore import is_database_url, redacted

    if is_database_url(target):
        stored = _stored_run(target)
        table = TrialTable.from_json(stored.table)
        if table is None:
            raise CommandError(
                f"the run in {redacted(target)!r} has no results table yet (its first"
                " checkpoint write has not happened)",
                EXIT_BAD_INPUT,
            )
        return table, stored.header, redacted(target)
    path = _existing_file(target)
    trials, header = load_trials(path, expect(path, use))
    return trials, header, target


def resume_target(target: str) -> tuple[Path | str, dict[str, Any]]:
    """What ``resume`` continues (an absolute path, or a database URL) and its header.

    Raises:
        CommandError: It is missing, not a checkpoint, or cannot be read.
    """
    from .._sqlstore import is_database_url
    from .filekinds import Use

    if is_database_url(target):
        return target, dict(_stored_run(target).header)
    path = _existing_file(target)
    expect(path, Use.RESUME)
    header = read_json(path)
    header.pop("client", None)  # AxScheduler.resume reads it again; not kept for the run
    return Path(os.path.abspath(path)), header


def _stored_run(url: str) -> StoredRun:
    """The one run in the database at ``url``; a CommandError if there is none."""
    from .._exceptions import CheckpointError
    from .._sqlstore import the_stored_run

    try:
        return the_stored_run(url)
    except CheckpointError as exc:
        raise CommandError(str(exc), EXIT_BAD_INPUT) from None


def _existing_file(target: str) -> Path:
    """``target`` as a path to a file; a CommandError if it is missing or a directory."""
    path = Path(target)
    if not path.exists():
        raise CommandError(f"{target!r} does not exist", EXIT_BAD_INPUT)
    if path.is_dir():
        raise CommandError(f"{target!r} is a directory, not a checkpoint", EXIT_BAD_INPUT)
    return path


def load_trials(path: Path, kind: Kind) -> tuple[TrialTable, dict[str, Any]]:
    """The trials of a checkpoint or a save_experiment() file, and a checkpoint's header.

    Raises:
        CommandError: The file cannot be read, or Ax cannot load what it holds.
    """
    from .filekinds import Kind

    data = read_json(path)
    if kind is not Kind.CHECKPOINT:
        return _trials_through_ax(path, kind, data), {}
    snapshot = data.pop("client", None)
    stored = TrialTable.from_json(data.pop(TABLE_KEY, None))
    if stored is None:  # an older ax-scheduler's checkpoint, or a table of another layout
        stored = _trials_through_ax(path, kind, snapshot)
    return stored, data


def _trials_through_ax(path: Path, kind: Kind, snapshot: Any) -> TrialTable:
    """The trials of Ax's snapshot of a client (or of a bare experiment)."""
    logs.import_ax(verbose=False)
    from .._ax import AxAdapter, client_from_snapshot
    from .._table import trial_table

    try:
        client = client_from_snapshot(snapshot)
    except Exception as exc:  # noqa: BLE001 - whatever Ax's decoder raises
        raise CommandError(
            f"{path} {kind.value}, but Ax cannot load it ({type(exc).__name__}: {exc})",
            EXIT_BAD_INPUT,
        ) from None
    return trial_table(AxAdapter.wrap(client).experiment)


def stored_max_trials(header: dict[str, Any]) -> int | None:
    """The max_trials of the experiment a checkpoint's header stores, if it stores one."""
    spec = header.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("experiment"), dict):
        found = spec["experiment"].get("max_trials")
        return found if isinstance(found, int) else None
    return None
