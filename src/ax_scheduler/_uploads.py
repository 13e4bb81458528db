"""What remote runners upload for an objective: a function's pickle, a script's file.

Files are named by a hash of their content, so two objectives never share a file
unless they are byte for byte the same, and an objective set later never finds an
earlier one's upload. (Keying uploads by ``id(objective)`` let a new objective that
CPython placed at a freed one's address run the old objective's pickle.)

A function's pickle carries ``ax_scheduler.report`` and ``TrialStoppedEarly`` by
value (:func:`pickle_objective`), so an objective that imports them runs on a
cluster where ax-scheduler is not installed: the worker needs cloudpickle only.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import io
import types
from collections import ChainMap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import anyio
import cloudpickle

from . import _exceptions, _reporting
from ._jobs import FunctionObjective, ScriptObjective

#: What an objective may use of ax-scheduler on a cluster that does not have it:
#: ``report()`` and its error (both standard library only), pickled by value.
BY_VALUE: tuple[types.ModuleType, ...] = (_reporting, _exceptions)

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
        data = await anyio.to_thread.run_sync(pickle_objective, objective.fn)
        return Payload(f"objective-{_digest(data)}.pkl", data, 0o600)
    data = await anyio.Path(objective.script).read_bytes()
    return Payload(f"script-{_digest(data)}-{objective.script.name}", data, 0o755)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:DIGEST_CHARS]


def pickle_objective(fn: Callable[..., Any]) -> bytes:
    """``fn`` cloudpickled, with what it uses of :data:`BY_VALUE` carried by value.

    Blocking (pickling a large closure takes time): call it in a thread.
    """
    buffer = io.BytesIO()
    _ObjectivePickler(buffer).dump(fn)
    return buffer.getvalue()


def _reduce_context_var(var: contextvars.ContextVar[Any]) -> tuple[Any, tuple[str]]:
    """A new, empty ContextVar of the same name and default: a context's values stay here.

    ``report()`` keeps its per-context reporter in one; carried by value, it must
    come back as a fresh variable (a ContextVar itself does not pickle).
    """
    try:
        default = contextvars.Context().run(var.get)  # a fresh context holds the default only
    except LookupError:
        return contextvars.ContextVar, (var.name,)
    return functools.partial(contextvars.ContextVar, default=default), (var.name,)


class _ObjectivePickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle's pickler, carrying the functions and classes of :data:`BY_VALUE`
    by value, and their context variables as fresh ones.

    ``cloudpickle.register_pickle_by_value`` would do the same, but its registry
    is global: a local pool pickling a trial in another thread meanwhile would
    carry a copy of ``report()`` that does not know the pool's reporter. So the
    choice is made here, for this pickler alone, with cloudpickle's own by-value
    reducers; a cloudpickle without them pickles by reference, as before (the
    cluster then needs ax-scheduler for ``report()``).
    """

    dispatch_table: ClassVar[Any] = ChainMap(
        {contextvars.ContextVar: _reduce_context_var}, cloudpickle.Pickler.dispatch_table
    )

    def reducer_override(self, obj: Any) -> Any:
        if getattr(obj, "__module__", None) in _BY_VALUE_NAMES:
            if isinstance(obj, types.FunctionType) and hasattr(self, "_dynamic_function_reduce"):
                return self._dynamic_function_reduce(obj)
            by_value_class = getattr(cloudpickle.cloudpickle, "_dynamic_class_reduce", None)
            if isinstance(obj, type) and by_value_class is not None:
                return by_value_class(obj)
        return super().reducer_override(obj)


_BY_VALUE_NAMES = frozenset(module.__name__ for module in BY_VALUE)
