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
import tempfile
from collections.abc import Callable
from pathlib import Path

import anyio

from ._jobs import Job
from ._reporting import check_metrics

logger = logging.getLogger("ax_scheduler")


class ReportServer:
    """One Unix socket for the reports of every trial a local pool runs."""

    def __init__(self) -> None:
        self._directory: Path | None = None
        self._path: str | None = None
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._starting: asyncio.Lock | None = None
        self._servers_made = 0
        self._jobs: dict[str, Job] = {}
        self._writers: dict[str, asyncio.StreamWriter] = {}

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
            if self._server is not None:
                return
            # mkdtemp: mode 0700, so no other user can send reports; short, for AF_UNIX's 108 bytes.
            if self._directory is None:
                self._directory = Path(await anyio.to_thread.run_sync(_private_directory))
            self._servers_made += 1
            self._path = str(self._directory / f"reports-{self._servers_made}.sock")
            self._server = await asyncio.start_unix_server(self._serve, path=self._path)

    def _close_server(self) -> None:
        """Stop listening (on a closed loop this only closes the socket)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers.values()):
            writer.close()
        self._writers.clear()

    def register(self, job: Job) -> tuple[tuple[str, str], Callable[[], None]]:
        """``(socket path, token)`` for ``job``'s worker, and what unregisters it."""
        token = f"{job.trial_index}-{secrets.token_hex(8)}"
        self._jobs[token] = job
        unstop = job.channel.on_stop(lambda reason: self._send_stop(token, reason))

        def unregister() -> None:
            unstop()
            self._jobs.pop(token, None)
            writer = self._writers.pop(token, None)
            if writer is not None:
                writer.close()

        return (self.path, token), unregister

    def _send_stop(self, token: str, reason: str) -> None:
        writer = self._writers.get(token)
        if writer is not None and not writer.is_closing():
            writer.write(json.dumps({"stop": reason}).encode() + b"\n")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        token = None
        try:
            while line := await reader.readline():
                try:
                    message = json.loads(line)
                    token = str(message["token"])
                    if message.get("end"):  # the trial returns: it has sent everything
                        writer.write(b'{"ack": true}\n')
                        continue
                    step, metrics = float(message["step"]), check_metrics(message["metrics"])
                except (ValueError, KeyError, TypeError) as exc:
                    logger.warning("a malformed report from a worker was skipped: %s", exc)
                    continue
                job = self._jobs.get(token)
                if job is None:
                    continue  # a trial that already ended
                if token not in self._writers:
                    self._writers[token] = writer
                    if job.channel.stop_reason is not None:  # stopped before it first reported
                        self._send_stop(token, job.channel.stop_reason)
                job.channel.deliver(step, metrics)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if token is not None and self._writers.get(token) is writer:
                del self._writers[token]
            writer.close()

    async def aclose(self) -> None:
        server = self._server if self._loop is asyncio.get_running_loop() else None
        self._close_server()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        if self._directory is not None:
            await anyio.to_thread.run_sync(shutil.rmtree, self._directory, True)
            self._directory = None


def _private_directory() -> str:
    return tempfile.mkdtemp(prefix="axs-")
