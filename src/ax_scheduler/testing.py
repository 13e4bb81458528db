"""Fakes for testing campaign code in milliseconds, without workers or a cluster.

The way httpx ships a mock transport: the fakes implement the library's own
interfaces and are passed in, never patched in::

    from ax_scheduler import AxScheduler
    from ax_scheduler.testing import FakeClock, FakeRunner

    clock = FakeClock()
    runner = FakeRunner(lambda parameters: (10.0, {"objective": parameters["x"]}), clock=clock)
    scheduler = AxScheduler(ax_client, runner, clock=clock)

Campaign code written for a :class:`~ax_scheduler.SlurmRunner` is tested on a
:class:`FakeTransport`, a scripted login node (``SlurmRunner(transport=...)``).

ax-scheduler's own logic tests use the same fakes. They are for unit tests: the
real runners are tested against real processes, a real Slurm cluster, real sshd
and a real Docker engine.
"""

from __future__ import annotations

from ._fakeclock import FakeClock
from ._fakerunner import FakeRunner
from ._faketransport import FakeTransport

__all__ = ["FakeClock", "FakeRunner", "FakeTransport"]
