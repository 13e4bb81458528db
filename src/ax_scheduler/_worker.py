"""Code that runs inside worker processes. Standard library only: importing it must
not pull in Ax, torch or the rest of ax-scheduler, so workers start fast."""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

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
    fn: Callable[[dict[str, Any]], Any], parameters: dict[str, Any]
) -> tuple[str, Any, str]:
    """Run the objective and report ``("ok", value, "")`` or ``("error", message, traceback)``.

    Exceptions are flattened to text here because a user's exception class may not
    be picklable, and an unpicklable return value is reported instead of breaking
    the pool.
    """
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


def noop() -> None:
    """Submitted once per worker to start it before the first trial."""
