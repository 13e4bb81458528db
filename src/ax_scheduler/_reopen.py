"""Reopening a run: the client of a saved file or of a checkpoint, and what it left RUNNING."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._ax import AxAdapter, client_from_snapshot
from ._checkpoint import Checkpoint, read_checkpoint
from ._exceptions import CheckpointError
from ._sqlstore import is_database_url, load_client, redacted, the_stored_run

logger = logging.getLogger("ax_scheduler")

#: Why a trial a saved file shows RUNNING is failed when the file is loaded.
STOPPED_BEFORE_SAVED = "the scheduler running this trial stopped before it finished"


def saved_client(path: str | os.PathLike[str]) -> Any:
    """The Ax client of a ``save_experiment`` (or Ax ``save_to_json_file``) file."""
    return client_from_snapshot(json.loads(Path(path).read_text(encoding="utf-8")))


def fail_unfinished(adapter: AxAdapter, path: str | os.PathLike[str]) -> None:
    """Fail the trials a saved file shows RUNNING: their jobs did not outlive the save."""
    for index in adapter.stale_dispatched_trials():
        adapter.fail(index, STOPPED_BEFORE_SAVED)
        logger.warning("trial %d was still running when %s was saved: marked FAILED", index, path)


def checkpointed(
    path: str | os.PathLike[str], changes: Mapping[str, Any] | None
) -> tuple[Checkpoint, Any, dict[str, Any]]:
    """A checkpoint, its client, and its options with ``changes`` applied.

    Raises:
        CheckpointError: The file is missing, corrupt, or not a checkpoint.
    """
    if is_database_url(path):
        return _from_database(str(path), changes)
    checkpoint = read_checkpoint(path)
    options = {**checkpoint.config, "checkpoint_path": str(checkpoint.path), **(changes or {})}
    try:
        client = client_from_snapshot(checkpoint.client)
    except Exception as exc:  # noqa: BLE001 - whatever Ax's decoder raises
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt: Ax cannot load its"
            f" experiment ({type(exc).__name__}: {exc})"
        ) from None
    return checkpoint, client, options


def _from_database(
    url: str, changes: Mapping[str, Any] | None
) -> tuple[Checkpoint, Any, dict[str, Any]]:
    """:func:`checkpointed` for a run in a database (``checkpoint_path`` a URL)."""
    stored = the_stored_run(url)
    header = stored.header
    try:
        experiment, runner, config = header["experiment"], header["runner"], header["config"]
    except KeyError as exc:
        raise CheckpointError(
            f"checkpoint {redacted(url)!r} is corrupt: {exc} is missing"
        ) from None
    client = load_client(url, experiment, header.get("client_type", "AxClient"))
    checkpoint = Checkpoint(redacted(url), experiment, runner, dict(config), {})
    options = {**config, "checkpoint_path": url, **(changes or {})}
    return checkpoint, client, options
