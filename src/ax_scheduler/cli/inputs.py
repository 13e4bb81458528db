"""Reading what a command is given: the kind of file it is, a checkpoint, an Ax snapshot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import EXIT_BAD_INPUT, CommandError

if TYPE_CHECKING:
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


def load_experiment(path: Path, kind: Kind) -> tuple[Any, dict[str, Any]]:
    """The Ax experiment of a checkpoint or a save_experiment() file, and the header.

    Raises:
        CommandError: The file cannot be read, or Ax cannot load what it holds.
    """
    from .._ax import AxAdapter, client_from_snapshot
    from .filekinds import Kind

    checkpoint = kind is Kind.CHECKPOINT
    data = read_json(path)
    snapshot = data.pop("client", None) if checkpoint else data
    try:
        client = client_from_snapshot(snapshot)
    except Exception as exc:  # noqa: BLE001 - whatever Ax's decoder raises
        raise CommandError(
            f"{path} {kind.value}, but Ax cannot load it ({type(exc).__name__}: {exc})",
            EXIT_BAD_INPUT,
        ) from None
    return AxAdapter.wrap(client).experiment, data if checkpoint else {}


def stored_max_trials(header: dict[str, Any]) -> int | None:
    """The max_trials of the experiment a checkpoint's header stores, if it stores one."""
    spec = header.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("experiment"), dict):
        found = spec["experiment"].get("max_trials")
        return found if isinstance(found, int) else None
    return None
