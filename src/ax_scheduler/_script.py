"""Running a script objective as a local subprocess, in its trial directory.

The script gets an argv list (parameter values never reach a shell), its own
process group (so a timeout or a cancellation kills everything it started), and
its stdout/stderr in log files next to ``params.json`` and ``result.json``.

It runs in a session of its own, so it outlives a driver killed with SIGKILL: its
pid goes to ``pid.json`` in the trial folder, by which a restarted driver follows
it (:func:`rejoin_script`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import string
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import anyio

from ._aio import shielded
from ._config import ScriptOptions
from ._exceptions import ConfigError, ObjectiveError, TrialTimeoutError
from ._jobenv import trial_environment
from ._jobs import SCRIPT_PLACEHOLDERS, Job, ScriptObjective
from ._pidfile import (
    PID_FILE,
    ScriptProcess,
    is_running,
    read_pid_file,
    signal_group,
    stop_group,
    wait_for_exit,
    write_pid_file,
)
from ._reporting import PROGRESS_FILE_NAME

logger = logging.getLogger("ax_scheduler")

#: Seconds between SIGTERM and SIGKILL when a script is stopped.
TERMINATE_GRACE_SECONDS = 5.0
#: How much of stderr a failure reason quotes.
STDERR_TAIL_CHARS = 2000
#: How a failure reason starts for a script whose end no driver saw.
UNWATCHED = "script ended while no driver watched it (exit code unknown)"
#: Seconds a trial file's mtime may lie before the trial's dispatch and still be
#: taken for this run's: file systems stamp with a coarser clock than time.time(),
#: and a network file system with its server's.
MTIME_SLACK_SECONDS = 2.0


def make_script_objective(
    script_path: str | os.PathLike[str], options: ScriptOptions, *, find_interpreter: bool = True
) -> ScriptObjective:
    """Check a script and its options now, not at the first trial.

    Args:
        script_path: The script.
        options: Its validated options.
        find_interpreter: Look the interpreter up on this machine's PATH (the
            script runs here). False keeps it as given, for a runner that looks it
            up where its jobs run.

    Raises:
        FileNotFoundError: The script or the interpreter does not exist.
        IsADirectoryError: The script path is a directory.
        PermissionError: The script is not executable and no interpreter is given.
        ValueError: ``args`` use a placeholder other than the supported ones.
    """
    script = Path(script_path).expanduser().resolve()
    if script.is_dir():
        raise IsADirectoryError(
            f"script {str(script)!r} is a directory (given as {str(script_path)!r});"
            " pass the script file inside it"
        )
    if not script.is_file():
        raise FileNotFoundError(
            f"script {str(script)!r} does not exist (given as {str(script_path)!r})"
        )
    interpreter = options.interpreter
    if interpreter is not None:
        interpreter = _find_program(interpreter) if find_interpreter else interpreter
    elif not os.access(script, os.X_OK):
        raise PermissionError(
            f"script {str(script)!r} is not executable: chmod +x it, or pass"
            " script_options={'interpreter': 'python3'} (or bash, ...)"
        )
    for arg in options.args:
        check_placeholders(arg)
    return ScriptObjective(
        script, interpreter, tuple(options.args), tuple(options.env.items()), options.timeout
    )


def _find_program(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"interpreter {name!r} is not on PATH")
    return found


def check_placeholders(arg: str) -> None:
    for _, field, _, _ in string.Formatter().parse(arg):
        if field is not None and field not in SCRIPT_PLACEHOLDERS:
            raise ConfigError(
                f"unknown placeholder {{{field}}} in script argument {arg!r};"
                f" available: {', '.join('{' + p + '}' for p in SCRIPT_PLACEHOLDERS)}"
            )


async def run_script(job: Job) -> Any:
    """Run ``job``'s script objective and return what it wrote to ``result.json``.

    Raises:
        ObjectiveError: Non-zero exit, or a missing or malformed result file; the
            message has the exit code and the tail of stderr.
        TrialTimeoutError: The script ran longer than its ``timeout``.
    """
    objective = job.objective
    assert isinstance(objective, ScriptObjective)
    assert job.workdir is not None
    files = TrialFiles(job.workdir)
    job.info.pop("pid", None)  # an earlier attempt's
    await anyio.to_thread.run_sync(files.prepare, job.parameters)
    placeholders = files.placeholders(job.trial_index)
    env = {**os.environ, **trial_environment(objective.env, placeholders)}

    async def record_pid(process: asyncio.subprocess.Process) -> None:
        job.info["pid"] = process.pid
        await anyio.to_thread.run_sync(_write_started, files.workdir, process.pid)

    returncode = await run_logged(
        objective.argv(placeholders),
        files,
        env,
        objective.timeout,
        stop=terminate_group,
        on_start=record_pid,
    )
    return await anyio.to_thread.run_sync(files.read_result, returncode)


def _write_started(workdir: Path, pid: int) -> None:
    write_pid_file(workdir, ScriptProcess.started_now(pid))


async def rejoin_script(job: Job, since: float | None) -> Any:
    """Follow ``job``'s script, started by a driver that died; start it if it never started.

    The trial folder tells: no ``pid.json`` of this trial means the script never
    started. Otherwise it is waited for, as long as that very process runs (it is
    not this driver's child: no exit code), and judged by its files. Its own
    ``timeout`` still counts from its start; cancelling the wait kills its
    process group.

    Args:
        job: The trial's job; ``job.workdir`` is its folder.
        since: When the trial was dispatched (epoch seconds): older files in the
            folder are another run's. None if unknown.

    Raises:
        ObjectiveError: It wrote no valid result file (or failed, when started now).
        TrialTimeoutError: It ran longer than its ``timeout``.
    """
    objective = job.objective
    assert isinstance(objective, ScriptObjective)
    assert job.workdir is not None
    files = TrialFiles(job.workdir)
    process = await anyio.to_thread.run_sync(files.started_script, job.parameters, since)
    if process is None:
        logger.info(
            "trial %d: its script never started (the driver died first); starting it",
            job.trial_index,
        )
        return await run_script(job)
    job.info.update(pid=process.pid, job_dir=str(files.workdir))
    if await anyio.to_thread.run_sync(is_running, process):
        logger.info(
            "trial %d: its script (pid %d) still runs; waiting for it", job.trial_index, process.pid
        )
        await _wait_unwatched(process, objective.timeout)
    return await anyio.to_thread.run_sync(files.read_result, None)


async def _wait_unwatched(process: ScriptProcess, timeout: float | None) -> None:
    """Wait for a script this driver did not start; stop it on timeout or cancellation."""
    remaining = None if timeout is None else process.started_at + timeout - time.time()
    try:
        async with asyncio.timeout(remaining):  # one already past its limit: at once
            await wait_for_exit(process)
    except TimeoutError:
        await shielded(stop_group(process, TERMINATE_GRACE_SECONDS))
        raise TrialTimeoutError(f"timeout: ran longer than its timeout of {timeout:g} s") from None
    except asyncio.CancelledError:
        await shielded(stop_group(process, TERMINATE_GRACE_SECONDS))
        raise


class TrialFiles:
    """The files of one trial: parameters in, result and logs out."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.params = workdir / "params.json"
        self.result = workdir / "result.json"
        self.error = workdir / "error.json"
        self.pid = workdir / PID_FILE
        self.stdout = workdir / "stdout.log"
        self.stderr = workdir / "stderr.log"

    def prepare(self, parameters: Mapping[str, Any]) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # A stale result or pid must not pass for this run's (removed before
        # params.json is written: a fresh params.json vouches for the rest).
        self.result.unlink(missing_ok=True)
        self.pid.unlink(missing_ok=True)
        (self.workdir / PROGRESS_FILE_NAME).unlink(missing_ok=True)  # an earlier run's curve
        self.params.write_text(json.dumps(dict(parameters), indent=2), encoding="utf-8")

    def holds_trial(self, parameters: Mapping[str, Any], since: float | None) -> bool:
        """Whether the folder's ``params.json`` is this trial's: these parameters,
        written after ``since`` (the trial's dispatch; None if unknown)."""
        if not self.written_since(self.params, since):
            return False
        try:
            found = json.loads(self.params.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        # Both sides as JSON has them (the worker writes odd values with str()).
        return bool(found == json.loads(json.dumps(dict(parameters), default=str)))

    @staticmethod
    def written_since(path: Path, since: float | None) -> bool:
        """Whether ``path`` exists and was last written after ``since`` (None: any time)."""
        try:
            written = path.stat().st_mtime
        except OSError:
            return False
        return since is None or written >= since - MTIME_SLACK_SECONDS

    def started_script(
        self, parameters: Mapping[str, Any], since: float | None
    ) -> ScriptProcess | None:
        """This trial's script process as its pid file has it; None if it never started."""
        if not self.holds_trial(parameters, since) or not self.written_since(self.pid, since):
            return None
        return read_pid_file(self.workdir)

    def placeholders(self, trial_index: int) -> dict[str, str]:
        return {
            "params_file": str(self.params),
            "output_file": str(self.result),
            "trial_index": str(trial_index),
            "workdir": str(self.workdir),
        }

    def stderr_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.stderr.read_text(errors="replace")[-STDERR_TAIL_CHARS:].strip()
        return ""

    def read_result(self, returncode: int | None) -> Any:
        """The parsed result file, or an ObjectiveError saying what is wrong.

        ``returncode`` None: the script ended while no driver watched it, and
        only its files tell how it went.
        """
        if returncode is not None and returncode != 0:
            raise self._failure(f"script exited with code {_describe_exit(returncode)}")
        ended = "script exited 0 but" if returncode == 0 else f"{UNWATCHED} and"
        try:
            text = self.result.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise self._failure(f"{ended} wrote no result file {str(self.result)!r}") from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            unwatched = "" if returncode == 0 else f"{UNWATCHED}; "
            raise self._failure(
                f"{unwatched}result file {str(self.result)!r} is not valid JSON ({exc})"
            ) from None

    def _failure(self, problem: str) -> ObjectiveError:
        tail = self.stderr_tail()
        last_line = tail.splitlines()[-1] if tail else "(stderr empty)"
        return ObjectiveError(f"{problem}; stderr ends: {last_line}", details=tail or None)


async def run_logged(
    argv: list[str],
    files: TrialFiles,
    env: dict[str, str] | None,
    timeout: float | None,
    stop: Callable[[asyncio.subprocess.Process], Awaitable[None]],
    on_start: Callable[[asyncio.subprocess.Process], Awaitable[None]] | None = None,
) -> int:
    """Run ``argv`` in its own process group with output to the trial's logs.

    Returns the exit code. ``on_start(process)`` runs once it started (to record
    its pid). On timeout or cancellation, ``stop(process)`` runs to its end first
    (shielded), then TrialTimeoutError or the cancellation follows.
    """
    stdout, stderr = await anyio.to_thread.run_sync(_open_logs, files)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=stdout, stderr=stderr, cwd=files.workdir, env=env, start_new_session=True
        )
    finally:
        stdout.close()
        stderr.close()
    try:
        if on_start is not None:
            await on_start(process)
        async with asyncio.timeout(timeout):
            return await process.wait()
    except TimeoutError:
        await shielded(stop(process))
        raise TrialTimeoutError(f"timeout: ran longer than its timeout of {timeout:g} s") from None
    except asyncio.CancelledError:
        await shielded(stop(process))
        raise


def _open_logs(files: TrialFiles) -> tuple[Any, Any]:
    return open(files.stdout, "wb"), open(files.stderr, "wb")


async def terminate_group(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the script's whole process group, SIGKILL it after a grace period."""
    signal_group(process.pid, signal.SIGTERM)
    try:
        async with asyncio.timeout(TERMINATE_GRACE_SECONDS):
            await process.wait()
    except TimeoutError:
        pass
    # Children the script started may outlive it: the group goes, whatever is left.
    signal_group(process.pid, signal.SIGKILL)
    await process.wait()


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"{returncode} (killed by {signal.Signals(-returncode).name})"
    return str(returncode)
