"""A fake Slurm login node: a Transport that plays sbatch, sacct, squeue, scancel and files."""

from __future__ import annotations

import json
import pickle
import shlex
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ._exceptions import RunnerError
from ._progressfile import MAX_READ_BYTES, TAIL_SCRIPT
from ._remote import BinaryCompleted, Completed, Transport, _ConnectionDropped
from ._remotejob import _SESSION_SCRIPT
from ._reporting import PROGRESS_FILE_NAME

#: sacct's exit code column for a task in each state the fake reports.
_EXIT_CODES = {"COMPLETED": "0:0", "RUNNING": "0:0", "PENDING": "0:0"}


class FakeTransport(Transport):
    """A scripted Slurm login node, for unit tests of code that drives a SlurmRunner.

    Passed as ``SlurmRunner(transport=FakeTransport())``, it answers the runner's
    commands from state the test controls and records every command; it never
    runs a job. ``sbatch`` accepts every array (job ids count from 100);
    ``sacct`` reports the states in :attr:`states`, and nothing for a task without
    one (sacct lags like that after a submission); ``scancel`` makes tasks
    CANCELLED (``scancel --signal`` only records the signal); files live in
    :attr:`files`, and the progress read prints theirs. The test decides when
    tasks end and how: :meth:`complete` runs them as the worker would,
    :meth:`finish` sets any state, :meth:`report` appends a progress line, and
    :attr:`on_sacct` runs just before each status poll.

    Example:
        A campaign on a SlurmRunner, in milliseconds: every poll finishes what was
        submitted, by calling the objective the runner uploaded::

            from ax_scheduler import AxScheduler, SlurmRunner
            from ax_scheduler.testing import FakeClock, FakeTransport

            cluster = FakeTransport()
            cluster.on_sacct = FakeTransport.complete
            runner = SlurmRunner(partition="gpu", transport=cluster, clock=FakeClock())
            with AxScheduler(ax_client, runner) as scheduler:
                scheduler.set_objective_function(simulate)
                scheduler.run_optimization(max_trials=20)
            assert len(cluster.sbatch_calls()) >= 1

    Args:
        max_array_size: The cluster's ``MaxArraySize`` (arrays are split at it).

    Attributes:
        commands: Every command received, in order (argv lists).
        files: Path -> content of every file written (and of results).
        states: Array task (``"100_3"``) -> the state sacct reports for it; a
            plain job id (``"100"``) -> the state of the line without a task
            index that Slurm's database prints for a one-task array at first.
        arrays: Job id -> its number of tasks.
        names: Job id -> its job name.
        cancelled: The array tasks ``scancel`` was given, in order.
        signalled: ``(signal, task)`` of each ``scancel --signal``, in order.
        on_sacct: Called with the fake just before each ``sacct`` status poll answers.
        sacct_failures: The next N ``sacct`` calls fail (slurmdbd is down).
        sbatch_failures: The next N ``sbatch`` calls fail (the controller is busy).
        failed_sbatch_went_through: ...yet the cluster accepted each of those arrays
            (a controller that restarted before it answered).
        read_failures: The next N file reads fail (the connection is down).
        drop_next_sbatch: The connection drops during the next ``sbatch``...
        sbatch_went_through: ...after the cluster accepted the array (or before).
    """

    description = "fake-cluster"

    def __init__(self, *, max_array_size: int = 1001) -> None:
        self.max_array_size = max_array_size
        self.commands: list[list[str]] = []
        self.files: dict[str, bytes] = {}
        self.states: dict[str, str] = {}
        self.arrays: dict[str, int] = {}
        self.names: dict[str, str] = {}
        self.cancelled: list[str] = []
        self.signalled: list[tuple[str, str]] = []
        self.on_sacct: Callable[[FakeTransport], None] | None = None
        self.sacct_failures = 0
        self.sbatch_failures = 0
        self.failed_sbatch_went_through = False
        self.read_failures = 0
        self.drop_next_sbatch = False
        self.sbatch_went_through = True
        self._next_job_id = 100
        self._directories: dict[str, str] = {}  # job id -> its array's directory

    # -- Transport ------------------------------------------------------------------
    async def run(self, argv: Sequence[str], *, idempotent: bool = True) -> Completed:
        argv = list(argv)
        self.commands.append(argv)
        handler = _COMMANDS.get(argv[0])
        if handler is None:
            return Completed(127, "", f"{argv[0]}: not a command this fake plays")
        return handler(self, argv)

    async def run_binary(self, argv: Sequence[str]) -> BinaryCompleted:
        if list(argv[:3]) != ["sh", "-c", TAIL_SCRIPT]:
            return await super().run_binary(argv)
        self.commands.append(list(argv))
        return BinaryCompleted(0, play_tail(self.files, argv), "")

    async def write_file(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        self.files[path] = data

    async def read_file(self, path: str, *, tail: int | None = None) -> bytes | None:
        if self.read_failures:
            self.read_failures -= 1
            raise RunnerError(f"cannot connect to {self.description}: connection refused")
        data = self.files.get(path)
        return data if data is None or tail is None else data[-tail:]

    # -- what tests look at and do --------------------------------------------------
    def sbatch_calls(self) -> list[list[str]]:
        """The array submissions received (not ``sbatch --test-only``)."""
        return [c for c in self.commands if c[0] == "sbatch" and "--test-only" not in c]

    def sacct_calls(self) -> list[list[str]]:
        """The status polls received."""
        return [c for c in self.commands if c[0] == "sacct"]

    def progress_reads(self) -> list[list[str]]:
        """The progress-file reads received (one per tick, whatever the number of trials)."""
        return [c for c in self.commands if c[:3] == ["sh", "-c", TAIL_SCRIPT]]

    def report(self, job_id: str, task: int, line: str) -> None:
        """Append ``line`` (and a newline) to the task's ``progress.jsonl``, as its
        objective's ``report()`` or a script would."""
        workdir = self.manifest(job_id)["tasks"][task]["workdir"]
        path = f"{workdir}/{PROGRESS_FILE_NAME}"
        self.files[path] = self.files.get(path, b"") + line.encode() + b"\n"

    def manifest(self, job_id: str) -> dict[str, Any]:
        """What array ``job_id`` runs: the worker's manifest the runner wrote."""
        return dict(json.loads(self.files[f"{self._directories[job_id]}/manifest.json"]))

    def unfinished(self) -> Iterator[tuple[str, int]]:
        """Every submitted task not in a terminal state: ``(job id, task index)``."""
        for job_id, tasks in self.arrays.items():
            for task in range(tasks):
                if self.states.get(f"{job_id}_{task}") in (None, "PENDING", "RUNNING"):
                    yield job_id, task

    def complete(self, objective: Callable[[dict[str, Any]], Any] | None = None) -> None:
        """Run every unfinished task as the worker would: COMPLETED with its
        ``result.json``, or FAILED with the ``error.json`` of what it raised.

        Args:
            objective: What a task returns for its parameters; None calls the
                function objective the runner uploaded (a script or container
                trial needs one here: the fake runs no command).
        """
        for job_id, task in list(self.unfinished()):
            manifest = self.manifest(job_id)
            function = objective or self._uploaded_function(manifest)
            parameters = manifest["tasks"][task]["parameters"]
            try:
                value = function(dict(parameters))
            except Exception as exc:  # noqa: BLE001 - reported as the trial's failure
                report = {
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(),
                }
                self._write(job_id, task, "error.json", json.dumps(report))
                self.states[f"{job_id}_{task}"] = "FAILED"
                continue
            self.finish(job_id, task, result=value)

    def finish(self, job_id: str, task: int, state: str = "COMPLETED", result: Any = None) -> None:
        """Make a task terminal (any sacct state); a ``result`` is written to its
        ``result.json`` as the worker would."""
        if result is not None:
            self._write(job_id, task, "result.json", json.dumps(result))
        self.states[f"{job_id}_{task}"] = state

    def set_stderr(self, job_id: str, task: int, text: str) -> None:
        """What the task's ``stderr.log`` holds (failure reasons quote its last line)."""
        self._write(job_id, task, "stderr.log", text)

    def _write(self, job_id: str, task: int, name: str, text: str) -> None:
        workdir = self.manifest(job_id)["tasks"][task]["workdir"]
        self.files[f"{workdir}/{name}"] = text.encode()

    def _uploaded_function(self, manifest: dict[str, Any]) -> Callable[[dict[str, Any]], Any]:
        if manifest["kind"] != "function":
            raise ValueError("a script or container array needs complete(objective)")
        # The runner's own cloudpickle of the objective, as the worker loads it.
        function: Callable[[dict[str, Any]], Any] = pickle.loads(self.files[manifest["objective"]])
        return function

    # -- the commands ---------------------------------------------------------------
    def _shell(self, argv: list[str]) -> Completed:
        """The runner's fixed scripts: the session directory, a program or paths lookup."""
        script, args = argv[2], argv[4:]
        if script == _SESSION_SCRIPT:
            job_dir, session = args
            root = job_dir if job_dir.startswith("/") else f"/home/user/{job_dir}"
            return Completed(0, f"{root}/{session}\n", "")
        if "command -v" in script:  # a script's interpreter, a container engine
            return Completed(0, f"/usr/bin/{args[0]}\n", "")
        return Completed(0, "", "")  # volume paths: all exist

    def _sbatch(self, argv: list[str]) -> Completed:
        if "--test-only" in argv:
            return Completed(0, "", "sbatch: Job 1 to start at ...")
        array = _option(argv, "--array")
        tasks = int(array.split("-")[1].split("%")[0]) + 1
        name, directory = _option(argv, "--job-name"), argv[-1].rsplit("/", 1)[0]
        if self.sbatch_failures:
            self.sbatch_failures -= 1
            if self.failed_sbatch_went_through:
                self._accept(name, tasks, directory)
            return Completed(1, "", "sbatch: error: Batch job submission failed: timed out")
        if self.drop_next_sbatch:
            self.drop_next_sbatch = False
            if self.sbatch_went_through:
                self._accept(name, tasks, directory)
            raise _ConnectionDropped(f"connection to {self.description} dropped during sbatch")
        return Completed(0, f"{self._accept(name, tasks, directory)};cluster\n", "")

    def _accept(self, name: str, tasks: int, directory: str) -> str:
        job_id = str(self._next_job_id)
        self._next_job_id += 1
        self.arrays[job_id], self.names[job_id] = tasks, name
        self._directories[job_id] = directory
        return job_id

    def _sacct(self, argv: list[str]) -> Completed:
        if self.on_sacct is not None and "-j" in argv:  # status polls, not name lookups
            self.on_sacct(self)
        if self.sacct_failures:
            self.sacct_failures -= 1
            return Completed(1, "", "sacct: error: slurmdbd: Connection refused")
        if "-j" not in argv:  # looking an array up by its name
            name = _option(argv, "--name")
            return Completed(0, "".join(f"{j}\n" for j, n in self.names.items() if n == name), "")
        lines = []
        for job_id in argv[argv.index("-j") + 1].split(","):
            plain = self.states.get(job_id)  # as Slurm's database lists a one-task array at first
            if plain is not None:
                lines.append(f"{job_id}|{plain}|{_EXIT_CODES.get(plain, '1:0')}\n")
            for task in range(self.arrays.get(job_id, 0)):
                state = self.states.get(f"{job_id}_{task}")
                if state is not None:
                    lines.append(f"{job_id}_{task}|{state}|{_EXIT_CODES.get(state, '1:0')}\n")
        return Completed(0, "".join(lines), "")

    def _squeue(self, argv: list[str]) -> Completed:
        # squeue lists queued and running jobs only: a finished array is sacct's.
        name = _option(argv, "--name")
        live = [j for j, n in self.names.items() if n == name and not self._finished(j)]
        return Completed(0, "".join(f"{j}\n" for j in live), "")

    def _finished(self, job_id: str) -> bool:
        tasks = [self.states.get(f"{job_id}_{task}") for task in range(self.arrays[job_id])]
        return all(state not in (None, "PENDING", "RUNNING") for state in tasks)

    def _scancel(self, argv: list[str]) -> Completed:
        tasks = [arg for arg in argv[1:] if not arg.startswith("-")]
        signal = next((a.split("=", 1)[1] for a in argv if a.startswith("--signal=")), None)
        if signal is not None:  # the job goes on: its worker decides what the signal means
            self.signalled += [(signal, task) for task in tasks]
            return Completed(0, "", "")
        self.cancelled += tasks
        for task in tasks:
            self.states[task] = "CANCELLED"
        return Completed(0, "", "")

    def _scontrol(self, argv: list[str]) -> Completed:
        return Completed(0, f"MaxArraySize            = {self.max_array_size}\n", "")

    def _rm(self, argv: list[str]) -> Completed:
        for folder in argv[3:]:
            for path in [p for p in self.files if p.startswith(f"{folder}/")]:
                del self.files[path]
        return Completed(0, "", "")

    def _ok(self, argv: list[str]) -> Completed:
        return Completed(0, "", "")


def play_tail(files: dict[str, bytes], argv: Sequence[str]) -> bytes:
    """What the progress read (:data:`~ax_scheduler._progressfile.TAIL_SCRIPT`)
    prints on a machine whose files are ``files``: for fakes of cluster and hosts."""
    base, pairs = argv[4], list(argv[5:])
    out = b""
    for path, offset in zip(pairs[::2], map(int, pairs[1::2]), strict=True):
        data = files.get(path if path.startswith("/") else f"{base.rstrip('/')}/{path}", b"")
        new = data[offset : offset + MAX_READ_BYTES] if len(data) > offset else b""
        out += f"@@axs-progress {len(new)}\n".encode() + new
    return out


def _option(argv: list[str], name: str) -> str:
    """The value of ``--name=value`` in ``argv``."""
    found = next((arg for arg in argv if arg.startswith(f"{name}=")), None)
    if found is None:
        raise ValueError(f"no {name}= in {shlex.join(argv)}")
    return found.split("=", 1)[1]


_COMMANDS: dict[str, Callable[[FakeTransport, list[str]], Completed]] = {
    "sh": FakeTransport._shell,
    "bash": FakeTransport._shell,
    "sbatch": FakeTransport._sbatch,
    "sacct": FakeTransport._sacct,
    "squeue": FakeTransport._squeue,
    "scancel": FakeTransport._scancel,
    "scontrol": FakeTransport._scontrol,
    "mkdir": FakeTransport._ok,
    "rm": FakeTransport._rm,
}
