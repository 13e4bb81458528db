"""The driver's end of the local pool's report sockets: event-driven both ways.

A worker process's ``ax_scheduler.report()`` connects to this Unix socket at its
first report and sends JSON lines naming its trial by a token; a stop request is
answered on the same connection (``{"stop": reason}``), where the worker's next
``report()`` finds it without blocking. No polling on either side. Before the
objective's result goes back, the worker sends an end line and waits for its ack,
so every report is in before the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

import anyio

from ._jobs import Job
from ._reporting import check_metrics

logger = logging.getLogger("ax_scheduler")


class ReportServer:
    """One Unix socket for the reports of every trial a local pool runs.

    Plain non-blocking sockets served by the loop's reader callbacks, not asyncio
    streams: every accepted socket is ours from the moment ``accept()`` returns it,
    so closing closes them all. With ``asyncio.start_unix_server`` (Python 3.11) a
    connection accepted just as the server closed was dropped inside asyncio
    unclosed, and its socket left to the garbage collector.
    """

    def __init__(self) -> None:
        self._directory: Path | None = None
        self._path: str | None = None
        self._listener: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._starting: asyncio.Lock | None = None
        self._servers_made = 0
        self._jobs: dict[str, Job] = {}
        self._connections: dict[socket.socket, _Connection] = {}
        self._by_token: dict[str, _Connection] = {}

    @property
    def path(self) -> str:
        """The socket's path (a new one on each event loop)."""
        assert self._path is not None
        return self._path

    async def start(self) -> None:
        """Listen on this event loop (idempotent, also when called concurrently).

        The socket lives in a private temporary folder. A runner warmed up on one
        loop (``asyncio.run(runner.start())``) and used on another listens again
        on the new one: the old loop's server went with it.
        """
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._close_server()
            self._loop, self._starting = loop, asyncio.Lock()
        assert self._starting is not None
        async with self._starting:
            if self._listener is not None:
                return
            # mkdtemp: mode 0700, so no other user can send reports; short, for AF_UNIX's 108 bytes.
            if self._directory is None:
                self._directory = Path(await anyio.to_thread.run_sync(_private_directory))
            self._servers_made += 1
            self._path = str(self._directory / f"reports-{self._servers_made}.sock")
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                listener.bind(self._path)
                listener.listen(128)
                listener.setblocking(False)
                loop.add_reader(listener.fileno(), self._accept, listener)
            except BaseException:
                listener.close()
                raise
            self._listener = listener

    def _accept(self, listener: socket.socket) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while True:
                conn, _ = listener.accept()
                conn.setblocking(False)
                connection = self._connections[conn] = _Connection(conn)
                assert self._loop is not None
                self._loop.add_reader(conn.fileno(), self._read, connection)

    def _read(self, connection: _Connection) -> None:
        try:
            data = connection.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the worker closed its end (or died)
            self._drop(connection)
            return
        *lines, connection.partial = (connection.partial + data).split(b"\n")
        for line in lines:
            if line.strip():
                self._handle(connection, line)

    def _handle(self, connection: _Connection, line: bytes) -> None:
        try:
            message = json.loads(line)
            token = str(message["token"])
            if message.get("end"):  # the trial returns: it has sent everything
                connection.send(b'{"ack": true}\n')
                return
            step, metrics = float(message["step"]), check_metrics(message["metrics"])
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("a malformed report from a worker was skipped: %s", exc)
            return
        job = self._jobs.get(token)
        if job is None:
            return  # a trial that already ended
        if token not in self._by_token:
            connection.token = token
            self._by_token[token] = connection
            if job.channel.stop_reason is not None:  # stopped before it first reported
                self._send_stop(token, job.channel.stop_reason)
        job.channel.deliver(step, metrics)

    def _drop(self, connection: _Connection) -> None:
        """Forget and close one connection (also on a loop already closed)."""
        if self._connections.pop(connection.sock, None) is None:
            return
        if connection.token is not None and self._by_token.get(connection.token) is connection:
            del self._by_token[connection.token]
        self._close_socket(connection.sock)

    def _close_socket(self, sock: socket.socket) -> None:
        """Stop reading ``sock`` (unless its loop is closed already) and close it."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(sock.fileno())
        sock.close()

    def _close_server(self) -> None:
        """Stop listening and close every connection."""
        if self._listener is not None:
            self._close_socket(self._listener)
            self._listener = None
        for connection in list(self._connections.values()):
            self._drop(connection)

    def register(self, job: Job) -> tuple[tuple[str, str], Callable[[], None]]:
        """``(socket path, token)`` for ``job``'s worker, and what unregisters it."""
        token = f"{job.trial_index}-{secrets.token_hex(8)}"
        self._jobs[token] = job
        unstop = job.channel.on_stop(lambda reason: self._send_stop(token, reason))

        def unregister() -> None:
            unstop()
            self._jobs.pop(token, None)
            connection = self._by_token.get(token)
            if connection is not None:
                self._drop(connection)

        return (self.path, token), unregister

    def _send_stop(self, token: str, reason: str) -> None:
        connection = self._by_token.get(token)
        if connection is not None:
            connection.send(json.dumps({"stop": reason}).encode() + b"\n")

    async def aclose(self) -> None:
        self._close_server()
        if self._directory is not None:
            await anyio.to_thread.run_sync(shutil.rmtree, self._directory, True)
            self._directory = None


class _Connection:
    """One worker's connection: its socket, its unfinished line, its trial's token."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.partial = b""
        self.token: str | None = None

    def send(self, line: bytes) -> None:
        """Send one short line; a worker that stopped reading loses it.

        Replies are an ack and at most one stop request, far below a Unix socket's
        buffer, so a send that would block means the worker is gone or hung.
        """
        with contextlib.suppress(OSError):
            self.sock.send(line)


def _private_directory() -> str:
    return tempfile.mkdtemp(prefix="axs-")
