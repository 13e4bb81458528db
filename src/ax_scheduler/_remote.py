"""Where cluster commands run: the :class:`Transport` interface, and this machine.

Runners speak to a :class:`Transport`: run an argv (its output as text, or as
bytes: :meth:`Transport.run_binary`), write a file atomically, read a file (or
its tail). Commands are argv lists; over SSH
(:mod:`ax_scheduler._sshtransport`) they are joined with ``shlex.join``, so every
argument reaches the remote program as one word and no value is ever interpreted
by a shell. A :class:`HostTransport` also starts long-running processes (an SSH
host's trial workers) and keeps a connection that can be re-established.

:class:`LocalTransport` runs the commands on this machine (a driver on a Slurm
login node), each bounded by a timeout.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import logging
import os
import shlex
import signal
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from ._aio import shielded
from ._config.arguments import positive_seconds
from ._exceptions import CommandTimeout as CommandTimeout  # raised here; the tree's
from ._exceptions import RunnerError
from ._files import write_atomically

logger = logging.getLogger("ax_scheduler")


@dataclass(frozen=True)
class Completed:
    """A finished command: exit code and decoded output."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        """The useful lines of output for an error message (the last three)."""
        lines = [
            line.strip()
            for line in (self.stderr.strip() or self.stdout.strip()).splitlines()
            if line.strip() and not line.startswith('Try "')  # "Try "sbatch --help" ..."
        ]
        return "; ".join(lines[-3:]) if lines else f"exit code {self.returncode}, no output"


@dataclass(frozen=True)
class BinaryCompleted:
    """A finished command whose output is bytes, as it printed them (file contents).

    Attributes:
        returncode: Its exit code.
        stdout: Its output, undecoded.
        stderr: Its errors, decoded.
    """

    returncode: int
    stdout: bytes
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        """The useful lines of its errors, as :meth:`Completed.describe` gives them."""
        return Completed(self.returncode, "", self.stderr).describe()


#: Seconds a command run on this machine (sbatch, sacct, scancel ...) may take
#: before it is killed: about when SSH gives up on a dead link (keep-alive probes
#: 30 s apart, three unanswered), so a command hung on a wedged controller fails
#: like one whose connection died, and a busy controller still has ample time.
COMMAND_TIMEOUT_SECONDS = 120.0

#: Seconds a SIGKILLed process group gets to exit before it is left behind: a
#: process in uninterruptible sleep (a hung NFS mount) does not die at once.
REAP_SECONDS = 5.0


# Private, not in the error tree: runners catch them (they never reach a user) to
# find out whether a command that must not run twice went through.
class _ConnectionDropped(RunnerError):
    """The connection broke while a command that must not be repeated was in flight."""


class _InterruptedCommand(CommandTimeout, _ConnectionDropped):
    """A command that must not be repeated (sbatch) timed out: it may have taken effect.

    A :class:`_ConnectionDropped` too, so callers do what they do when a connection
    breaks mid-command: find out whether it went through before running it again.
    """


class Transport(abc.ABC):
    """Runs commands and moves files on the machine where jobs are managed."""

    #: Where commands run, for messages (``"this machine"``, ``"root@host:22"``).
    description: str

    @abc.abstractmethod
    async def run(self, argv: Sequence[str], *, idempotent: bool = True) -> Completed:
        """Run ``argv`` and return its exit code and output.

        Args:
            argv: Program and arguments; each argument stays one word.
            idempotent: False for commands that must not run twice (``sbatch``):
                if the connection drops mid-command, _ConnectionDropped is raised
                instead of repeating it.

        Raises:
            RunnerError: The machine cannot be reached.
        """

    async def run_binary(self, argv: Sequence[str]) -> BinaryCompleted:
        """Run ``argv`` (idempotent) and return its output as bytes, undecoded.

        For output that holds bytes of files (progress lines), whose counts must
        stay exact whatever the bytes are. This default encodes :meth:`run`'s
        text, for transports whose output is text anyway (fakes).

        Raises:
            RunnerError: The machine cannot be reached.
        """
        result = await self.run(argv)
        return BinaryCompleted(result.returncode, result.stdout.encode(), result.stderr)

    @abc.abstractmethod
    async def write_file(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        """Write ``data`` to ``path`` atomically (temp file, then rename)."""

    @abc.abstractmethod
    async def read_file(self, path: str, *, tail: int | None = None) -> bytes | None:
        """The file's content (only its last ``tail`` bytes if given), None if missing."""

    async def aclose(self) -> None:  # noqa: B027 - nothing to release by default
        """Release the connection."""


@dataclass(frozen=True)
class ProcessExit:
    """How a long-running remote process ended, as its channel reported it.

    Attributes:
        code: Its exit status; None if the channel closed without saying (the
            connection broke).
        signal: The signal's name (``"KILL"``) if one killed it.
        stderr: What it printed on the channel (before its output went to files).
    """

    code: int | None
    signal: str | None = None
    stderr: str = ""

    @property
    def seen(self) -> bool:
        """Whether the end was reported at all (False: the connection broke first)."""
        return self.code is not None or self.signal is not None


class RemoteProcess(abc.ABC):
    """A process :meth:`HostTransport.open_process` started, while its channel is open."""

    @abc.abstractmethod
    async def readline(self) -> bytes:
        """The next line it printed on stdout (``b""`` once stdout is closed).

        Raises:
            _ConnectionDropped: The connection broke.
        """

    @abc.abstractmethod
    async def wait(self) -> ProcessExit:
        """Wait for it to end.

        Raises:
            _ConnectionDropped: The connection broke.
        """


class HostTransport(Transport):
    """A :class:`Transport` to a host that also runs long processes (SSH hosts' workers)."""

    @abc.abstractmethod
    def open_process(self, argv: Sequence[str]) -> AbstractAsyncContextManager[RemoteProcess]:
        """Start ``argv``; the block holds its channel (closed at the block's end).

        Nothing is retried: if the connection drops, the process may already run.

        Raises:
            RunnerError: The host cannot be reached.
            _ConnectionDropped: The connection broke while the process was starting.
        """

    @abc.abstractmethod
    async def connect(self) -> None:
        """(Re)connect now, unless connected.

        Raises:
            RunnerError: The host stays unreachable, rejects the login, or its host
                key does not verify.
        """


class LocalTransport(Transport):
    """Runs commands here: the driver already runs on the cluster's login node.

    Args:
        command_timeout: Seconds a command may run before its process group is
            killed and :class:`CommandTimeout` raised (a hung ``sacct`` must not
            stall polling, nor a hung ``scancel`` a cancellation, forever).

    Raises:
        ConfigError: ``command_timeout`` is not a positive number of seconds.
    """

    description = "this machine"

    def __init__(self, command_timeout: float = COMMAND_TIMEOUT_SECONDS) -> None:
        self.command_timeout = positive_seconds("command_timeout", command_timeout)

    async def run(self, argv: Sequence[str], *, idempotent: bool = True) -> Completed:
        """Run ``argv`` here, for at most ``command_timeout`` seconds.

        Raises:
            CommandTimeout: It did not finish in time (it was killed and reaped).
            _InterruptedCommand: The same, for a command that must not be repeated:
                like a dropped connection, it may have taken effect.
        """
        logger.debug("running %s", shlex.join(argv))
        try:
            code, out, err = await run_here(
                argv, timeout=self.command_timeout, where=self.description
            )
        except FileNotFoundError:
            return Completed(127, "", f"{argv[0]}: command not found on {self.description}")
        except CommandTimeout as exc:
            if idempotent:
                raise
            # Callers handle it quietly, like a dropped connection (sbatch looks
            # for its job before submitting again): say here that it happened.
            logger.warning("%s; it may have taken effect", exc)
            raise _InterruptedCommand(argv, exc.timeout, self.description) from None
        return Completed(code, out.decode(errors="replace"), err.decode(errors="replace"))

    async def run_binary(self, argv: Sequence[str]) -> BinaryCompleted:
        """Run ``argv`` here, for at most ``command_timeout`` seconds; its output as bytes.

        Raises:
            CommandTimeout: It did not finish in time (it was killed and reaped).
        """
        logger.debug("running %s", _shown(argv))
        try:
            code, out, err = await run_here(
                argv, timeout=self.command_timeout, where=self.description
            )
        except FileNotFoundError:
            return BinaryCompleted(127, b"", f"{argv[0]}: command not found on {self.description}")
        return BinaryCompleted(code, out, err.decode(errors="replace"))

    async def write_file(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        await anyio.to_thread.run_sync(functools.partial(write_atomically, path, data, mode=mode))

    async def read_file(self, path: str, *, tail: int | None = None) -> bytes | None:
        return await anyio.to_thread.run_sync(_read, Path(path), tail)


async def run_here(
    argv: Sequence[str],
    *,
    timeout: float | None,
    where: str = "this machine",
    stdout: Any = asyncio.subprocess.PIPE,
    stderr: Any = asyncio.subprocess.PIPE,
) -> tuple[int, bytes, bytes]:
    """Run ``argv`` on this machine in its own process group, for at most ``timeout`` s.

    On timeout, or if the caller is cancelled, the whole group is SIGKILLed and
    reaped (shielded, at most :data:`REAP_SECONDS`) before the error or the
    cancellation propagates: no hung child, nor anything it started, outlives
    the call. stdin is /dev/null: a command waiting for input would only hang.

    Args:
        argv: Program and arguments.
        timeout: Seconds it may run; None waits as long as it runs (``docker wait``).
        where: Where it runs, for the message.
        stdout: Where its output goes (a pipe, returned; or an open file).
        stderr: Where its errors go (a pipe, a file, or ``asyncio.subprocess.STDOUT``).

    Returns:
        The exit code (negative if killed by a signal), stdout and stderr (empty
        unless piped).

    Raises:
        FileNotFoundError: ``argv[0]`` is not installed.
        CommandTimeout: It ran longer than ``timeout``.
    """
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,  # its pid is its group's id: kill_group reaches its children
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate()
    except TimeoutError:
        assert timeout is not None  # only the deadline raises TimeoutError here
        await shielded(kill_group(process, argv))
        raise CommandTimeout(argv, timeout, where) from None
    except asyncio.CancelledError:
        await shielded(kill_group(process, argv))
        raise
    return process.returncode or 0, out or b"", err or b""


async def kill_group(process: asyncio.subprocess.Process, argv: Sequence[str]) -> None:
    """SIGKILL the process group of ``process`` and reap it, within :data:`REAP_SECONDS`.

    Only for processes started with ``start_new_session=True``: their pid is
    their group's id (else this would signal the driver's own group).
    """
    # The group outlives its leader while a child holds it: its id is not reused.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    try:
        async with asyncio.timeout(REAP_SECONDS):
            await process.wait()
    except TimeoutError:
        logger.warning(
            "`%s` (process group %d) was killed but has not exited after %g s; leaving it",
            _shown(argv),
            process.pid,
            REAP_SECONDS,
        )


def _shown(argv: Sequence[str], limit: int = 200) -> str:
    """The command line for a message, cut short (an sacct of many job ids is long)."""
    command = shlex.join(argv)
    return command if len(command) <= limit else f"{command[: limit - 3]}..."


def _read(path: Path, tail: int | None) -> bytes | None:
    try:
        with path.open("rb") as file:
            if tail is not None:
                size = file.seek(0, os.SEEK_END)
                file.seek(max(0, size - tail))
            return file.read()
    except FileNotFoundError:
        return None
