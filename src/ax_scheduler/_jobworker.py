"""The program a cluster job runs for one trial: ``python axs_worker.py MANIFEST TASK``.

Standard library only (function objectives also need cloudpickle on the cluster),
because runners upload this file as it is: the cluster does not need ax-scheduler,
Ax or torch installed. ``MANIFEST`` is the submission's JSON (one entry per task of
a job array); ``TASK`` is the task's index in it (``$SLURM_ARRAY_TASK_ID``).

The files it leaves in the trial's directory are the truth about the trial:

* ``params.json``: the parameters (written first, also for scripts to read);
* ``result.json``: what the objective returned, written to a temp file and renamed,
  so it exists only when complete;
* ``error.json``: ``{"error": ..., "traceback": ...}`` when the objective raised;
* ``progress.jsonl``: the trial's reports, JSON lines the driver reads while the
  job runs (``ax_scheduler.report()`` in a function, ``$JOB_PROGRESS_FILE`` for a
  script).

Exit code 0 means ``result.json`` was written.

The driver asks a trial to stop early with :data:`STOP_SIGNAL` (SIGUSR2) to this
process: a function's next ``report()`` then raises ``TrialStoppedEarly`` (the
worker sets ``$JOB_STOP_REQUESTED``, which ``report()`` reads), a script gets
SIGTERM. SIGTERM keeps its meaning, "end now": Slurm sends it to every process of
a job it cancels, and a cancelled trial must not wait for its next report.
"""

from __future__ import annotations

import contextlib
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

#: The signal by which the driver asks the trial to stop early (not SIGUSR1, which
#: clusters commonly send as a time-limit warning: ``sbatch --signal=USR1@90``).
STOP_SIGNAL = signal.SIGUSR2
# ax_scheduler._reporting's names, repeated: this file runs alone on the cluster.
PROGRESS_FILE_VARIABLE = "JOB_PROGRESS_FILE"
STOP_VARIABLE = "JOB_STOP_REQUESTED"
PROGRESS_FILE_NAME = "progress.jsonl"
#: What a stopped function's ``report()`` says (the driver records its own reason).
STOP_REASON = "stopped early by the scheduler"


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
        return run_function(manifest["objective"], task["parameters"], workdir)
    grace = task.get("grace", TERMINATE_GRACE_SECONDS)
    return run_command(task["argv"], task.get("env", {}), task.get("timeout"), grace)


def run_function(objective_path: str, parameters: dict[str, Any], workdir: str) -> int:
    """Call the pickled objective; its reports go to ``progress.jsonl`` in ``workdir``."""
    os.environ[PROGRESS_FILE_VARIABLE] = os.path.join(os.path.abspath(workdir), PROGRESS_FILE_NAME)
    signal.signal(STOP_SIGNAL, request_stop)
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
    # An early stop: the script gets SIGTERM; if it lingers, the driver's grace
    # period ends with the stop above.
    signal.signal(STOP_SIGNAL, lambda *_: signal_group(process, signal.SIGTERM))
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


def request_stop(*_: Any) -> None:
    """The driver asked for an early stop: the objective's next ``report()`` raises."""
    os.environ[STOP_VARIABLE] = STOP_REASON


def signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send ``sig`` to the command's process group, if it is still there."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


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
