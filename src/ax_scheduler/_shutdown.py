"""Clean-up at interpreter exit that runs before worker pools are joined.

threading's exit hooks run in reverse registration order, before non-daemon
threads are joined. loky registers one, at the first submit to each new pool,
that waits for running jobs: a script that ends with background trials would hang
until they finish. :func:`arm` (re-)registers our hook after such a pool starts,
so it runs first: it closes open schedulers, which records their trials and kills
their workers. The hook runs once however often it was registered.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

logger = logging.getLogger("ax_scheduler")

_callbacks: list[Callable[[], None]] = []
_ran = False


class Closable(Protocol):
    def close(self) -> None: ...


#: Strong references: a scheduler whose variable went out of scope may still run
#: background trials, and must still be closed (trials recorded, workers stopped).
_open: set[Any] = set()  # Closable; any object may be forgotten


def close_at_exit(scheduler: Closable) -> None:
    """Close ``scheduler`` at exit if it is still open: a script that never calls
    close() still exits promptly, leaving no workers."""
    _open.add(scheduler)


def forget(scheduler: object) -> None:
    """``scheduler`` was closed: nothing to do for it at exit."""
    _open.discard(scheduler)


def _close_open() -> None:
    for scheduler in list(_open):
        try:
            scheduler.close()
        except Exception:
            logger.exception("closing %r at exit failed", scheduler)


def on_exit(callback: Callable[[], None]) -> None:
    """Run ``callback`` at interpreter exit, once, before pools are joined."""
    _callbacks.append(callback)


def arm() -> None:
    """Make sure our exit hook runs before every threading exit hook so far.

    ``threading._register_atexit`` is private, and there is no public way: loky
    registers its pool-joining hook with it, and ``atexit`` hooks run only after
    those have joined. tests/test_private_apis.py fails loudly if it goes away.
    """
    with contextlib.suppress(RuntimeError):  # already shutting down
        threading._register_atexit(_run_callbacks)  # type: ignore[attr-defined]


def _run_callbacks() -> None:
    global _ran
    if _ran:
        return
    _ran = True
    for callback in _callbacks:
        try:
            callback()
        except Exception:
            logger.exception("ax-scheduler clean-up at exit failed")


_callbacks.append(_close_open)
atexit.register(_run_callbacks)  # for exits that skip threading's hooks
