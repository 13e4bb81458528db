"""What every part of the core shares: the Ax side, the runner, the options, the clock.

The core is a few collaborators (trials, the run loop, batches, resume) wired
together by :class:`~ax_scheduler._core.Scheduler`; each gets this one context
instead of a reference to the others' state. The rule they all keep: Ax objects
(``ax``, the experiment) are touched only by functions handed to the Ax thread
with :meth:`Context.call_ax`, never on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._aio import shielded
from ._ax import AxAdapter
from ._axthread import AxThread
from ._checkpoint import Checkpointer
from ._clock import Clock
from ._config import SchedulerConfig
from ._events import Events
from ._exceptions import SchedulerClosedError
from ._outcomes import Progress
from .runners._base import Runner

T = TypeVar("T")


@dataclass
class Context:
    """The scheduler's shared parts.

    Attributes:
        ax: The Ax client, wrapped; only for functions that run on ``ax_thread``.
        runner: Where trials run.
        config: Validated options.
        clock: Times every timeout and back-off (a fake one in tests).
        progress: The live counters the progress display reads.
        ax_thread: The one thread that touches Ax.
        checkpoint: Rewrites the checkpoint after changes, if one is configured.
        closed: Set once the scheduler is closed: nothing new may start.
        events: The run's events, for applications (emitted on the loop).
    """

    ax: AxAdapter
    runner: Runner
    config: SchedulerConfig
    clock: Clock
    progress: Progress
    ax_thread: AxThread
    checkpoint: Checkpointer | None = None
    closed: bool = False
    events: Events = field(default_factory=Events)

    async def call_ax(self, fn: Callable[..., T], *args: Any, urgent: bool = False) -> T:
        """Run a blocking Ax operation on the Ax thread.

        ``urgent`` (recording a trial's outcome) runs before queued routine calls.
        """
        return await asyncio.wrap_future(self.ax_thread.submit(fn, *args, urgent=urgent))

    def check_open(self) -> None:
        """Refuse to start anything on a closed scheduler.

        Raises:
            SchedulerClosedError: It is closed.
        """
        if self.closed:
            raise SchedulerClosedError("this AxScheduler is closed; create a new one")

    def changed(self) -> int:
        """A trial's state changed: the checkpoint follows. Returns the change's number."""
        return self.checkpoint.changed() if self.checkpoint is not None else 0

    async def save_checkpoint(self) -> None:
        """Write the checkpoint now and wait for it, even if cancelled meanwhile."""
        if self.checkpoint is not None:
            await shielded(self.checkpoint.flush())
