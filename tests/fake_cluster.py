"""A scripted stand-in for a Slurm login node, for exact tests of the runner's logic.

It answers the commands SlurmRunner sends (sbatch, sacct, scancel, ...) from state
the test controls, records every command, and never runs a job: a test decides
what sacct reports and which result files exist. The real cluster is tested in
test_slurm.py; this covers what a real cluster cannot be made to do on demand
(NODE_FAIL, sacct lag, a failing poll, a connection dropped during sbatch).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from ax_scheduler import RunnerError
from ax_scheduler._remote import Completed, ConnectionDropped, Transport


class FakeCluster(Transport):
    description = "fake-cluster"

    def __init__(self, *, max_array_size: int = 1001) -> None:
        self.commands: list[list[str]] = []
        self.files: dict[str, bytes] = {}
        self.max_array_size = max_array_size
        self.next_job_id = 100
        self.arrays: dict[str, int] = {}  # job id -> number of tasks
        self.states: dict[str, str] = {}  # "100_3" -> "RUNNING" ...; absent: sacct lags
        self.sacct_failures = 0  # the next N sacct calls fail
        self.drop_next_sbatch = False  # the connection drops during the next sbatch...
        self.sbatch_went_through = True  # ...after (or before) the job was accepted
        self.cancelled: list[str] = []
        self.on_sacct: Callable[[FakeCluster], None] | None = None
        self.names: dict[str, str] = {}  # job id -> job name
        self.read_failures = 0  # the next N file reads fail (the connection is down)

    # -- Transport ----------------------------------------------------------------
    async def run(self, argv: Sequence[str], *, idempotent: bool = True) -> Completed:
        argv = list(argv)
        self.commands.append(argv)
        program = argv[0]
        if program == "sh":  # job_dir creation: prints the absolute path
            return Completed(0, f"/home/user/{argv[4]}\n", "")
        if program == "sbatch" and "--test-only" in argv:
            return Completed(0, "", "sbatch: Job 1 to start at ...")
        if program == "sbatch":
            return self._sbatch(argv)
        if program == "sacct":
            return self._sacct(argv)
        if program == "scancel":
            self.cancelled += argv[1:]
            for task in argv[1:]:
                self.states[task] = "CANCELLED"
            return Completed(0, "", "")
        if program == "squeue":
            name = next(arg.split("=", 1)[1] for arg in argv if arg.startswith("--name="))
            found = [job for job, seen in self.names.items() if seen == name]
            return Completed(0, "\n".join(found), "")
        if program == "scontrol":
            return Completed(0, f"MaxArraySize            = {self.max_array_size}\n", "")
        if program == "mkdir":
            return Completed(0, "", "")
        raise AssertionError(f"unexpected command {argv}")

    async def write_file(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        self.files[path] = data

    async def read_file(self, path: str, *, tail: int | None = None) -> bytes | None:
        if self.read_failures:
            self.read_failures -= 1
            raise RunnerError("cannot connect to fake-cluster: connection refused")
        data = self.files.get(path)
        return data if data is None or tail is None else data[-tail:]

    # -- commands -------------------------------------------------------------------
    def _sbatch(self, argv: list[str]) -> Completed:
        array = next(arg for arg in argv if arg.startswith("--array="))
        tasks = int(array.split("=", 1)[1].split("-")[1].split("%")[0]) + 1
        name = next(arg for arg in argv if arg.startswith("--job-name=")).split("=", 1)[1]
        if self.drop_next_sbatch:
            self.drop_next_sbatch = False
            if self.sbatch_went_through:
                self._accept(name, tasks)
            raise ConnectionDropped("connection dropped while running sbatch")
        return Completed(0, f"{self._accept(name, tasks)};cluster\n", "")

    def _accept(self, name: str, tasks: int) -> str:
        job_id = str(self.next_job_id)
        self.next_job_id += 1
        self.arrays[job_id] = tasks
        self.names[job_id] = name
        return job_id

    def _sacct(self, argv: list[str]) -> Completed:
        if self.on_sacct is not None:
            self.on_sacct(self)
        if self.sacct_failures:
            self.sacct_failures -= 1
            return Completed(1, "", "sacct: error: slurmdbd: Connection refused")
        ids = argv[argv.index("-j") + 1].split(",")
        lines = []
        for job_id in ids:
            for task in range(self.arrays.get(job_id, 0)):
                state = self.states.get(f"{job_id}_{task}")
                if state is not None:
                    code = "0:0" if state in ("COMPLETED", "RUNNING", "PENDING") else "1:0"
                    lines.append(f"{job_id}_{task}|{state}|{code}")
        return Completed(0, "\n".join(lines) + "\n", "")

    # -- helpers for tests ----------------------------------------------------------
    def sbatch_calls(self) -> list[list[str]]:
        return [c for c in self.commands if c[0] == "sbatch" and "--test-only" not in c]

    def sacct_calls(self) -> list[list[str]]:
        return [c for c in self.commands if c[0] == "sacct"]

    def manifest(self, job_id: str) -> dict[str, Any]:
        sbatch = self.sbatch_calls()[int(job_id) - 100]
        directory = sbatch[-1].rsplit("/", 1)[0]
        return json.loads(self.files[f"{directory}/manifest.json"])

    def finish(self, job_id: str, task: int, state: str = "COMPLETED", result: Any = None) -> None:
        """Make a task terminal; COMPLETED writes its result.json as the worker would."""
        workdir = self.manifest(job_id)["tasks"][task]["workdir"]
        if result is not None:
            self.files[f"{workdir}/result.json"] = json.dumps(result).encode()
        self.states[f"{job_id}_{task}"] = state

    def set_stderr(self, job_id: str, task: int, text: str) -> None:
        workdir = self.manifest(job_id)["tasks"][task]["workdir"]
        self.files[f"{workdir}/stderr.log"] = text.encode()
