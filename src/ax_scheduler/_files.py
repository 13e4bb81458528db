"""Writing a file whole or not at all: a temp file beside it, then a rename.

Standard library only: the local pool's worker processes use it too.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path


def write_atomically(
    path: str | os.PathLike[str],
    data: str | bytes,
    *,
    mode: int | None = None,
    fsync: bool = True,
) -> None:
    """Write ``data`` to ``path`` via a temp file and a rename: never half a file.

    Args:
        path: The file; its directory is created if missing.
        data: Text (UTF-8) or bytes.
        mode: Exactly these permissions (an uploaded script's 0755). None gives
            0666 less the process's umask, as ``open()`` would (mkstemp's 0600
            would hide a saved experiment from the user's group).
        fsync: Flush to disk before the rename, for files that must survive a
            crash of the machine (checkpoints, snapshots). A trial's own files
            skip it: a machine crash takes the trial with it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data.encode() if isinstance(data, str) else data)
            if mode is not None:
                os.fchmod(file.fileno(), mode)
            if fsync:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
