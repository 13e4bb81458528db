"""What remote runners upload for an objective: a function's pickle, a script's file.

Files are named by a hash of their content, so two objectives never share a file
unless they are byte for byte the same, and an objective set later never finds an
earlier one's upload. (Keying uploads by ``id(objective)`` let a new objective that
CPython placed at a freed one's address run the old objective's pickle.)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import anyio
import cloudpickle

from ._jobs import FunctionObjective, ScriptObjective

#: Hex digits of the content hash in a file name: collisions are not a concern.
DIGEST_CHARS = 16


@dataclass(frozen=True)
class Payload:
    """One file to put next to the jobs.

    Attributes:
        name: The file's name, unique per content (``objective-<hash>.pkl``).
        data: Its bytes.
        mode: Its permissions (0600 for a pickle, 0755 for a script).
    """

    name: str
    data: bytes
    mode: int


class Payloads:
    """Each objective's payload, built once per objective object.

    The cache holds the objective itself, not its ``id``: an entry keeps its
    objective alive, so no other object can take its address while it is cached.
    """

    def __init__(self) -> None:
        self._built: dict[int, tuple[FunctionObjective | ScriptObjective, Payload]] = {}

    async def of(self, objective: FunctionObjective | ScriptObjective) -> Payload:
        """The objective's payload: its cloudpickle, or the script file's content."""
        entry = self._built.get(id(objective))
        if entry is None:
            entry = (objective, await _build(objective))
            self._built[id(objective)] = entry
        return entry[1]


async def _build(objective: FunctionObjective | ScriptObjective) -> Payload:
    if isinstance(objective, FunctionObjective):
        data = await anyio.to_thread.run_sync(cloudpickle.dumps, objective.fn)
        return Payload(f"objective-{_digest(data)}.pkl", data, 0o600)
    data = await anyio.Path(objective.script).read_bytes()
    return Payload(f"script-{_digest(data)}-{objective.script.name}", data, 0o755)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:DIGEST_CHARS]
