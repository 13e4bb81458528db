"""One SSH connection to a login node or a host, shared by every command and file.

:class:`SSHTransport` keeps ONE asyncssh connection (and one SFTP session on it)
for every command and file, verifies the host key by default, and reconnects
with back-off (1, 2, 4 ... s, on the injected clock) when the connection drops.
Commands are argv lists joined with ``shlex.join``: every argument reaches the
remote program as one word, and no value is interpreted by a shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import asyncssh

from ._clock import REAL_CLOCK, Clock
from ._config import SSHOptions
from ._exceptions import RunnerError
from ._remote import (
    BinaryCompleted,
    Completed,
    HostTransport,
    LocalTransport,
    ProcessExit,
    RemoteProcess,
    Transport,
    _ConnectionDropped,
)
from ._retry import Backoff

logger = logging.getLogger("ax_scheduler")

#: The longest wait between two connection attempts.
RECONNECT_CAP_SECONDS = 30.0

#: What a broken connection looks like, from asyncssh and the socket below it.
_DROPPED = (asyncssh.ConnectionLost, asyncssh.DisconnectError, asyncssh.ChannelOpenError, OSError)


class SSHTransport(HostTransport):
    """One asyncssh connection to a login node or host, shared by every command and file.

    Args:
        options: Validated ``ssh={...}`` options.
        clock: Where reconnect back-off waits (tests inject a fake one).
    """

    def __init__(self, options: SSHOptions, *, clock: Clock = REAL_CLOCK) -> None:
        self.options = options
        self.description = options.address
        self._clock = clock
        self._known_hosts = os.path.expanduser(options.known_hosts)
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._lock = asyncio.Lock()
        self._sessions = asyncio.Semaphore(options.max_sessions)
        #: How many times a connection was (re-)established; tests and logs read it.
        self.connects = 0

    def _connect_kwargs(self) -> dict[str, Any]:
        options = self.options
        kwargs: dict[str, Any] = {
            "port": options.port,
            "connect_timeout": options.connect_timeout,
            "keepalive_interval": options.keepalive_interval,
            "known_hosts": self._known_hosts if options.verify_host_key else None,
        }
        if options.username is not None:
            kwargs["username"] = options.username
        if options.client_keys is not None:
            kwargs["client_keys"] = [os.path.expanduser(key) for key in options.client_keys]
        if options.passphrase is not None:
            kwargs["passphrase"] = options.passphrase.get_secret_value()
        if options.password is not None:
            kwargs["password"] = options.password.get_secret_value()
        return kwargs

    async def _connect_once(self) -> asyncssh.SSHClientConnection:
        options = self.options
        if options.verify_host_key and not await anyio.Path(self._known_hosts).exists():
            raise RunnerError(
                f"known_hosts file {options.known_hosts!r} does not exist, so the host key of"
                f" {options.address} cannot be verified: add the host with"
                f" `ssh-keyscan -p {options.port} {options.host} >> {options.known_hosts}`"
                " (check the fingerprint), point ssh={'known_hosts': ...} at the right file,"
                " or set ssh={'verify_host_key': False} to skip verification (insecure)"
            )
        try:
            conn = await asyncssh.connect(options.host, **self._connect_kwargs())
        except asyncssh.HostKeyNotVerifiable as exc:
            raise RunnerError(
                f"host key of {options.address} is not trusted by {options.known_hosts!r}"
                f" ({exc.reason}): the key is unknown or has changed. Check the fingerprint"
                " and update known_hosts; do not disable verification to get past this"
            ) from None
        except asyncssh.PermissionDenied as exc:
            keys = options.client_keys or "the agent's and default keys"
            raise RunnerError(
                f"{options.address} rejected the login ({exc.reason}); tried {keys}"
            ) from None
        except TimeoutError:
            raise _Unreachable(
                f"{options.address} did not answer within {options.connect_timeout:g} s"
            ) from None
        except (OSError, asyncssh.Error) as exc:
            raise _Unreachable(f"cannot connect to {options.address}: {exc}") from None
        self.connects += 1
        if self.connects > 1:
            logger.warning("reconnected to %s (connection %d)", options.address, self.connects)
        return conn

    async def connection(self) -> asyncssh.SSHClientConnection:
        """The live connection, (re)connecting with back-off if needed.

        Raises:
            RunnerError: The host stays unreachable, rejects the login, or its host
                key does not verify.
        """
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            self._conn, self._sftp = None, None
            policy = Backoff(self.options.reconnect_attempts, cap=RECONNECT_CAP_SECONDS)
            async for attempt in policy.attempts(self._clock):
                try:
                    self._conn = await self._connect_once()
                    return self._conn
                except _Unreachable as exc:
                    if attempt.is_last:
                        raise RunnerError(f"{exc} (tried {attempt.number + 1} times)") from None
                    logger.warning("%s; retrying in %g s", exc, policy.delay(attempt.number + 1))
            raise AssertionError("unreachable")

    async def connect(self) -> None:
        await self.connection()

    async def _sftp_client(self) -> asyncssh.SFTPClient:
        conn = await self.connection()
        if self._sftp is None:
            self._sftp = await conn.start_sftp_client()
        return self._sftp

    def _forget(self, conn: asyncssh.SSHClientConnection | None) -> None:
        """Drop a broken connection so the next call makes a new one."""
        if conn is not None and conn is self._conn:
            self._conn, self._sftp = None, None
            conn.close()

    async def run(self, argv: Sequence[str], *, idempotent: bool = True) -> Completed:
        result = await self._run(argv, idempotent=idempotent)
        return Completed(_status(result), _text(result.stdout), _text(result.stderr))

    async def run_binary(self, argv: Sequence[str]) -> BinaryCompleted:
        result = await self._run(argv, idempotent=True)
        stdout = (
            result.stdout if isinstance(result.stdout, bytes) else _text(result.stdout).encode()
        )
        return BinaryCompleted(_status(result), stdout, _text(result.stderr))

    async def _run(self, argv: Sequence[str], *, idempotent: bool) -> asyncssh.SSHCompletedProcess:
        """Run the command on the connection (its output undecoded), reconnecting once
        if it drops and the command may run again."""
        command = shlex.join(argv)
        for attempt in range(2):
            conn = await self.connection()
            try:
                async with self._sessions:
                    logger.debug("running on %s: %s", self.description, _shown(command))
                    result = await conn.run(command, check=False, encoding=None)
                if result.exit_status is None and result.exit_signal is None:
                    # asyncssh reports a connection killed mid-command this way, not
                    # by raising: the command may well have run (sbatch!).
                    raise _ChannelLost("the connection closed before the command's exit")
            except (*_DROPPED, _ChannelLost) as exc:
                self._forget(conn)
                if not idempotent:
                    raise _ConnectionDropped(
                        f"connection to {self.description} dropped while running {argv[0]}: {exc}"
                    ) from None
                if attempt == 1:
                    raise RunnerError(
                        f"connection to {self.description} keeps dropping: {exc}"
                    ) from None
                logger.warning("connection to %s dropped (%s); reconnecting", self.description, exc)
                continue
            return result
        raise AssertionError("unreachable")

    @contextlib.asynccontextmanager
    async def open_process(self, argv: Sequence[str]) -> AsyncIterator[RemoteProcess]:
        """Start ``argv`` as a long-running remote process; close its channel on exit.

        The process holds one of the ``max_sessions`` sessions until the block
        ends, so short commands share the rest. Unlike :meth:`run`, nothing is
        retried: if the connection drops, the process may already run.

        Args:
            argv: Program and arguments; each argument stays one word.

        Yields:
            The process; its ``wait()`` returns at its exit, or with an exit that
            was not ``seen`` if the connection dropped.

        Raises:
            RunnerError: The host cannot be reached.
            _ConnectionDropped: The connection broke while the process was starting.
        """
        command = shlex.join(argv)
        async with self._sessions:
            conn = await self.connection()
            logger.debug("starting on %s: %s", self.description, command)
            try:
                process: asyncssh.SSHClientProcess[bytes] = await conn.create_process(
                    command, encoding=None
                )
            except _DROPPED as exc:
                self._forget(conn)
                raise _ConnectionDropped(
                    f"connection to {self.description} dropped while starting {argv[0]}: {exc}"
                ) from None
            except asyncssh.Error as exc:  # the channel failed: whether it started is unknown
                raise _ConnectionDropped(
                    f"{self.description} failed to start {argv[0]}: {exc}"
                ) from None
            try:
                yield _SSHProcess(process, self.description)
            finally:
                process.close()

    async def write_file(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        temp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"

        async def write(sftp: asyncssh.SFTPClient) -> None:
            async with sftp.open(temp, "wb", asyncssh.SFTPAttrs(permissions=mode)) as file:
                await file.write(data)
            await sftp.posix_rename(temp, path)

        await self._with_sftp(write)

    async def read_file(self, path: str, *, tail: int | None = None) -> bytes | None:
        async def read(sftp: asyncssh.SFTPClient) -> bytes | None:
            try:
                async with sftp.open(path, "rb") as file:
                    if tail is not None:
                        size = (await file.stat()).size or 0
                        await file.seek(max(0, size - tail))
                    data = await file.read()
            except asyncssh.SFTPNoSuchFile:
                return None
            return data if isinstance(data, bytes) else data.encode()

        data: bytes | None = await self._with_sftp(read)
        return data

    async def _with_sftp(self, operation: Any) -> Any:
        for attempt in range(2):
            conn = None
            try:
                sftp = await self._sftp_client()
                conn = self._conn
                async with self._sessions:
                    return await operation(sftp)
            except asyncssh.SFTPError:
                raise
            except _DROPPED as exc:
                self._forget(self._conn if conn is None else conn)
                if attempt == 1:
                    raise RunnerError(
                        f"connection to {self.description} keeps dropping: {exc}"
                    ) from None
                logger.warning("connection to %s dropped (%s); reconnecting", self.description, exc)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        conn, self._conn, self._sftp = self._conn, None, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await conn.wait_closed()


class _SSHProcess(RemoteProcess):
    """An asyncssh process, its errors mapped to :class:`_ConnectionDropped` here."""

    def __init__(self, process: asyncssh.SSHClientProcess[bytes], where: str) -> None:
        self._process = process
        self._where = where

    async def readline(self) -> bytes:
        try:
            line = await self._process.stdout.readline()
        except (asyncssh.Error, OSError) as exc:
            raise _ConnectionDropped(f"connection to {self._where} broke: {exc}") from None
        return line if isinstance(line, bytes) else line.encode()

    async def wait(self) -> ProcessExit:
        try:
            completed = await self._process.wait()
        except (asyncssh.Error, OSError) as exc:
            raise _ConnectionDropped(f"connection to {self._where} broke: {exc}") from None
        signal = completed.exit_signal[0] if completed.exit_signal else None
        return ProcessExit(completed.exit_status, signal, _text(completed.stderr))


class _ChannelLost(Exception):
    """A command's channel closed without an exit status: the connection broke."""


class _Unreachable(Exception):
    """A connection attempt failed in a way worth retrying."""


def _status(result: asyncssh.SSHCompletedProcess) -> int:
    """The exit code; 255 (ssh's own "it failed") for a command killed by a signal."""
    return result.exit_status if result.exit_status is not None else 255


def _shown(command: str, limit: int = 200) -> str:
    """A command line for the debug log, cut short (a progress read names many files)."""
    return command if len(command) <= limit else f"{command[: limit - 3]}..."


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def make_transport(ssh: SSHOptions | None, clock: Clock = REAL_CLOCK) -> Transport:
    """SSH to a login node when ``ssh`` is given, else run commands here."""
    return LocalTransport() if ssh is None else SSHTransport(ssh, clock=clock)
