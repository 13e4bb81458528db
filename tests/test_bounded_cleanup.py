"""Every command the runners run here is time-bounded, and so is their clean-up.

The runner contract says a cancelled run() stops its job with shielded,
time-bounded clean-up. These tests hang real processes where an engine or a
cluster could hang: a stand-in ``docker`` client whose chosen subcommands never
answer, and ``sleep 60`` (or Slurm commands that sleep) under LocalTransport.
Each call must return within its bound, say what hung and for how long, and
leave no hung process behind. The real engine is checked too (marked docker).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from ax_scheduler import ConfigError, DockerRunner, InfrastructureError, RunnerError, SlurmRunner
from ax_scheduler._clock import Clock
from ax_scheduler._config import ContainerOptions
from ax_scheduler._container import make_container_objective
from ax_scheduler._jobs import FunctionObjective, Job
from ax_scheduler._remote import (
    REAP_SECONDS,
    CommandTimeout,
    LocalTransport,
    _ConnectionDropped,
    _InterruptedCommand,
)
from conftest import alive

#: The timeout the tests give engine and cluster commands.
TIMEOUT = 0.5

#: What a bounded call may take beyond its bound: reaping, a loaded 2-core machine.
SLACK = 3.0

#: A stand-in docker client. Each call appends "PID ARGS" to $FAKE_DOCKER_DIR/calls;
#: a subcommand named in $FAKE_DOCKER_HANG never answers (``exec``, so the logged
#: pid is the hung process), one in $FAKE_DOCKER_FAIL fails as if the engine were
#: gone. ``run`` is a container that runs until ``stop``, or, with
#: $FAKE_DOCKER_RESULT, ends at once having written that result.
FAKE_DOCKER = """\
#!/bin/sh
d=$FAKE_DOCKER_DIR
echo "$$ $*" >> "$d/calls"
case " $FAKE_DOCKER_HANG " in *" $1 "*) exec sleep 60 ;; esac
case " $FAKE_DOCKER_FAIL " in *" $1 "*) echo "Cannot connect to the Docker daemon" >&2; exit 1 ;; esac
case $1 in
  version) echo 20.10.24 ;;
  image | container) echo sha256:0123 ;;
  run)
    for arg; do case $arg in *:/job) job=${arg%:/job} ;; esac; done
    if [ -n "$FAKE_DOCKER_RESULT" ]; then echo "$FAKE_DOCKER_RESULT" > "$job/result.json"; exit 0; fi
    echo $$ > "$d/container"
    exec sleep 60 ;;
  stop) [ -f "$d/container" ] && kill "$(cat "$d/container")" 2>/dev/null; echo "$4" ;;
  rm) echo "$3" ;;
  wait) sleep "${FAKE_DOCKER_WAIT:-0}"; echo 0 ;;
  logs) echo "the container's output" ;;
esac
exit 0
"""


class FakeDocker:
    """The stand-in client on disk, and what it was asked."""

    def __init__(self, directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.dir = directory
        self.engine = directory / "docker"
        self.engine.write_text(FAKE_DOCKER)
        self.engine.chmod(0o755)
        (directory / "calls").touch()
        self._monkeypatch = monkeypatch
        monkeypatch.setenv("FAKE_DOCKER_DIR", str(directory))
        monkeypatch.setenv("FAKE_DOCKER_HANG", "")
        monkeypatch.setenv("FAKE_DOCKER_FAIL", "")

    def hang(self, *subcommands: str) -> None:
        self._monkeypatch.setenv("FAKE_DOCKER_HANG", " ".join(subcommands))

    def set(self, name: str, value: str) -> None:
        self._monkeypatch.setenv(name, value)

    def calls(self) -> list[tuple[int, str]]:
        """``(pid, "subcommand args")`` of every call so far."""
        lines = (self.dir / "calls").read_text().splitlines()
        return [(int(pid), args) for pid, _, args in (line.partition(" ") for line in lines)]

    def pids(self, subcommand: str) -> list[int]:
        return [pid for pid, args in self.calls() if args.split()[0] == subcommand]

    def runner(self, **kwargs: Any) -> DockerRunner:
        kwargs.setdefault("command_timeout", TIMEOUT)
        return DockerRunner(engine=str(self.engine), **kwargs)


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDocker]:
    directory = tmp_path / "fake-docker"
    directory.mkdir()
    fake = FakeDocker(directory, monkeypatch)
    yield fake
    left = [(pid, args) for pid, args in fake.calls() if alive(pid)]
    assert not left, f"fake docker processes left running: {left}"


@asynccontextmanager
async def returns_within(seconds: float) -> AsyncIterator[None]:
    """The block must end within ``seconds`` (a hang fails the test, not the suite)."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(seconds + SLACK):
            yield
    except TimeoutError:
        pytest.fail(f"still running {seconds + SLACK:g} s later; the bound was {seconds:g} s")
    elapsed = time.monotonic() - started
    assert elapsed < seconds + SLACK, f"took {elapsed:.1f} s; the bound was {seconds:g} s"


def container_job(tmp_path: Path, index: int = 0) -> Job:
    objective = make_container_objective("sim:latest", "run-sim", ContainerOptions())
    workdir = tmp_path / f"exp-trial-{index}"
    return Job(index, {"x": 1.0}, objective, f"exp-trial-{index}", workdir=workdir)


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.02)


# -- DockerRunner against an engine that hangs -----------------------------------------
async def test_an_engine_that_does_not_answer_docker_version_fails_start_in_time(
    fake_docker: FakeDocker,
) -> None:
    fake_docker.hang("version")
    runner = fake_docker.runner()
    async with returns_within(TIMEOUT + REAP_SECONDS):
        with pytest.raises(RunnerError) as raised:
            await runner.start()
    assert "did not answer within 0.5 s" in str(raised.value)
    assert str(raised.value).startswith("the Docker engine at ")
    assert "version --format" in str(raised.value)  # the command that hung
    [hung] = fake_docker.pids("version")
    assert not alive(hung)


async def test_an_image_check_on_a_hung_engine_fails_in_time_and_a_trial_may_retry(
    fake_docker: FakeDocker, tmp_path: Path
) -> None:
    fake_docker.hang("image")
    runner = fake_docker.runner()
    job = container_job(tmp_path)
    async with returns_within(TIMEOUT + REAP_SECONDS):
        with pytest.raises(RunnerError, match=r"did not answer within 0\.5 s.*image inspect"):
            await runner.check_objective(job.objective)
    # In a trial of a batch, the same hang fails that trial as retryable: unlike a
    # missing image, an engine that was slow once may answer next time.
    async with returns_within(TIMEOUT + REAP_SECONDS):
        with pytest.raises(InfrastructureError) as raised:
            await runner.run(job)
    assert raised.value.retryable
    assert not any(alive(pid) for pid in fake_docker.pids("image"))


@pytest.mark.parametrize("hung", ["stop", "rm"])
async def test_cancelling_a_trial_on_a_hung_engine_is_bounded_and_says_it_may_still_run(
    fake_docker: FakeDocker, tmp_path: Path, caplog: pytest.LogCaptureFixture, hung: str
) -> None:
    fake_docker.hang(hung)
    runner = fake_docker.runner(stop_grace_seconds=0.2)
    trial = asyncio.ensure_future(runner.run(container_job(tmp_path)))
    await until(lambda: bool(fake_docker.pids("run")))
    with caplog.at_level(logging.WARNING, logger="ax_scheduler"):
        async with returns_within(0.2 + TIMEOUT + REAP_SECONDS):
            trial.cancel()
            with pytest.raises(asyncio.CancelledError):
                await trial
    [warning] = [r for r in caplog.records if "may still run" in r.getMessage()]
    assert warning.name == "ax_scheduler"
    assert "within 0.7 s (stop_grace_seconds 0.2 + command_timeout 0.5)" in warning.getMessage()
    # The hung engine command and the trial's `docker run` client are both gone
    # (the fixture checks every call's process).
    assert fake_docker.pids(hung)
    assert fake_docker.pids("run")
    await runner.aclose()


async def test_a_stop_the_engine_refuses_says_the_container_may_still_run(
    fake_docker: FakeDocker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake_docker.set("FAKE_DOCKER_FAIL", "stop rm")
    runner = fake_docker.runner(stop_grace_seconds=0.2)
    trial = asyncio.ensure_future(runner.run(container_job(tmp_path)))
    await until(lambda: bool(fake_docker.pids("run")))
    with caplog.at_level(logging.WARNING, logger="ax_scheduler"):
        async with returns_within(REAP_SECONDS):  # the client is killed, not waited for
            trial.cancel()
            with pytest.raises(asyncio.CancelledError):
                await trial
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith("container axs-exp-trial-0-")
    assert warning.endswith(
        " may still run: `docker rm --force` failed: Cannot connect to the Docker daemon"
    )
    await runner.aclose()


async def test_a_trial_cancelled_on_a_healthy_engine_stops_without_warnings(
    fake_docker: FakeDocker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runner = fake_docker.runner(stop_grace_seconds=0.2)
    trial = asyncio.ensure_future(runner.run(container_job(tmp_path)))
    await until(lambda: bool(fake_docker.pids("run")))
    with caplog.at_level(logging.WARNING, logger="ax_scheduler"):
        async with returns_within(TIMEOUT):
            trial.cancel()
            with pytest.raises(asyncio.CancelledError):
                await trial
    assert [r.getMessage() for r in caplog.records] == []
    assert [args.split()[0] for _, args in fake_docker.calls()][-2:] == ["stop", "rm"]
    await runner.aclose()


async def test_removing_an_ended_container_on_a_hung_engine_does_not_hold_up_aclose(
    fake_docker: FakeDocker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake_docker.hang("rm")
    fake_docker.set("FAKE_DOCKER_RESULT", '{"objective": 3.5}')
    runner = fake_docker.runner()
    with caplog.at_level(logging.WARNING, logger="ax_scheduler"):
        async with returns_within(TIMEOUT + REAP_SECONDS):
            assert await runner.run(container_job(tmp_path)) == {"objective": 3.5}
            await runner.aclose()  # waits for the removal, which gives up
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith("ended container axs-exp-trial-0-")
    assert "was not removed: `" in warning
    assert "did not finish within 0.5 s" in warning


async def test_a_reattached_container_is_waited_for_longer_than_the_command_timeout(
    fake_docker: FakeDocker, tmp_path: Path
) -> None:
    # `docker wait` lasts as long as the trial: 1.5 s here, three command timeouts.
    fake_docker.set("FAKE_DOCKER_WAIT", "1.5")
    job = container_job(tmp_path)
    job.info.update(container="axs-exp-trial-0-feed", job_dir=str(job.workdir))
    assert job.workdir is not None
    job.workdir.mkdir()
    (job.workdir / "result.json").write_text('{"objective": 2.0}')
    runner = fake_docker.runner()
    work = await runner.reattach(job)
    assert work is not None
    assert await work == {"objective": 2.0}
    assert (job.workdir / "stdout.log").read_text() == "the container's output\n"
    await runner.aclose()


async def test_cancelling_a_reattached_wait_on_a_hung_engine_is_bounded(
    fake_docker: FakeDocker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake_docker.hang("wait", "stop")
    job = container_job(tmp_path)
    job.info.update(container="axs-exp-trial-0-feed", job_dir=str(job.workdir))
    runner = fake_docker.runner(stop_grace_seconds=0)
    work = await runner.reattach(job)
    assert work is not None
    waiting = asyncio.ensure_future(work)
    await until(lambda: bool(fake_docker.pids("wait")))
    with caplog.at_level(logging.WARNING, logger="ax_scheduler"):
        async with returns_within(TIMEOUT + 2 * REAP_SECONDS):
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
    assert any("axs-exp-trial-0-feed may still run" in r.getMessage() for r in caplog.records)
    await runner.aclose()


async def test_logs_of_a_hung_engine_are_given_up_and_the_result_is_still_read(
    fake_docker: FakeDocker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake_docker.hang("logs")
    job = container_job(tmp_path)
    job.info.update(container="axs-exp-trial-0-feed", job_dir=str(job.workdir))
    assert job.workdir is not None
    job.workdir.mkdir()
    (job.workdir / "result.json").write_text('{"objective": 2.0}')
    runner = fake_docker.runner()
    with caplog.at_level(logging.WARNING, logger="ax_scheduler"):
        async with returns_within(TIMEOUT + REAP_SECONDS):
            work = await runner.reattach(job)
            assert work is not None
            assert await work == {"objective": 2.0}
    assert any("saved logs may be incomplete" in r.getMessage() for r in caplog.records)
    await runner.aclose()


async def test_a_hung_container_inspect_on_reattach_fails_the_trial_without_a_second_run(
    fake_docker: FakeDocker, tmp_path: Path
) -> None:
    fake_docker.hang("container")
    job = container_job(tmp_path)
    job.info.update(container="axs-exp-trial-0-feed", job_dir=str(job.workdir))
    runner = fake_docker.runner()
    work = await runner.reattach(job)
    assert work is not None
    async with returns_within(TIMEOUT + REAP_SECONDS):
        with pytest.raises(InfrastructureError, match="cannot tell whether container") as raised:
            await work
    assert not raised.value.retryable  # the container may run: no second one beside it
    assert fake_docker.pids("run") == []


def test_docker_runner_refuses_a_command_timeout_that_is_not_a_positive_number() -> None:
    for bad in (0, -1.0, float("inf"), float("nan"), True, "30"):
        with pytest.raises(ValueError, match="command_timeout must be a positive number"):
            DockerRunner(command_timeout=bad)  # type: ignore[arg-type]
    assert DockerRunner().command_timeout == 30.0


# -- LocalTransport -------------------------------------------------------------------
def children() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


async def test_a_local_command_that_hangs_is_killed_reaped_and_named() -> None:
    transport = LocalTransport(command_timeout=TIMEOUT)
    before = children()
    seen: set[int] = set()

    async def watch() -> None:
        while True:
            seen.update(children() - before)
            await asyncio.sleep(0.02)

    watcher = asyncio.ensure_future(watch())
    try:
        async with returns_within(TIMEOUT + REAP_SECONDS):
            with pytest.raises(RunnerError) as raised:
                await transport.run(["sleep", "60"])
    finally:
        watcher.cancel()
    assert isinstance(raised.value, CommandTimeout)
    assert not isinstance(raised.value, _ConnectionDropped)  # may be repeated (sacct)
    assert str(raised.value) == (
        "`sleep 60` did not finish within 0.5 s on this machine, so it was killed"
    )
    assert seen, "the command's process was never seen"
    assert not any(alive(pid) for pid in seen)
    assert children() - before == set()  # reaped: not even a zombie is left


async def test_a_timeout_kills_what_the_command_started_too(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild"
    script = f"sleep 60 & echo $! > {shlex.quote(str(pid_file))}; wait"
    transport = LocalTransport(command_timeout=TIMEOUT)
    async with returns_within(TIMEOUT + REAP_SECONDS):
        with pytest.raises(CommandTimeout, match=r"did not finish within 0\.5 s"):
            await transport.run(["sh", "-c", script])
    grandchild = int(pid_file.read_text())
    await until(lambda: not alive(grandchild), seconds=REAP_SECONDS)


async def test_a_command_that_must_not_repeat_times_out_like_a_dropped_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = LocalTransport(command_timeout=TIMEOUT)
    with caplog.at_level(logging.WARNING, logger="ax_scheduler"):
        async with returns_within(TIMEOUT + REAP_SECONDS):
            with pytest.raises(_ConnectionDropped) as raised:
                await transport.run(["sleep", "60"], idempotent=False)
    assert isinstance(raised.value, _InterruptedCommand)
    assert "`sleep 60` did not finish within 0.5 s" in str(raised.value)
    [warning] = caplog.records
    assert warning.name == "ax_scheduler"
    assert warning.getMessage().endswith("so it was killed; it may have taken effect")


async def test_cancelling_a_local_command_kills_it() -> None:
    transport = LocalTransport()  # the default timeout is far away: only cancel ends it
    before = children()
    running = asyncio.ensure_future(transport.run(["sleep", "60"]))
    await until(lambda: bool(children() - before))
    [pid] = children() - before
    async with returns_within(REAP_SECONDS):
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    assert not alive(pid)


async def test_a_quick_local_command_is_unaffected() -> None:
    result = await LocalTransport(command_timeout=5).run(["sh", "-c", "echo out; echo err >&2"])
    assert (result.returncode, result.stdout, result.stderr) == (0, "out\n", "err\n")
    missing = await LocalTransport().run(["no-such-program-here"])
    assert missing.returncode == 127


def test_local_transport_refuses_a_command_timeout_that_is_not_a_positive_number() -> None:
    for bad in (0, -5, float("inf"), True, None, "60"):
        with pytest.raises(ConfigError, match="command_timeout must be a positive number"):
            LocalTransport(command_timeout=bad)  # type: ignore[arg-type]
    assert LocalTransport().command_timeout == 120.0


# -- SlurmRunner on this machine, with Slurm commands that hang -------------------------
#: sbatch, sacct, squeue, scancel and scontrol in one script (it looks at its name,
#: and no real Slurm command on this machine is ever reached). State
#: is in $FAKE_SLURM_DIR: ``submitted`` has "JOB_ID NAME" lines; a file named
#: ``hang-<command>`` makes that command's next call hang (sbatch: after it
#: accepted the job, so the submission went through but its answer never came),
#: ``hang-before-sbatch`` the next sbatch before it accepts the job.
FAKE_SLURM = """\
#!/bin/sh
d=$FAKE_SLURM_DIR
command=$(basename "$0")
echo "$command $*" >> "$d/calls"
hang_if() { if [ -f "$d/$1" ]; then rm "$d/$1"; exec sleep 60; fi; }
case $command in
  scontrol) echo "MaxArraySize = 1001" ;;
  sbatch)
    case " $* " in *" --test-only "*) echo "sbatch: Job 1 to start" >&2; exit 0 ;; esac
    id=$((100 + $(wc -l < "$d/submitted")))
    for arg; do
      case $arg in --job-name=*) name=${arg#--job-name=} ;; esac
      script=$arg
    done
    hang_if hang-before-sbatch
    echo "$id $name" >> "$d/submitted"
    echo '{"objective": 1.0}' > "$(dirname "$script")/0/result.json"
    hang_if hang-sbatch
    echo "$id" ;;
  squeue)
    for arg; do case $arg in --name=*) want=${arg#--name=} ;; esac; done
    while read -r id name; do [ "$name" = "$want" ] && echo "$id"; done < "$d/submitted" ;;
  sacct)
    hang_if hang-sacct
    while read -r id name; do echo "${id}_0|COMPLETED|0:0"; done < "$d/submitted" ;;
  scancel) ;;
esac
exit 0
"""


def objective(parameters: dict[str, Any]) -> dict[str, float]:
    return {"objective": parameters["x"]}


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "fake-slurm"
    bin_dir = state / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "slurm").write_text(FAKE_SLURM)
    (bin_dir / "slurm").chmod(0o755)
    for command in ("sbatch", "sacct", "squeue", "scancel", "scontrol"):
        (bin_dir / command).symlink_to("slurm")
    (state / "submitted").touch()
    (state / "calls").touch()
    monkeypatch.setenv("FAKE_SLURM_DIR", str(state))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return state


class Ticks(Clock):
    """Polls back to back: the test waits for no back-off."""

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0.01)


def slurm_runner(tmp_path: Path) -> SlurmRunner:
    return SlurmRunner(
        config={"job_dir": str(tmp_path / "jobs"), "submit_window": 0},
        transport=LocalTransport(command_timeout=TIMEOUT),
        clock=Ticks(),
    )


def calls(state: Path, command: str) -> list[str]:
    return [line for line in (state / "calls").read_text().splitlines() if line.startswith(command)]


async def test_a_hung_sacct_poll_is_killed_and_retried_on_the_next_tick(
    fake_slurm: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (fake_slurm / "hang-sacct").touch()
    runner = slurm_runner(tmp_path)
    job = Job(0, {"x": 1.0}, FunctionObjective(objective), "exp-trial-0")
    with caplog.at_level(logging.WARNING, logger="ax_scheduler"):
        async with returns_within(TIMEOUT + REAP_SECONDS):
            assert await runner.run(job) == {"objective": 1.0}
    await runner.aclose()
    assert len(calls(fake_slurm, "sacct")) == 2
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith("Slurm status poll failed (`sacct -n -P -X -j 100 ")
    assert "did not finish within 0.5 s on this machine" in warning


@pytest.mark.parametrize("went_through", [True, False])
async def test_an_sbatch_that_hangs_is_never_submitted_twice_nor_silently_again(
    fake_slurm: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, went_through: bool
) -> None:
    (fake_slurm / ("hang-sbatch" if went_through else "hang-before-sbatch")).touch()
    runner = slurm_runner(tmp_path)
    job = Job(0, {"x": 1.0}, FunctionObjective(objective), "exp-trial-0")
    with caplog.at_level(logging.WARNING, logger="ax_scheduler"):
        async with returns_within(TIMEOUT + REAP_SECONDS):
            assert await runner.run(job) == {"objective": 1.0}
    await runner.aclose()
    assert len((fake_slurm / "submitted").read_text().splitlines()) == 1  # one job, not two
    assert len(calls(fake_slurm, "squeue")) == 1  # looked for by its name after the timeout
    submissions = [c for c in calls(fake_slurm, "sbatch") if "--test-only" not in c]
    assert len(submissions) == (1 if went_through else 2)
    assert job.info["slurm_job_id"] == "100_0"
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith("`sbatch --parsable --job-name=axs-")
    assert warning.endswith(
        "did not finish within 0.5 s on this machine, so it was killed; it may have taken effect"
    )


# -- the real engine ----------------------------------------------------------------------
#: In the names of this run's containers: other runs, of these tests too, may use
#: the same engine at the same time.
RUN = f"bounded-{uuid.uuid4().hex[:6]}"


def containers_of_these_tests() -> list[str]:
    result = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"name=axs-{RUN}-", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()


@pytest.fixture
def real_engine() -> Iterator[None]:
    from test_docker import require_docker

    require_docker()
    yield
    assert containers_of_these_tests() == [], "containers left behind"


@pytest.mark.docker
async def test_a_real_container_cancelled_stops_within_its_bound_without_warnings(
    real_engine: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    objective = make_container_objective("localtest:latest", "sleep 600", ContainerOptions())
    job = Job(0, {"x": 1.0}, objective, f"{RUN}-trial-0", workdir=tmp_path / "trial-0")
    runner = DockerRunner(stop_grace_seconds=1, command_timeout=15)
    await runner.start()
    trial = asyncio.ensure_future(runner.run(job))
    await until(lambda: "container" in job.info, seconds=30)
    await asyncio.sleep(1)  # the container is up
    with caplog.at_level(logging.WARNING, logger="ax_scheduler"):
        async with returns_within(1 + 15):
            trial.cancel()
            with pytest.raises(asyncio.CancelledError):
                await trial
    assert [r.getMessage() for r in caplog.records] == []
    await runner.aclose()


@pytest.mark.docker
async def test_a_real_reattached_container_is_waited_for_beyond_the_command_timeout(
    real_engine: None, tmp_path: Path
) -> None:
    workdir = tmp_path / "trial-0"
    workdir.mkdir()
    workdir.chmod(0o777)
    name = f"axs-{RUN}-reattach"
    # A container "a previous driver started": it outlasts the 1 s command timeout.
    script = "sleep 3; echo '{\"objective\": 4.0}' > /job/result.json; echo done"
    user = f"{os.getuid()}:{os.getgid()}"
    started = await asyncio.create_subprocess_exec(
        *["docker", "run", "--detach", "--name", name, "--user", user],
        *["--volume", f"{workdir}:/job", "localtest:latest", "sh", "-c", script],
        stdout=asyncio.subprocess.DEVNULL,
    )
    assert await started.wait() == 0
    objective = make_container_objective("localtest:latest", "true", ContainerOptions())
    job = Job(0, {"x": 1.0}, objective, f"{RUN}-reattach-0", workdir=workdir)
    job.info.update(container=name, job_dir=str(workdir))
    runner = DockerRunner(command_timeout=1)
    work = await runner.reattach(job)
    assert work is not None
    assert await work == {"objective": 4.0}
    assert json.loads((workdir / "result.json").read_text()) == {"objective": 4.0}
    assert (workdir / "stdout.log").read_text() == "done\n"
    await runner.aclose()  # removes the container
