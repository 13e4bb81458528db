"""The pid file of a local script trial: how a restarted driver finds the script.

A script the driver starts runs in a session of its own, so it outlives a driver
killed with SIGKILL. The driver writes the script's pid to ``pid.json`` in the
trial's folder with a token that tells that very process from a later one that
got the same pid (on Linux its start time, field 22 of ``/proc/<pid>/stat``). A
restarted driver then waits for it, without being its parent, and reads its
result from its folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import anyio

from ._files import write_atomically

#: The file's name in the trial folder.
PID_FILE = "pid.json"
#: Seconds between liveness checks where the kernel cannot report an exit (no pidfd).
POLL_SECONDS = 1.0
#: Seconds a stopped script's group may take to go after SIGKILL before we stop waiting.
KILL_WAIT_SECONDS = 5.0

_PROC = Path("/proc")
#: ``/proc/<pid>/stat`` fields after the command name, which starts at field 3 (state).
_STATE_FIELD, _START_TIME_FIELD = 3, 22


@dataclass(frozen=True)
class ScriptProcess:
    """A started script: its pid (also its process group's id) and what proves it is it.

    Attributes:
        pid: The script's pid; it leads its own session and process group.
        token: Its start time in clock ticks since boot where ``/proc`` has it;
            None where nothing tells a reused pid apart, or if it had already
            ended when it was recorded.
        started_at: When it was started (epoch seconds).
    """

    pid: int
    token: str | None
    started_at: float

    @classmethod
    def started_now(cls, pid: int) -> ScriptProcess:
        """The process ``pid`` the driver has just started."""
        return cls(pid, start_token(pid), time.time())


def write_pid_file(workdir: Path, process: ScriptProcess) -> None:
    """Record ``process`` in ``workdir``: a temp file renamed, so never half a file.

    Not fsynced: a crash of the machine takes the script with it, and after a
    crash of the driver alone the page cache still has the file.
    """
    text = json.dumps(
        {"pid": process.pid, "token": process.token, "started_at": process.started_at}
    )
    write_atomically(workdir / PID_FILE, text, fsync=False)


def read_pid_file(workdir: Path) -> ScriptProcess | None:
    """The process recorded in ``workdir``, or None if there is no (readable) pid file."""
    try:
        record = json.loads((workdir / PID_FILE).read_text(encoding="utf-8"))
        token = record["token"]
        return ScriptProcess(
            int(record["pid"]),
            None if token is None else str(token),
            float(record["started_at"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def start_token(pid: int) -> str | None:
    """``pid``'s start time (``/proc/<pid>/stat`` field 22), or None where it cannot be read."""
    fields = _stat_fields(pid)
    return None if fields is None else fields[_START_TIME_FIELD - _STATE_FIELD]


def is_running(process: ScriptProcess) -> bool:
    """Whether ``process`` itself still runs (a zombie does not; a reused pid is not it)."""
    if _PROC.joinpath("self", "stat").exists():
        fields = _stat_fields(process.pid)
        if fields is None or fields[0] in ("Z", "X"):
            return False
        return (
            process.token is not None and fields[_START_TIME_FIELD - _STATE_FIELD] == process.token
        )
    # No /proc (macOS, BSD): the pid exists and still leads the session it was
    # started in, which a reused pid rarely does.
    try:
        os.kill(process.pid, 0)
        return os.getsid(process.pid) == process.pid
    except OSError:  # gone, or a reused pid of another user
        return False


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces and
    # parentheses: the fields that follow start after its last ")".
    fields = stat[stat.rfind(")") + 1 :].split()
    return fields if len(fields) > _START_TIME_FIELD - _STATE_FIELD else None


async def wait_for_exit(process: ScriptProcess) -> None:
    """Return once ``process`` has ended; it need not be a child of this driver.

    Event-driven where the kernel supports it (a pidfd becomes readable when its
    process ends); elsewhere its liveness is checked every :data:`POLL_SECONDS`.
    """
    try:
        pidfd = os.pidfd_open(process.pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):  # not Linux, or a kernel older than 5.3
        await _poll_until_ended(process)
        return
    try:
        # Checked after the pidfd is open: if the token still matches now, the
        # pidfd refers to that very process, not to a later one with its pid.
        if await anyio.to_thread.run_sync(is_running, process):
            await _readable(pidfd)
    finally:
        os.close(pidfd)


async def _poll_until_ended(process: ScriptProcess) -> None:
    # Nothing signals the end of a process that is not our child here: poll, slowly.
    while await anyio.to_thread.run_sync(is_running, process):  # noqa: ASYNC110
        await anyio.sleep(POLL_SECONDS)


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


async def stop_group(process: ScriptProcess, grace: float) -> None:
    """SIGTERM the script's process group, SIGKILL it after ``grace`` seconds. Bounded."""
    signal_group(process.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(grace):
            await wait_for_exit(process)
    # Children the script started may outlive it: the group goes, whatever is left.
    signal_group(process.pid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(KILL_WAIT_SECONDS):
            await wait_for_exit(process)


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to a process group that may be gone already."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
