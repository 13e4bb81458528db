"""Small asyncio helpers shared by the core and the runners."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

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
