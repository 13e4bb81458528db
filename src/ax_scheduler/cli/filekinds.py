"""What kind of file a user handed over, and what to run instead when it is the wrong one.

Three kinds of file go to the command line and to :meth:`AxScheduler.resume`: an
experiment file (YAML, for ``ax-scheduler run``), a run's checkpoint (JSON whose
first key is ``ax_scheduler_checkpoint``) and an Ax JSON snapshot written by
``save_experiment()`` (``_type`` ``AxClient``/``Client``, or a bare ``__type``
``Experiment``). A file of the wrong kind gets one message saying what it is and
the command or call that takes it, instead of a parser's complaint about it.

Recognising is cheap, as it runs before every command: the first
:data:`HEAD_BYTES` tell (a checkpoint's or a snapshot's first key, an experiment
file's keys); only JSON whose first key does not tell is read whole. Ax is never
imported.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import shlex
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from .._checkpoint import FORMAT_KEY

#: The ``_type`` (a client) or ``__type`` (an experiment) of an Ax JSON snapshot.
SNAPSHOT_TYPES = ("AxClient", "Client", "Experiment")
#: The keys every experiment file has (``ExperimentSpec``'s required fields).
EXPERIMENT_KEYS = ("name", "parameters", "objectives", "objective", "runner", "max_trials")
YAML_SUFFIXES = (".yaml", ".yml")
HEAD_BYTES = 64 * 1024

_FIRST_KEY = re.compile(r'\s*\{\s*"([^"\\]*)"\s*:\s*(?:"([^"\\]*)")?')
# A key at the start of a line (block YAML) or after "{" or "," (flow YAML, JSON).
_EXPERIMENT_KEY = re.compile(
    rf"(?:^|[{{,])[ \t]*[\"']?(?:{'|'.join(EXPERIMENT_KEYS)})[\"']?[ \t]*:", re.MULTILINE
)
_JSON_TYPES = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}


class Kind(Enum):
    """The kinds of file the command line and ``AxScheduler.resume`` take."""

    EXPERIMENT = "is an experiment file"
    CHECKPOINT = "is an ax-scheduler checkpoint"
    SNAPSHOT = "was written by save_experiment()"
    OTHER = "is none of them"


@dataclass(frozen=True)
class FileKind:
    """A file's kind and, for one of no kind, what it holds (``"is empty"``)."""

    kind: Kind
    holds: str = ""


class Use(Enum):
    """What a file was given to: it decides the kinds accepted and the advice."""

    RUN = "ax-scheduler run"
    RESUME = "ax-scheduler resume"
    STATUS = "ax-scheduler status"
    REPORT = "ax-scheduler report"
    RESUME_API = "AxScheduler.resume"


_RUN = (
    "the checkpoint `ax-scheduler run` keeps (run.json by default, or the file's"
    " config.checkpoint_path)"
)
#: Per use: the kinds it takes, how they are named after "not", and what a file of
#: no kind should have been.
_WANTED: dict[Use, tuple[frozenset[Kind], str, str]] = {
    Use.RUN: (
        frozenset({Kind.EXPERIMENT}),
        "an experiment file",
        f"YAML with the keys {', '.join(EXPERIMENT_KEYS[:-1])} and {EXPERIMENT_KEYS[-1]}"
        " (docs/cli.md describes them)",
    ),
    Use.RESUME: (frozenset({Kind.CHECKPOINT}), "a checkpoint", _RUN),
    Use.STATUS: (
        frozenset({Kind.CHECKPOINT, Kind.SNAPSHOT}),
        "a checkpoint or a save_experiment() file",
        f"{_RUN} or a file written by save_experiment() or Ax's save_to_json_file()",
    ),
    Use.RESUME_API: (
        frozenset({Kind.CHECKPOINT}),
        "an ax-scheduler checkpoint",
        "the checkpoint a run writes to its config.checkpoint_path (JSON whose first key is"
        f" {FORMAT_KEY!r})",
    ),
}
_WANTED[Use.REPORT] = _WANTED[Use.STATUS]


def file_kind(path: str | os.PathLike[str]) -> FileKind:
    """Recognise a file by its name and first bytes (the whole file only for odd JSON).

    Raises:
        OSError: The file cannot be read.
    """
    path = Path(path)
    with path.open("rb") as file:
        head = file.read(HEAD_BYTES)
    text = _decoded(head, whole=len(head) < HEAD_BYTES)
    if text is None:
        return FileKind(Kind.OTHER, "is binary, not text")
    if not text.strip():
        return FileKind(Kind.OTHER, "is empty")
    holds = "is neither JSON nor YAML with an experiment file's keys"
    if text.lstrip().startswith(("{", "[")):
        marked = _marked_kind(text)
        if marked is not None:
            return FileKind(marked)
        try:
            return _json_kind(json.loads(path.read_text(encoding="utf-8")))
        except ValueError as exc:  # not JSON: YAML's flow style, or broken
            holds = f"is not valid JSON ({exc})"
    if _EXPERIMENT_KEY.search(text) or path.suffix.lower() in YAML_SUFFIXES:
        return FileKind(Kind.EXPERIMENT)
    return FileKind(Kind.OTHER, holds)


def wrong_kind_message(path: str | os.PathLike[str], found: FileKind, use: Use) -> str | None:
    """What to say when ``found`` is not a kind ``use`` takes, naming what does; else None.

    Args:
        path: The file as the user named it.
        found: Its kind (:func:`file_kind`).
        use: What it was given to.
    """
    accepted, wanted, expected = _WANTED[use]
    if found.kind in accepted:
        return None
    name = repr(str(path)) if use is Use.RESUME_API else str(path)
    if found.kind is Kind.OTHER:
        return f"{name} is not {wanted}: it {found.holds}; expected {expected}"
    return f"{name} {found.kind.value}, not {wanted}: {_advice(found.kind, use, str(path))}"


def _advice(kind: Kind, use: Use, path: str) -> str:
    """The command or call that takes a file of ``kind``."""
    quoted = shlex.quote(path)
    if kind is Kind.CHECKPOINT:
        return f"continue it with `ax-scheduler resume {quoted}`"
    if kind is Kind.SNAPSHOT:
        load = "AxScheduler.load_experiment(path, runner)"
        if use is Use.RESUME_API:
            return f"load it with {load}"
        return (
            f"show its trials with `ax-scheduler status {quoted}`, or continue it in Python"
            f" with {load}"
        )
    advice = f"start it with `ax-scheduler run {quoted}`"
    if use in (Use.STATUS, Use.REPORT):
        advice += (
            f"; `{use.value}` reads the checkpoint the run keeps (run.json next to it, or its"
            " config.checkpoint_path)"
        )
    return advice


def _decoded(head: bytes, *, whole: bool) -> str | None:
    """The text of a file's first bytes, or None if they are not UTF-8 text."""
    if b"\0" in head:
        return None
    try:
        # Incremental: the head may end inside a character.
        return codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=whole)
    except UnicodeDecodeError:
        return None


def _marked_kind(head: str) -> Kind | None:
    """The kind a JSON file's first key declares, as ax-scheduler and Ax write them."""
    first = _FIRST_KEY.match(head)
    if first is None:
        return None
    key, value = first.groups()
    if key == FORMAT_KEY:
        return Kind.CHECKPOINT
    if key in ("_type", "__type") and value in SNAPSHOT_TYPES:
        return Kind.SNAPSHOT
    return None


def _json_kind(data: Any) -> FileKind:
    """The kind of a whole JSON document, its keys in any order."""
    if not isinstance(data, dict):
        return FileKind(Kind.OTHER, f"holds a JSON {_JSON_TYPES.get(type(data), 'number')}")
    if FORMAT_KEY in data:
        return FileKind(Kind.CHECKPOINT)
    if (data.get("_type") or data.get("__type")) in SNAPSHOT_TYPES:
        return FileKind(Kind.SNAPSHOT)
    if set(EXPERIMENT_KEYS) & set(data):
        return FileKind(Kind.EXPERIMENT)  # an experiment file written as JSON, which is YAML
    if not data:
        return FileKind(Kind.OTHER, "holds an empty JSON object")
    keys = ", ".join(repr(key) for key in list(data)[:5])
    more = f" and {len(data) - 5} more" if len(data) > 5 else ""
    noun = "key" if len(data) == 1 else "keys"
    return FileKind(Kind.OTHER, f"holds JSON with the {noun} {keys}{more}")
