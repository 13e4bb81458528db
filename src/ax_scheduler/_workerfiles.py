"""Reading what the remote worker (``_jobworker.py``) left in a trial directory.

Shared by the runners that use the worker (Slurm, SSH hosts): ``error.json`` is the
objective's own failure; otherwise the tail of ``stderr.log`` explains the exit.
And which trial directories they may delete (``cleanup_after_completion``).
"""

from __future__ import annotations

import contextlib
import json

from ._exceptions import ObjectiveError, RunnerError, TrialError, TrialTimeoutError

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


def removable_folder(path: str, root: str) -> str:
    """``path``, checked to be a folder below the job directory ``root`` (for ``rm -rf``).

    Raises:
        RunnerError: It is not below ``root``: a corrupt handle must never make the
            runner delete something else.
    """
    if not root or not path.startswith(f"{root.rstrip('/')}/") or "/../" in f"{path}/":
        raise RunnerError(
            f"refusing to remove {path!r}: it is not below the job directory {root!r}"
        )
    return path
