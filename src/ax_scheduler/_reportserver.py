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
        self._server: asyncio.Server | None = None
        self._jobs: dict[str, Job] = {}
        self._writers: dict[str, asyncio.StreamWriter] = {}

    @property
    def path(self) -> str:
        assert self._directory is not None
        return str(self._directory / "reports.sock")

    async def start(self) -> None:
        """Listen (idempotent). The socket lives in a private temporary folder."""
        if self._server is not None:
            return
        # mkdtemp: mode 0700, so no other user can send reports; short, for AF_UNIX's 108 bytes.
        self._directory = Path(await anyio.to_thread.run_sync(_private_directory))
        self._server = await asyncio.start_unix_server(self._serve, path=self.path)

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
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers.values()):
                writer.close()
            self._writers.clear()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None
        if self._directory is not None:
            await anyio.to_thread.run_sync(shutil.rmtree, self._directory, True)
            self._directory = None


def _private_directory() -> str:
    return tempfile.mkdtemp(prefix="axs-")
