"""SSHRunner's logic against scripted hosts: lost hosts, refused uploads, following, stopping.

Each host is a :class:`FakeHost` passed through ``SSHRunner(transports=...)``: it
plays the runner's commands and runs a function trial's pickled objective itself,
so these tests pin down, in milliseconds and virtual time, what real sshd does
only by chance (a connection dying mid-trial, SFTP refusing a file). The real
hosts are tested in test_ssh.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pickle
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncssh
import pytest

from ax_scheduler import InfrastructureError, RunnerError, SSHRunner
from ax_scheduler._config import SSHHost
from ax_scheduler._exceptions import ObjectiveError
from ax_scheduler._faketransport import play_tail
from ax_scheduler._hostworker import alive_argv, stop_group_argv, stop_request_argv
from ax_scheduler._jobs import FunctionObjective, Job
from ax_scheduler._progressfile import TAIL_SCRIPT
from ax_scheduler._remote import (
    BinaryCompleted,
    Completed,
    HostTransport,
    ProcessExit,
    RemoteProcess,
    _ConnectionDropped,
)
from ax_scheduler._remotejob import _SESSION_SCRIPT
from ax_scheduler.testing import FakeClock

PID = 4242


def objective(parameters: dict[str, Any]) -> dict[str, float]:
    return {"objective": parameters["x"] * 2}


OBJECTIVE = FunctionObjective(objective)


class FakeHost(HostTransport):
    """A scripted SSH host: plays the runner's commands, runs function trials itself.

    Attributes:
        unreachable: Every connection attempt (and so every command) fails.
        refuse_uploads: SFTP refuses the objectives' files (not the worker).
        drop_during_trial: The connection dies while a trial runs, for good.
        hang: A started worker never ends (until it is stopped).
        alive: pid -> how many more looks find it running.
        last_lines: What a worker appends to its progress file just before it exits.
    """

    def __init__(self, options: SSHHost) -> None:
        self.description = options.address
        self.files: dict[str, bytes] = {}
        self.commands: list[list[str]] = []
        self.unreachable = False
        self.refuse_uploads = False
        self.drop_during_trial = False
        self.hang = False
        self.hanging = asyncio.Event()  # set once a worker hangs
        self.alive: dict[int, int] = {}
        self.last_lines = b""

    def _reachable(self) -> None:
        if self.unreachable:
            raise RunnerError(f"cannot connect to {self.description}: refused (tried 6 times)")

    async def connect(self) -> None:
        self._reachable()

    async def run(self, argv: Sequence[str], *, idempotent: bool = True) -> Completed:
        self._reachable()
        argv = list(argv)
        self.commands.append(argv)
        if argv[:3] == ["sh", "-c", _SESSION_SCRIPT]:
            return Completed(0, f"/home/u/{argv[4]}/{argv[5]}\n", "")
        if argv[:3] == alive_argv(PID)[:3]:
            looks = self.alive.get(int(argv[4]), 0)
            self.alive[int(argv[4])] = looks - 1
            return Completed(0 if looks > 0 else 1, "", "")
        return Completed(0, "", "")  # mkdir, the objective's load check, stop, rm

    async def run_binary(self, argv: Sequence[str]) -> BinaryCompleted:
        self._reachable()
        if list(argv[:3]) != ["sh", "-c", TAIL_SCRIPT]:
            return await super().run_binary(argv)
        self.commands.append(list(argv))
        return BinaryCompleted(0, play_tail(self.files, argv), "")

    def trial_commands(self) -> list[list[str]]:
        """The commands received, but the progress reads of the host's tick."""
        return [c for c in self.commands if c[:3] != ["sh", "-c", TAIL_SCRIPT]]

    async def write_file(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        self._reachable()
        if self.refuse_uploads and ("/objective-" in path or "/script-" in path):
            raise asyncssh.SFTPError(asyncssh.FX_PERMISSION_DENIED, "Permission denied")
        self.files[path] = data

    async def read_file(self, path: str, *, tail: int | None = None) -> bytes | None:
        self._reachable()
        return self.files.get(path)

    @contextlib.asynccontextmanager
    async def open_process(self, argv: Sequence[str]) -> AsyncIterator[RemoteProcess]:
        self._reachable()
        self.commands.append(list(argv))
        yield FakeWorker(self, workdir=argv[4])

    def trial_files(self, trial: int) -> dict[str, Any]:
        """The manifest a trial's worker was given (its directory's ``manifest.json``)."""
        [path] = [p for p in self.files if f"/trial-{trial}" in p and p.endswith("manifest.json")]
        return dict(json.loads(self.files[path]))


class FakeWorker(RemoteProcess):
    """The worker's process: its pid line, then its exit, as the host is scripted."""

    def __init__(self, host: FakeHost, workdir: str) -> None:
        self.host, self.workdir = host, workdir
        self.lines = [f"axs-pid {PID} {PID}\n".encode()]

    async def readline(self) -> bytes:
        return self.lines.pop(0) if self.lines else b""

    async def wait(self) -> ProcessExit:
        if self.host.drop_during_trial:
            self.host.unreachable = True
            raise _ConnectionDropped(f"connection to {self.host.description} broke")
        if self.host.hang:
            self.host.hanging.set()
            await asyncio.Event().wait()
        if self.host.last_lines:
            path = f"{self.workdir}/progress.jsonl"
            self.host.files[path] = self.host.files.get(path, b"") + self.host.last_lines
        manifest = json.loads(self.host.files[f"{self.workdir}/manifest.json"])
        task = manifest["tasks"][0]
        if manifest["kind"] == "function":
            function = pickle.loads(self.host.files[manifest["objective"]])
            result = function(task["parameters"])
        else:
            result = {"objective": 0.0}  # a command: the fake runs no script
        self.host.files[f"{self.workdir}/result.json"] = json.dumps(result).encode()
        return ProcessExit(0)


class TaskClock(FakeClock):
    """A FakeClock that keeps each task's sleeps apart (the hosts' progress ticks
    sleep on it too)."""

    def __init__(self) -> None:
        super().__init__()
        self.by_task: dict[str, list[float]] = {}

    async def sleep(self, seconds: float) -> None:
        task = asyncio.current_task()
        self.by_task.setdefault(task.get_name() if task else "", []).append(seconds)
        await super().sleep(seconds)

    def trial_sleeps(self) -> list[float]:
        """The sleeps of every task but the progress ticks."""
        ticks = [name for name in self.by_task if name.startswith("ax-scheduler-progress")]
        return [s for name, sleeps in self.by_task.items() if name not in ticks for s in sleeps]


class Hosts:
    """The runner's ``transports=``: makes a FakeHost per host and keeps them by name."""

    def __init__(self) -> None:
        self.by_name: dict[str, FakeHost] = {}

    def __call__(self, options: SSHHost) -> FakeHost:
        self.by_name[options.host] = host = FakeHost(options)
        return host

    def __getitem__(self, name: str) -> FakeHost:
        return self.by_name[name]


def job(index: int = 0, **info: Any) -> Job:
    return Job(index, {"x": float(index) + 0.5}, OBJECTIVE, f"exp-trial-{index}", info=info)


async def test_a_host_whose_connection_drops_is_marked_down_and_its_trial_resubmitted() -> None:
    hosts = Hosts()
    runner = SSHRunner(["gpu-a", "gpu-b"], transports=hosts, clock=FakeClock())
    await runner.check_objective(OBJECTIVE)
    hosts["gpu-a"].drop_during_trial = True  # gpu-a takes the first trial: both are free
    trial = job(0)
    assert await runner.run(trial) == {"objective": 1.0}
    assert trial.info["host"] == "gpu-b:22"
    assert trial.info["resubmits"] == 1
    assert runner.load() == {"gpu-a:22 (down)": 0, "gpu-b:22": 0}
    assert hosts["gpu-a"].trial_files(0)["tasks"][0]["parameters"] == {"x": 0.5}
    await runner.aclose()


async def test_the_last_host_going_down_fails_the_trial_as_infrastructure() -> None:
    hosts = Hosts()
    runner = SSHRunner(["gpu-a"], transports=hosts, clock=FakeClock())
    await runner.check_objective(OBJECTIVE)
    hosts["gpu-a"].drop_during_trial = True
    with pytest.raises(InfrastructureError, match=r"every SSH host is down: gpu-a:22: cannot"):
        await runner.run(job(0))
    await runner.aclose()


async def test_a_host_that_refuses_the_upload_is_left_out_and_trials_run_on_the_others() -> None:
    hosts = Hosts()
    runner = SSHRunner(["gpu-a", "gpu-b"], transports=hosts, clock=FakeClock())
    await runner.start()
    hosts["gpu-a"].refuse_uploads = True
    await runner.check_objective(OBJECTIVE)
    assert runner.load() == {"gpu-a:22 (down)": 0, "gpu-b:22": 0}
    trial = job(1)
    assert await runner.run(trial) == {"objective": 3.0}
    assert trial.info["host"] == "gpu-b:22"
    await runner.aclose()


async def test_when_every_host_refuses_the_upload_the_objective_is_refused_naming_why() -> None:
    hosts = Hosts()
    runner = SSHRunner(["gpu-a"], transports=hosts, clock=FakeClock())
    await runner.start()
    hosts["gpu-a"].refuse_uploads = True
    with pytest.raises(RunnerError, match=r"no SSH host can run the objective: gpu-a:22: .*denied"):
        await runner.check_objective(OBJECTIVE)
    await runner.aclose()


async def test_a_worker_followed_after_a_restart_is_polled_on_the_clock_until_it_exits() -> None:
    hosts = Hosts()
    clock = TaskClock()
    runner = SSHRunner(["gpu-a"], {"poll_interval": 3}, transports=hosts, clock=clock)
    await runner.start()
    host = hosts["gpu-a"]
    workdir = "/home/u/ax_scheduler_jobs/20260101-000000-abcdef/trial-0"  # an earlier driver's
    host.files[f"{workdir}/pid"] = f"{PID} {PID}\n".encode()
    host.files[f"{workdir}/result.json"] = b'{"objective": 7.0}'
    host.alive[PID] = 3  # still running for three more looks
    followed = await runner.reattach(job(0, host="gpu-a:22", job_dir=workdir))
    assert followed is not None
    assert await followed == {"objective": 7.0}
    assert clock.trial_sleeps() == [3, 3, 3]
    await runner.aclose()


async def test_a_worker_whose_end_went_unseen_and_left_no_result_fails_saying_so() -> None:
    hosts = Hosts()
    runner = SSHRunner(["gpu-a"], transports=hosts, clock=FakeClock())
    await runner.start()
    workdir = "/home/u/ax_scheduler_jobs/20260101-000000-abcdef/trial-0"
    hosts["gpu-a"].files[f"{workdir}/pid"] = f"{PID} {PID}\n".encode()
    hosts["gpu-a"].files[f"{workdir}/stderr.log"] = b"loading\nKilled\n"
    followed = await runner.reattach(job(0, host="gpu-a:22", job_dir=workdir))
    assert followed is not None
    with pytest.raises(ObjectiveError) as raised:
        await followed
    assert str(raised.value) == (
        "worker on gpu-a:22 ended while its connection was down (exit code unknown)"
        " and wrote no result.json; stderr ends: Killed"
    )
    await runner.aclose()


async def test_cancelling_a_trial_stops_its_process_group_in_one_command() -> None:
    hosts = Hosts()
    runner = SSHRunner(["gpu-a"], {"stop_grace_seconds": 2}, transports=hosts, clock=FakeClock())
    await runner.check_objective(OBJECTIVE)
    hosts["gpu-a"].hang = True
    started = job(0)
    trial = asyncio.ensure_future(runner.run(started))
    await hosts["gpu-a"].hanging.wait()
    assert started.info["pid"] == PID  # it runs: its pid line reached the runner
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    assert hosts["gpu-a"].trial_commands()[-1] == stop_group_argv(PID, 2)
    await runner.aclose()


# -- reports and early stops ------------------------------------------------------------
async def until(condition: Any, seconds: float = 5.0) -> None:
    """Let the runner's tasks run until ``condition()`` holds."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.001)


def collect_reports(jobs: list[Job]) -> list[tuple[int, float]]:
    got: list[tuple[int, float]] = []
    for each in jobs:
        each.channel.on_report = lambda step, metrics, i=each.trial_index: got.append((i, step))
    return got


def progress_reads(host: FakeHost) -> list[list[str]]:
    return [c for c in host.commands if c[:3] == ["sh", "-c", TAIL_SCRIPT]]


async def test_a_hosts_tick_reads_all_its_trials_in_one_command_and_a_stop_signals_the_worker() -> (
    None
):
    hosts = Hosts()
    clock = TaskClock()
    runner = SSHRunner([{"host": "gpu-a", "slots": 2}], transports=hosts, clock=clock)
    await runner.check_objective(OBJECTIVE)
    host = hosts["gpu-a"]
    host.hang = True
    batch = [job(0), job(1)]
    got = collect_reports(batch)
    trials = [asyncio.ensure_future(runner.run(each)) for each in batch]
    await until(lambda: all("pid" in each.info for each in batch))
    for each in batch:
        line = json.dumps({"step": 3, "objective": each.trial_index})
        host.files[f"{each.info['job_dir']}/progress.jsonl"] = line.encode() + b"\n"
    await until(lambda: len(got) == 2)
    assert sorted(got) == [(0, 3.0), (1, 3.0)]
    batch[1].channel.request_stop("worse than the median")
    await until(lambda: stop_request_argv(PID) in host.commands)
    assert runner.stats["stop"] == 1
    for trial in trials:  # the grace ran out: the process groups are stopped
        trial.cancel()
    await asyncio.wait(trials)
    await runner.aclose()
    reads = progress_reads(host)
    assert len(reads) == runner.stats["progress"]
    # One read per tick of the host, naming both trials: not a command per trial.
    assert len(reads) <= len(clock.by_task["ax-scheduler-progress-gpu-a:22"])
    both = sorted(f"{each.info['job_dir']}/progress.jsonl" for each in batch)
    named = [sorted(f"{argv[4]}/{path}" for path in argv[5::2]) for argv in reads]
    assert both in named


async def test_the_lines_a_trial_writes_just_before_it_ends_arrive_before_its_result() -> None:
    hosts = Hosts()
    runner = SSHRunner(["gpu-a"], {"poll_interval": 60}, transports=hosts, clock=FakeClock())
    await runner.check_objective(OBJECTIVE)
    hosts["gpu-a"].last_lines = b'{"step": 7, "objective": 1.0}\n'
    [started] = [job(0)]
    got = collect_reports([started])
    assert await runner.run(started) == {"objective": 1.0}
    assert got == [(0, 7.0)]  # read once more at its end, not a minute later
    await runner.aclose()


async def test_a_reattached_worker_s_progress_file_is_read_again_from_the_start() -> None:
    hosts = Hosts()
    runner = SSHRunner(["gpu-a"], transports=hosts, clock=FakeClock())
    await runner.start()
    host = hosts["gpu-a"]
    workdir = "/home/u/ax_scheduler_jobs/20260101-000000-abcdef/trial-0"  # an earlier driver's
    host.files[f"{workdir}/pid"] = f"{PID} {PID}\n".encode()
    host.files[f"{workdir}/progress.jsonl"] = b'{"step": 0, "objective": 2.0}\n'
    host.files[f"{workdir}/result.json"] = b'{"objective": 1.0}'
    host.alive[PID] = 2
    followed_job = job(0, host="gpu-a:22", job_dir=workdir)
    got = collect_reports([followed_job])
    followed = await runner.reattach(followed_job)
    assert followed is not None
    assert await followed == {"objective": 1.0}
    assert got == [(0, 0.0)]  # from byte 0: the core skips the steps Ax already has
    await runner.aclose()
