"""The program a cluster job runs for one trial: ``python axs_worker.py MANIFEST TASK``.

Standard library only (function objectives also need cloudpickle on the cluster),
because runners upload this file as it is: the cluster does not need ax-scheduler,
Ax or torch installed. ``MANIFEST`` is the submission's JSON (one entry per task of
a job array); ``TASK`` is the task's index in it (``$SLURM_ARRAY_TASK_ID``).

The files it leaves in the trial's directory are the truth about the trial:

* ``params.json``: the parameters (written first, also for scripts to read);
* ``result.json``: what the objective returned, written to a temp file and renamed,
  so it exists only when complete;
* ``error.json``: ``{"error": ..., "traceback": ...}`` when the objective raised.

Exit code 0 means ``result.json`` was written.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import traceback
from typing import Any

#: Seconds between SIGTERM and SIGKILL when a command is stopped.
TERMINATE_GRACE_SECONDS = 5.0


def main(argv: list[str]) -> int:
    manifest_path, task_id = argv[1], int(argv[2])
    with open(manifest_path, encoding="utf-8") as file:
        manifest = json.load(file)
    task = manifest["tasks"][task_id]
    workdir = task["workdir"]
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)
    write_atomically("params.json", json.dumps(task["parameters"], indent=2))
    if manifest["kind"] == "function":
        return run_function(manifest["objective"], task["parameters"])
    grace = task.get("grace", TERMINATE_GRACE_SECONDS)
    return run_command(task["argv"], task.get("env", {}), task.get("timeout"), grace)


def run_function(objective_path: str, parameters: dict[str, Any]) -> int:
    try:
        with open(objective_path, "rb") as file:
            fn = pickle.load(file)  # our own pickle, written by our own driver
    except BaseException as exc:  # noqa: BLE001 - reported as the trial's failure
        return report_error(f"could not load the objective on {os.uname().nodename}", exc)
    try:
        value = fn(dict(parameters))
    except BaseException as exc:  # noqa: BLE001 - SystemExit from a user's sys.exit() too
        return report_error(None, exc)
    try:
        text = json.dumps(value, default=plain)
    except (TypeError, ValueError) as exc:
        return report_error(f"objective returned {type(value).__name__}, not JSON data", exc)
    write_atomically("result.json", text)
    return 0


def run_command(argv: list[str], env: dict[str, str], timeout: float | None, grace: float) -> int:
    """Run a script or container command in its own process group; it writes result.json.

    A timeout stops the whole group (SIGTERM, then SIGKILL after a grace period),
    so nothing the command started outlives the trial.
    """
    try:
        process = subprocess.Popen(argv, env={**os.environ, **env}, start_new_session=True)
    except OSError as exc:
        return report_error(f"could not start {argv[0]!r}", exc)
    # scancel or a runner's stop: the command's own group goes too (SIGTERM, grace, SIGKILL)
    signal.signal(signal.SIGTERM, lambda *_: stop_group(process, grace))
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_group(process, grace)
        write_atomically(
            "error.json",
            json.dumps(
                {
                    "error": f"timeout: ran longer than its timeout of {timeout:g} s",
                    "traceback": "",
                    "timeout": True,
                }
            ),
        )
        return 124
    return code if code >= 0 else 128 - code


def stop_group(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the command's process group, SIGKILL it after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        if wait is not None:
            try:
                process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue


def plain(value: Any) -> Any:
    """numpy scalars and arrays as plain numbers and lists."""
    for method in ("item", "tolist"):
        if hasattr(value, method):
            return getattr(value, method)()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def report_error(context: str | None, exc: BaseException) -> int:
    message = f"{type(exc).__name__}: {exc}"
    if context:
        message = f"{context}: {message}"
    details = traceback.format_exc()
    sys.stderr.write(details)
    write_atomically("error.json", json.dumps({"error": message, "traceback": details}))
    return 1


def write_atomically(path: str, text: str) -> None:
    temp = f".{path}.{os.getpid()}.tmp"
    with open(temp, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temp, path)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
