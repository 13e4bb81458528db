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

logger = logging.getLogger("ax_scheduler")

_callbacks: list[Callable[[], None]] = []
_ran = False


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


atexit.register(_run_callbacks)  # for exits that skip threading's hooks
