"""The run's events, for applications: ``async for event in scheduler.events()``.

The core emits one :class:`Event` per change, on the event loop: a run starts
or ends; a trial is queued, starts, reports, completes, fails, is stopped early
or abandoned. A web service that embeds the scheduler streams them to its page
(examples/events_app.py); a script registers a callback
(``scheduler.on_event(fn)``).

Each subscriber of :meth:`Events.subscribe` has its own bounded queue: a slow
reader never slows the run down, it loses the oldest events instead (counted in
the next event's ``dropped``). Callbacks run on the loop and must not block; one
that raises is logged and removed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("ax_scheduler")

#: Every kind of event, in the order a trial meets them.
EVENT_KINDS = (
    "run_started",
    "trial_queued",
    "trial_started",
    "trial_reported",
    "trial_completed",
    "trial_failed",
    "trial_early_stopped",
    "trial_abandoned",
    "run_ended",
)

#: Events a subscriber's queue holds before the oldest are dropped.
QUEUE_SIZE = 10_000


@dataclass(frozen=True)
class Event:
    """One change in a run.

    Attributes:
        kind: One of :data:`EVENT_KINDS`.
        trial_index: The trial, or None for ``run_started``/``run_ended``.
        time: When it happened (epoch seconds).
        data: What else there is to know, plain JSON data:
            ``trial_queued``: ``parameters``; ``trial_started``: ``runner``;
            ``trial_reported``: ``step``, ``metrics``; ``trial_completed``:
            ``metrics`` (name -> mean), ``seconds``; ``trial_failed``,
            ``trial_early_stopped``, ``trial_abandoned``: ``reason``;
            ``run_started``: ``max_trials``; ``run_ended``: ``completed``,
            ``failed``, ``early_stopped``, ``abandoned`` (trial lists) and
            ``stopped_because``.
        dropped: Events this subscriber lost before this one (its queue was full).
    """

    kind: str
    trial_index: int | None
    time: float
    data: dict[str, Any] = field(default_factory=dict)
    dropped: int = 0

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON-ready dict (for a web page, a log)."""
        return {
            "kind": self.kind,
            "trial_index": self.trial_index,
            "time": self.time,
            **self.data,
            **({"dropped": self.dropped} if self.dropped else {}),
        }


class _Subscriber:
    def __init__(self) -> None:
        # Bounded by put(), not by the queue: the end-of-stream None always fits.
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.dropped = 0

    def put(self, event: Event | None) -> None:
        if event is not None and self.queue.qsize() >= QUEUE_SIZE:
            oldest = self.queue.get_nowait()
            self.dropped += 1 + (oldest.dropped if oldest is not None else 0)
        if event is not None and self.dropped:
            event = Event(event.kind, event.trial_index, event.time, event.data, self.dropped)
            self.dropped = 0
        self.queue.put_nowait(event)


class Events:
    """Hands each event to every subscriber and callback (on the event loop)."""

    def __init__(self) -> None:
        self._subscribers: list[_Subscriber] = []
        self._callbacks: list[Callable[[Event], Any]] = []
        self._closed = False

    def emit(self, kind: str, trial_index: int | None = None, **data: Any) -> None:
        """Publish one event (cheap when nobody listens)."""
        if not self._subscribers and not self._callbacks:
            return
        event = Event(kind, trial_index, time.time(), data)
        for subscriber in self._subscribers:
            subscriber.put(event)
        for callback in list(self._callbacks):
            try:
                callback(event)
            except Exception:
                logger.exception("event callback %r raised; it gets no more events", callback)
                self._callbacks.remove(callback)

    def on_event(self, callback: Callable[[Event], Any]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns what unregisters it.

        Raises:
            TypeError: ``callback`` is not callable.
        """
        if not callable(callback):
            raise TypeError(f"on_event takes a callable, got {callback!r}")
        self._callbacks.append(callback)

        def remove() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return remove

    async def subscribe(self) -> AsyncIterator[Event]:
        """Every event from now on, until the scheduler closes."""
        subscriber = _Subscriber()
        if self._closed:
            return
        self._subscribers.append(subscriber)
        try:
            while (event := await subscriber.queue.get()) is not None:
                yield event
        finally:
            self._subscribers.remove(subscriber)

    def close(self) -> None:
        """End every subscription (after the events already queued)."""
        self._closed = True
        for subscriber in self._subscribers:
            subscriber.put(None)
