"""Reading what the remote worker (``_jobworker.py``) left in a trial directory.

Shared by the runners that use the worker (Slurm, SSH hosts): ``error.json`` is the
objective's own failure; otherwise the tail of ``stderr.log`` explains the exit.
"""

from __future__ import annotations

import contextlib
import json

from ._exceptions import ObjectiveError, TrialError, TrialTimeoutError

#: How much of a trial's stderr a failure reason quotes.
STDERR_TAIL_BYTES = 2000


def reported_error(data: bytes | None) -> TrialError | None:
    """The failure ``error.json`` reports (a timeout too), or None if absent or unreadable."""
    if data is None:
        return None
    with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
        report = json.loads(data)
        kind = TrialTimeoutError if report.get("timeout") else ObjectiveError
        return kind(str(report["error"]), details=str(report["traceback"]) or None)
    return None


def stderr_summary(tail: bytes | None) -> tuple[str, str | None]:
    """The last line of a stderr tail (for the reason) and the whole tail (for details)."""
    text = (tail or b"").decode(errors="replace").strip()
    return (text.splitlines()[-1] if text else "(stderr empty)"), (text or None)


def interpreter_by_name(interpreter: str | None) -> str | None:
    """A script's interpreter by name: its local path may not exist on another host."""
    return interpreter and interpreter.rsplit("/", 1)[-1]
