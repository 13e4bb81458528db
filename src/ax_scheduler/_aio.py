"""Small asyncio helpers shared by the core and the runners."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")


async def shielded(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` to its end even if this task is cancelled meanwhile.

    Clean-up (killing a job, recording a trial as abandoned) must finish before a
    cancellation propagates. ``asyncio.shield`` alone is not enough: anyio's cancel
    scopes (the sync facade's portal, ``anyio.fail_after``) re-deliver cancellation
    at every await, so the wait itself would be cut short. This keeps waiting
    through both kinds; the caller re-raises its own cancellation afterwards.
    """
    future = asyncio.ensure_future(awaitable)
    with anyio.CancelScope(shield=True):
        while True:
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                if future.cancelled():
                    raise
    # A shielded scope swallows nothing here; mypy cannot know the loop only returns.
    raise AssertionError("unreachable")


class Coalesced(Generic[T]):
    """Items handed in within ``window`` seconds of each other are handled by one call.

    For commands that take many arguments where each caller has one (``scancel``
    of the jobs cancelled together, ``rm`` of the folders of trials that finished
    together): one remote command instead of one per item. Every caller waits for
    the call that handles its items and sees its error.

    Args:
        handle: Called with the items, in the order they came, each once.
        window: Seconds the first item waits for others to join it.
    """

    def __init__(self, handle: Callable[[list[T]], Awaitable[None]], window: float = 0.01) -> None:
        self._handle = handle
        self._window = window
        self._items: dict[T, None] = {}  # ordered, without duplicates
        self._call: asyncio.Future[None] | None = None

    async def add(self, items: Iterable[T]) -> None:
        """Hand in ``items``; return once the call that handled them has."""
        self._items.update(dict.fromkeys(items))
        if self._call is None:
            self._call = asyncio.ensure_future(self._handle_soon())
            # Seen by its awaiters; this keeps asyncio from logging an error nobody awaited.
            self._call.add_done_callback(lambda call: call.cancelled() or call.exception())
        await asyncio.shield(self._call)

    async def _handle_soon(self) -> None:
        await asyncio.sleep(self._window)  # let the others of this moment join
        items, self._items, self._call = list(self._items), {}, None
        await self._handle(items)
