"""The one event-loop thread behind the sync facade.

Sync methods run the async core on a private loop in a daemon thread (anyio's
blocking portal), not with ``asyncio.run`` per call: the loop keeps running between
calls, so ``synchronous=False`` trials progress in the background, and the sync API
works from a thread that already runs a loop (a Jupyter cell).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

T = TypeVar("T")

#: How long Ctrl-C waits for the cancelled call to record its trials; a second
#: Ctrl-C skips the wait.
CLEANUP_SECONDS = 30.0


class Portal:
    """An event loop in a daemon thread, and blocking calls into it."""

    def __init__(self) -> None:
        self._manager = start_blocking_portal(backend="asyncio", name="ax-scheduler-loop")
        self._portal: BlockingPortal = self._manager.__enter__()

    def call(
        self,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        on_interrupt: Callable[[], None] | None = None,
    ) -> T:
        """Run ``await fn(*args)`` on the loop thread and return its result.

        On Ctrl-C, ``on_interrupt`` runs, the call is cancelled and its clean-up
        (cancelling trials, recording them in Ax) awaited before
        ``KeyboardInterrupt`` propagates.
        """
        finished = threading.Event()
        future: concurrent.futures.Future[T] = self._portal.start_task_soon(
            _signal_when_done, fn, args, finished
        )
        try:
            return future.result()
        except KeyboardInterrupt:
            if on_interrupt is not None:
                on_interrupt()
            future.cancel()
            with contextlib.suppress(KeyboardInterrupt):
                finished.wait(CLEANUP_SECONDS)
            raise

    def stop(self) -> None:
        """Stop the loop thread; pending tasks are cancelled."""
        self._manager.__exit__(None, None, None)


async def _signal_when_done(
    fn: Callable[..., Awaitable[T]], args: tuple[Any, ...], done: threading.Event
) -> T:
    try:
        return await fn(*args)
    finally:
        done.set()
