"""Code that runs inside worker processes. Standard library only: importing it must
not pull in Ax, torch or the rest of ax-scheduler, so workers start fast."""

from __future__ import annotations

import pickle
import signal
import traceback
from collections.abc import Callable
from typing import Any


def ignore_sigint() -> None:
    """Worker initializer: Ctrl-C is the driver's to handle.

    A terminal sends SIGINT to the whole process group; the driver then cancels
    its trials and stops the workers itself, so a worker must not turn the same
    Ctrl-C into a spurious objective failure.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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
