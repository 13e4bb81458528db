"""SSHRunner's pool of hosts: their slots, their health, one reconnect at a time.

A trial takes a slot on the healthy host with the most free slots. Every command
or file operation on a host goes through :meth:`HostPool.call`: a host that cannot
be reached is marked down there, once, and the trials that were using it learn
it as :class:`_Lost` (the runner resubmits them elsewhere).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncssh

from ._config import SSHHost
from ._exceptions import InfrastructureError, RunnerError
from ._remote import HostTransport
from ._remotejob import ReadFile, RemoteSession

logger = logging.getLogger("ax_scheduler")
T = TypeVar("T")

#: Why trials still running when the runner closes fail.
CLOSED = "the SSH runner was closed; the trial's processes were stopped"


class _Lost(Exception):
    """The trial cannot finish on its host (it went down, or the start was lost): resubmit.

    Private: the runner catches it; a user sees the InfrastructureError it becomes.
    """


@dataclass(eq=False)
class Host:
    """One host of the pool: its connection, its session directory, its busy slots."""

    options: SSHHost
    transport: HostTransport
    session: RemoteSession
    running: int = 0
    down: str | None = None  # why it is out of the pool
    reconnect: asyncio.Future[None] | None = None

    @property
    def address(self) -> str:
        return self.options.address

    @property
    def free(self) -> int:
        return self.options.slots - self.running

    def env(self) -> list[str]:
        """``env NAME=VALUE ...`` for the host's ``env``, or nothing."""
        env = [f"{name}={value}" for name, value in self.options.env.items()]
        return ["env", *env] if env else []

    def python(self) -> list[str]:
        """The worker's interpreter, behind ``env NAME=VALUE ...`` if the host sets any."""
        return [*self.env(), self.options.python]


class HostPool:
    """The hosts of one SSHRunner, and the slots their trials take.

    Args:
        hosts: The hosts, each with its transport and session.
    """

    def __init__(self, hosts: list[Host]) -> None:
        self.hosts = hosts
        #: No new trials; the running ones are being stopped.
        self.closing = False
        #: Connections closed: nothing may reconnect.
        self.closed = False
        self._slot_freed = asyncio.Event()  # replaced after each set(): a pulse

    def up(self) -> list[Host]:
        """The hosts in the pool (not down)."""
        return [host for host in self.hosts if host.down is None]

    def find(self, address: Any) -> Host | None:
        """The host at ``address`` (``user@host:port``), if it is one of the pool's."""
        return next((host for host in self.hosts if host.address == address), None)

    def check(self, problem: str) -> None:
        """Raise if every host is down; warn about those that are.

        Raises:
            RunnerError: ``problem``, and why each host is down.
        """
        down = [host for host in self.hosts if host.down is not None]
        if len(down) == len(self.hosts):
            raise RunnerError(f"{problem}: {self.why_down()}")
        for host in down:
            logger.warning(
                "SSH host %s left out, trials run on the others: %s", host.address, host.down
            )

    def why_down(self) -> str:
        return "; ".join(f"{host.address}: {host.down}" for host in self.hosts if host.down)

    async def call(self, host: Host, operation: Callable[[], Awaitable[T]]) -> T:
        """Run one transport operation; a host that cannot be reached is marked down.

        Raises:
            _Lost: The host is (now) down.
            InfrastructureError: The runner is closed, or SFTP refused a file operation.
        """
        if self.closed:
            raise InfrastructureError(CLOSED, retryable=False)
        if host.down is not None:
            raise _Lost(host.down)
        try:
            await self._connected(host)
            return await operation()
        except RunnerError as exc:
            self.mark_down(host, str(exc))
            raise _Lost(str(exc)) from None
        except asyncssh.SFTPError as exc:
            raise InfrastructureError(f"{host.address}: {exc.reason}") from None

    def reader(self, host: Host) -> ReadFile:
        """Reads files on ``host`` through :meth:`call`."""

        async def read_file(path: str, *, tail: int | None = None) -> bytes | None:
            return await self.call(host, lambda: host.transport.read_file(path, tail=tail))

        return read_file

    async def _connected(self, host: Host) -> None:
        """Wait for the host's connection; trials that find it broken share one reconnect."""
        if host.reconnect is None or host.reconnect.done():
            host.reconnect = asyncio.ensure_future(host.transport.connect())
            # Its awaiters see the error; this keeps asyncio from logging it again.
            host.reconnect.add_done_callback(lambda done: done.cancelled() or done.exception())
        await asyncio.shield(host.reconnect)

    def mark_down(self, host: Host, reason: str) -> None:
        """Take ``host`` out of the pool; the trials waiting for a slot look again."""
        if host.down is None:
            host.down = reason
            logger.error("SSH host %s is down: %s", host.address, reason)
        self.wake()

    def wake(self) -> None:
        """Let trials waiting for a slot look again: a slot is free or a host went down."""
        self._slot_freed.set()
        self._slot_freed = asyncio.Event()

    async def take_slot(self) -> Host:
        """A slot on the healthy host with the most free slots, once one is free.

        Raises:
            InfrastructureError: Every host is down, or the runner is closing.
        """
        while True:
            if self.closing:
                raise InfrastructureError("the SSH runner was closed", retryable=False)
            up = self.up()
            if not up:
                raise InfrastructureError(f"every SSH host is down: {self.why_down()}")
            host = max(up, key=lambda host: host.free)
            if host.free > 0:
                host.running += 1
                return host
            await self._slot_freed.wait()

    def free_slot(self, host: Host) -> None:
        host.running -= 1
        self.wake()

    def load(self) -> dict[str, int]:
        """Running trials per host (``"node1 (down)"`` for a host out of the pool)."""
        return {
            f"{host.address} (down)" if host.down else host.address: host.running
            for host in self.hosts
        }

    async def aclose(self) -> None:
        """Close every connection; nothing reconnects afterwards."""
        self.closed = True
        for host in self.hosts:
            if host.reconnect is not None:
                host.reconnect.cancel()
            await host.transport.aclose()
