"""Code that runs inside worker processes. Standard library only: importing it must
not pull in Ax, torch or the rest of ax-scheduler, so workers start fast."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from ._files import write_atomically  # standard library only, like this module
from ._jobworker import plain
from ._reporting import Reporter, SocketReporter, reporting_to

#: Seconds between a worker's checks that its driver is still alive.
PARENT_CHECK_SECONDS = 1.0


def init_worker(driver_pid: int) -> None:
    """Worker initializer.

    Ctrl-C is the driver's to handle: a terminal sends SIGINT to the whole process
    group, the driver cancels its trials and stops the workers itself, so a worker
    must not turn the same Ctrl-C into a spurious objective failure.

    A worker must not outlive its driver: if the driver is SIGKILLed mid-trial,
    nobody would ever collect the result, so the worker exits within a second.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_when_orphaned, args=(driver_pid,), daemon=True).start()


def _exit_when_orphaned(driver_pid: int) -> None:
    while os.getppid() == driver_pid:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)


def call_objective(
    fn: Callable[[dict[str, Any]], Any],
    parameters: dict[str, Any],
    workdir: str | None = None,
    reports: tuple[str, str] | Reporter | None = None,
) -> tuple[str, Any, str]:
    """Run the objective and report ``("ok", value, "")`` or ``("error", message, traceback)``.

    Exceptions are flattened to text here because a user's exception class may not
    be picklable, and an unpicklable return value is reported instead of breaking
    the pool.

    With ``workdir``, the trial leaves its files there like a script's trial does:
    ``params.json``, ``stdout.log`` and ``stderr.log`` (everything the process
    printed, C extensions included: the file descriptors are redirected), and
    ``result.json`` or ``error.json``. A restarted driver reads them to tell a
    trial that ended (its outcome is on disk) from one cut short by the driver's
    death (only ``params.json``).

    ``reports`` is where the objective's ``ax_scheduler.report()`` calls go: the
    driver's socket and this trial's token (in a pool worker), or a reporter (in
    a driver's thread).
    """
    if reports is None:
        return _call_in_files(fn, parameters, workdir)
    if isinstance(reports, tuple):
        reporter = SocketReporter(*reports)
        try:
            with reporting_to(reporter, whole_process=True):
                return _call_in_files(fn, parameters, workdir)
        finally:
            reporter.close()
    with reporting_to(reports):
        return _call_in_files(fn, parameters, workdir)


def _call_in_files(
    fn: Callable[[dict[str, Any]], Any], parameters: dict[str, Any], workdir: str | None
) -> tuple[str, Any, str]:
    if workdir is None:
        return _call(fn, parameters)
    os.makedirs(workdir, exist_ok=True)
    # An earlier run's outcome must not pass for this one's. Removed before
    # params.json is written: a fresh params.json vouches for what follows it.
    for stale in ("result.json", "error.json"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(workdir, stale))
    _write(os.path.join(workdir, "params.json"), json.dumps(parameters, indent=2, default=str))
    with _output_to(workdir):
        outcome = _call(fn, parameters)
    status, value, details = outcome
    if status == "ok":
        with contextlib.suppress(TypeError, ValueError):  # not JSON data: the pickle still goes
            _write(os.path.join(workdir, "result.json"), json.dumps(value, default=plain))
    else:
        report = json.dumps({"error": value, "traceback": details})
        _write(os.path.join(workdir, "error.json"), report)
    return outcome


def _call(fn: Callable[[dict[str, Any]], Any], parameters: dict[str, Any]) -> tuple[str, Any, str]:
    try:
        value = fn(parameters)
    except BaseException as exc:  # noqa: BLE001 - SystemExit from a user's sys.exit() too
        return "error", f"{type(exc).__name__}: {exc}", traceback.format_exc()
    try:
        pickle.dumps(value)
    except Exception as exc:  # noqa: BLE001 - any pickling failure is the same problem
        return (
            "error",
            f"objective returned {type(value).__name__}, which cannot be sent back: {exc}",
            "",
        )
    return "ok", value, ""


@contextlib.contextmanager
def _output_to(workdir: str) -> Iterator[None]:
    """Send this process's stdout and stderr (fds 1 and 2) to the trial's log files."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        for fd, name in ((1, "stdout.log"), (2, "stderr.log")):
            log = os.open(os.path.join(workdir, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            os.dup2(log, fd)
            os.close(log)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


def _write(path: str, text: str) -> None:
    """Whole or not at all: the worker may be killed (its driver died) at any
    moment, and a half-written result must never be read as one."""
    write_atomically(path, text, fsync=False)


def noop() -> None:
    """Submitted once per worker to start it before the first trial."""
