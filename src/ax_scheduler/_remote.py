"""Where cluster commands run: this machine, or a login node over one SSH connection.

Runners speak to a :class:`Transport`: run an argv, write a file atomically, read
a file (or its tail). Commands are argv lists; over SSH they are joined with
``shlex.join``, so every argument reaches the remote program as one word and no
value is ever interpreted by a shell.

:class:`SSHTransport` keeps ONE asyncssh connection (and one SFTP session on it)
for every command and file, verifies the host key by default, and reconnects
with back-off when the connection drops.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import math
import os
import shlex
import signal
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import asyncssh

from ._aio import shielded
from ._config import SSHOptions
from ._exceptions import ConfigError, RunnerError

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


#: Seconds a command run on this machine (sbatch, sacct, scancel ...) may take
#: before it is killed: about when SSH gives up on a dead link (keep-alive probes
#: 30 s apart, three unanswered), so a command hung on a wedged controller fails
#: like one whose connection died, and a busy controller still has ample time.
COMMAND_TIMEOUT_SECONDS = 120.0

#: Seconds a SIGKILLed process group gets to exit before it is left behind: a
#: process in uninterruptible sleep (a hung NFS mount) does not die at once.
REAP_SECONDS = 5.0


class ConnectionDropped(RunnerError):
    """The connection broke while a command that must not be repeated was in flight."""


class CommandTimeout(RunnerError):
    """A command ran longer than its timeout; it was killed.

    Attributes:
        command: The command line, for messages.
        timeout: The seconds it was given.
    """

    def __init__(self, argv: Sequence[str], timeout: float, where: str) -> None:
        self.command = _shown(argv)
        self.timeout = timeout
        super().__init__(
            f"`{self.command}` did not finish within {timeout:g} s on {where}, so it was killed"
        )


class InterruptedCommand(CommandTimeout, ConnectionDropped):
    """A command that must not be repeated (sbatch) timed out: it may have taken effect.

    A :class:`ConnectionDropped` too, so callers do what they do when a connection
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
                if the connection drops mid-command, ConnectionDropped is raised
                instead of repeating it.

        Raises:
            RunnerError: The machine cannot be reached.
        """

    @abc.abstractmethod
    async def write_file(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        """Write ``data`` to ``path`` atomically (temp file, then rename)."""

    @abc.abstractmethod
    async def read_file(self, path: str, *, tail: int | None = None) -> bytes | None:
        """The file's content (only its last ``tail`` bytes if given), None if missing."""

    async def aclose(self) -> None:  # noqa: B027 - nothing to release by default
        """Release the connection."""


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
        if (
            isinstance(command_timeout, bool)
            or not isinstance(command_timeout, int | float)
            or not math.isfinite(command_timeout)
            or command_timeout <= 0
        ):
            raise ConfigError(
                f"command_timeout must be a positive number of seconds, got {command_timeout!r}"
            )
        self.command_timeout = float(command_timeout)

    async def run(self, argv: Sequence[str], *, idempotent: bool = True) -> Completed:
        """Run ``argv`` here, for at most ``command_timeout`` seconds.

        Raises:
            CommandTimeout: It did not finish in time (it was killed and reaped).
            InterruptedCommand: The same, for a command that must not be repeated:
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
            raise InterruptedCommand(argv, exc.timeout, self.description) from None
        return Completed(code, out.decode(errors="replace"), err.decode(errors="replace"))

    async def write_file(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        await anyio.to_thread.run_sync(_write_atomically, Path(path), data, mode)

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


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        temp.write_bytes(data)
        os.chmod(temp, mode)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _read(path: Path, tail: int | None) -> bytes | None:
    try:
        with path.open("rb") as file:
            if tail is not None:
                size = file.seek(0, os.SEEK_END)
                file.seek(max(0, size - tail))
            return file.read()
    except FileNotFoundError:
        return None


#: What a broken connection looks like, from asyncssh and the socket below it.
_DROPPED = (asyncssh.ConnectionLost, asyncssh.DisconnectError, asyncssh.ChannelOpenError, OSError)


class SSHTransport(Transport):
    """One asyncssh connection to a login node, shared by every command and file.

    Args:
        options: Validated ``ssh={...}`` options.
        sleep: Injected for tests of the reconnect back-off.
    """

    def __init__(self, options: SSHOptions, *, sleep: Any = asyncio.sleep) -> None:
        self.options = options
        self.description = options.address
        self._sleep = sleep
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
            delay, attempts = 1.0, self.options.reconnect_attempts
            for attempt in range(attempts + 1):
                try:
                    self._conn = await self._connect_once()
                    return self._conn
                except _Unreachable as exc:
                    if attempt == attempts:
                        raise RunnerError(f"{exc} (tried {attempts + 1} times)") from None
                    logger.warning("%s; retrying in %g s", exc, delay)
                    await self._sleep(delay)
                    delay = min(delay * 2, 30.0)
            raise AssertionError("unreachable")

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
        command = shlex.join(argv)
        for attempt in range(2):
            conn = await self.connection()
            try:
                async with self._sessions:
                    logger.debug("running on %s: %s", self.description, command)
                    result = await conn.run(command, check=False)
                if result.exit_status is None and result.exit_signal is None:
                    # asyncssh reports a connection killed mid-command this way, not
                    # by raising: the command may well have run (sbatch!).
                    raise _ChannelLost("the connection closed before the command's exit")
            except (*_DROPPED, _ChannelLost) as exc:
                self._forget(conn)
                if not idempotent:
                    raise ConnectionDropped(
                        f"connection to {self.description} dropped while running {argv[0]}: {exc}"
                    ) from None
                if attempt == 1:
                    raise RunnerError(
                        f"connection to {self.description} keeps dropping: {exc}"
                    ) from None
                logger.warning("connection to %s dropped (%s); reconnecting", self.description, exc)
                continue
            return Completed(
                result.exit_status if result.exit_status is not None else 255,
                _text(result.stdout),
                _text(result.stderr),
            )
        raise AssertionError("unreachable")

    @contextlib.asynccontextmanager
    async def open_process(
        self, argv: Sequence[str]
    ) -> AsyncIterator[asyncssh.SSHClientProcess[bytes]]:
        """Start ``argv`` as a long-running remote process; close its channel on exit.

        The process holds one of the ``max_sessions`` sessions until the block
        ends, so short commands share the rest. Unlike :meth:`run`, nothing is
        retried: if the connection drops, the process may already run.

        Args:
            argv: Program and arguments; each argument stays one word.

        Yields:
            The asyncssh process (bytes streams); ``wait()`` returns at its exit,
            or with neither exit status nor signal if the connection dropped.

        Raises:
            RunnerError: The host cannot be reached.
            ConnectionDropped: The connection broke while the process was starting.
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
                raise ConnectionDropped(
                    f"connection to {self.description} dropped while starting {argv[0]}: {exc}"
                ) from None
            try:
                yield process
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


class _ChannelLost(Exception):
    """A command's channel closed without an exit status: the connection broke."""


class _Unreachable(Exception):
    """A connection attempt failed in a way worth retrying."""


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def make_transport(ssh: SSHOptions | None) -> Transport:
    """SSH to a login node when ``ssh`` is given, else run commands here."""
    return LocalTransport() if ssh is None else SSHTransport(ssh)


# -- long-running processes -------------------------------------------------------
# The scripts are fixed: paths and numbers arrive as positional arguments ("$1" ...),
# so nothing a user or Ax provides is ever parsed as shell code.

#: Starts the line on which a detached process reports its pid and process group.
PID_MARKER = b"axs-pid "

#: cd to $1, report "PID PGID" (on stdout and in the file ``pid``, for whoever
#: re-attaches after a dropped connection), then exec the rest with output to log
#: files. sshd makes each session's command a session leader, so the process group
#: is everything the program starts.
# The pid line goes to the channel before the pid file is written: if the driver
# is gone, the echo kills the shell (SIGPIPE) and no pid file claims a worker that
# never started, so a resumed driver starts it afresh instead of failing it.
_DETACHED_SCRIPT = """\
cd -- "$1" || exit
shift
g=$(ps -o pgid= -p $$ 2>/dev/null | tr -d ' ')
echo "axs-pid $$ ${g:-$$}"
echo "$$ ${g:-$$}" > pid
exec "$@" </dev/null >stdout.log 2>stderr.log
"""

#: Exit 0 while process $1 runs. A zombie has ended: where init does not reap
#: orphans (containers), a process re-attached to stays one forever.
_ALIVE_SCRIPT = """\
if command -v ps >/dev/null 2>&1; then
  s=$(ps -o stat= -p "$1") || exit 1
  case $s in *Z*) exit 1 ;; esac
  exit 0
fi
kill -0 "$1" 2>/dev/null
"""

#: SIGTERM process group $1, wait up to $2 tenths of a second for its live
#: (non-zombie) members to exit, then SIGKILL whatever is left.
_STOP_SCRIPT = """\
g=$1
alive() {
  if command -v ps >/dev/null 2>&1; then
    ps -e -o pgid= -o stat= | awk -v g="$g" '$1 == g && $2 !~ /Z/ { n = 1 } END { exit !n }'
  else
    kill -0 -"$g" 2>/dev/null
  fi
}
kill -TERM -"$g" 2>/dev/null || exit 0
i=0
while [ "$i" -lt "$2" ] && alive; do sleep 0.1; i=$((i + 1)); done
kill -KILL -"$g" 2>/dev/null
exit 0
"""


def detached_argv(workdir: str, argv: Sequence[str]) -> list[str]:
    """The command that runs ``argv`` in ``workdir``, logging to files there.

    It prints ``PID_MARKER PID PGID`` first, writes ``PID PGID`` to ``workdir/pid``,
    then becomes ``argv`` (same pid) with stdout/stderr in ``stdout.log`` and
    ``stderr.log``: a dropped connection does not stop it.
    """
    return ["sh", "-c", _DETACHED_SCRIPT, "sh", workdir, *argv]


def alive_argv(pid: int) -> list[str]:
    """The command that exits 0 while process ``pid`` runs (zombies have ended)."""
    return ["sh", "-c", _ALIVE_SCRIPT, "sh", str(pid)]


def stop_group_argv(pgid: int, grace: float) -> list[str]:
    """The command that stops process group ``pgid``: TERM, ``grace`` seconds, KILL."""
    return ["sh", "-c", _STOP_SCRIPT, "sh", str(pgid), str(round(grace * 10))]


def parse_pids(data: bytes, prefix: bytes = b"") -> tuple[int, int] | None:
    """``(pid, pgid)`` from a ``prefix PID PGID`` line; None if it is not one."""
    if not data.startswith(prefix):
        return None
    parts = data[len(prefix) :].split()
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        return None
    pid, pgid = int(parts[0]), int(parts[1])
    # Never signal init or "every process" because of a garbled line.
    return (pid, pgid) if pid > 1 and pgid > 1 else None
