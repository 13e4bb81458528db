"""The one thread that touches Ax: a single worker that runs urgent calls first.

Ax is not thread-safe, so every Ax call goes through one thread. A plain
one-thread executor runs calls in submission order, which lets a candidate
generation (17 ms for Sobol, 0.3 s+ for a BoTorch fit) sit in front of a
finished trial's result: the trial is recorded late, and Ax then generates from
data that is one result short. Here calls marked urgent (recording an outcome)
overtake queued routine ones (generation, snapshots); within a priority the order
is submission order. A call already running is never interrupted.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

URGENT, ROUTINE, STOP = 0, 1, 2


class AxThread:
    """A single worker thread with a two-level priority queue.

    Args:
        name: The thread's name (shown by py-spy, faulthandler and debuggers).
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: queue.PriorityQueue[tuple[int, int, Any]] = queue.PriorityQueue()
        self._order = itertools.count()  # FIFO within a priority; never compares calls
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def submit(self, fn: Callable[..., T], *args: Any, urgent: bool = False) -> Future[T]:
        """Queue ``fn(*args)``; urgent calls run before every queued routine one.

        Raises:
            RuntimeError: After :meth:`shutdown`.
        """
        future: Future[T] = Future()
        with self._lock:
            if self._stopped:
                raise RuntimeError(f"{self._name}: cannot run new Ax calls after shutdown")
            self._queue.put((URGENT if urgent else ROUTINE, next(self._order), (future, fn, args)))
            if self._thread is None:
                # A daemon, like asyncio's to_thread workers are not: an Ax call
                # cannot be interrupted, and must not keep a dying interpreter alive.
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()
        return future

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the Ax thread, at once if this is it, else queued.

        For a done callback of an Ax call's future: it runs on the thread that
        completed the future (this one), or on the caller's thread if the future
        was already done; either way Ax is touched only here.
        """
        if threading.current_thread() is self._thread:
            fn(*args)
        else:
            self.submit(fn, *args)

    def shutdown(self) -> None:
        """Stop taking calls; the thread ends after running those already queued."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._queue.put((STOP, next(self._order), None))

    def _work(self) -> None:
        while True:
            _, _, call = self._queue.get()
            if call is None:
                return
            future, fn, args = call
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting caller
                future.set_exception(exc)
            else:
                future.set_result(result)
