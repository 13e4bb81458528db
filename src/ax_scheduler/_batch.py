"""batch_trial_context: collect parameterizations, then run them together."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._core import Scheduler


class Batch:
    """Trials added inside ``batch_trial_context()``.

    Attributes:
        parameters: The validated parameterizations, in add order.
        trial_indices: Their Ax trial indices, set when the batch is submitted.
    """

    def __init__(self, validate: Callable[[Any], dict[str, Any]]) -> None:
        self._validate = validate
        self.parameters: list[dict[str, Any]] = []
        self.trial_indices: list[int] = []

    def add_trial(self, parameters: dict[str, Any]) -> None:
        """Queue a trial with these parameters; it runs when the ``with`` block ends.

        If a trial with exactly these parameters was created by the Ax client's
        ``get_next_trial()`` and has not run, that trial is run instead of
        attaching a duplicate.

        Raises:
            InvalidParametersError: A ``ValueError`` naming the parameter that is
                unknown, missing, of the wrong type or out of bounds. Nothing is
                attached.
        """
        self.parameters.append(self._validate(parameters))

    def __len__(self) -> int:
        return len(self.parameters)


@asynccontextmanager
async def batch_context_async(core: Scheduler) -> AsyncIterator[Batch]:
    """Async batch: submitted (and with ``synchronous``, awaited) on normal exit."""
    batch = core.new_batch()
    try:
        yield batch
    except BaseException:
        core.discard_batch(batch)
        raise
    await core.submit_batch(batch)


@contextmanager
def batch_context_sync(core: Scheduler, call: Callable[..., Any]) -> Iterator[Batch]:
    """Sync twin of :func:`batch_context_async`; ``call`` runs a coroutine function
    on the scheduler's loop thread and blocks for its result."""
    batch = core.new_batch()
    try:
        yield batch
    except BaseException:
        core.discard_batch(batch)
        raise
    call(core.submit_batch, batch)
