"""A local-pool driver SIGKILLed mid-run, then resumed: what becomes of each trial.

One real driver process runs three experiments at once on ``JobLibRunner``:

* ``scripts``: three script trials on two slots. Trial 0 and 1 run (each script
  waits for its "release" file), trial 2 waits for a slot and never starts.
* ``hung``: one script trial that never ends by itself.
* ``functions``: three function trials on two slots. Trial 0 ends while the
  driver is frozen (SIGSTOP), so its ``result.json`` is on disk but the
  checkpoint still shows it RUNNING; trial 1 is mid-run; trial 2 never starts.

The driver is then SIGKILLed and each experiment resumed here. Scripts outlive the
driver and are re-attached or collected from their folders; pool workers die with
it, so a function trial is completed from its files, FAILED ("driver restarted")
if it was cut short, or run if it never started. Nothing runs twice, nothing is
left running. The tests at the end call ``JobLibRunner.reattach`` on hand-made
trial folders for the guards: a reused pid, an earlier run's files, a script's
own timeout; and the wait where there are no pidfds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import psutil
import pytest

from ax_scheduler import AxScheduler, JobLibRunner, ObjectiveError, TrialTimeoutError
from ax_scheduler._core import DRIVER_RESTARTED
from ax_scheduler._jobs import FunctionObjective, Job, ScriptObjective
from ax_scheduler._pidfile import PID_FILE, ScriptProcess, start_token, write_pid_file
from ax_scheduler._worker import call_objective
from cluster import TESTS
from conftest import alive, legacy_client, wait_until
from test_resume import assert_nothing_running, calls, checkpoint_statuses

#: Each trial's script: counts its start, records its pid and its child's, waits
#: for its release file, then writes ``100 + x``.
SCRIPT = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    control, trial = os.environ["CONTROL"], os.environ["JOB_TRIAL_INDEX"]
    with open(os.path.join(control, "starts", trial), "a") as file:
        file.write("start\\n")
    # A child in the script's process group: stopping the script must stop it too.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    temp = os.path.join(control, "pids", f".{trial}")
    with open(temp, "w") as file:
        file.write(f"{os.getpid()} {child.pid}")
    os.replace(temp, os.path.join(control, "pids", trial))
    while not os.path.exists(os.path.join(control, "release", trial)):
        time.sleep(0.02)
    child.kill()
    child.wait()
    params = json.load(open(os.environ["JOB_PARAMS_FILE"]))
    with open(os.environ["JOB_OUTPUT_FILE"], "w") as file:
        json.dump({"objective": 100 + params["x"]}, file)
    """
)

# The function objective below travels to pool workers by value: a worker that
# imported this module (and with it Ax) by reference would take seconds to start.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

#: The function trials' x: ends while the driver is frozen, is cut short, never starts.
ENDS_UNRECORDED, CUT_SHORT, NEVER_STARTED = 0.1, 0.2, 0.3


@dataclass(frozen=True)
class Setup:
    """One of the killed driver's experiments: its folder, pool and trials."""

    name: str
    n_jobs: int
    points: tuple[float, ...]  # each trial's x (y is 0), in trial order
    script: bool = True

    def root(self, base: Path) -> Path:
        return base / self.name

    def checkpoint(self, base: Path) -> Path:
        return self.root(base) / "run.json"

    def control(self, base: Path) -> Path:
        return self.root(base) / "control"

    def folder(self, base: Path, trial: int) -> Path:
        return self.root(base) / "out" / f"test_experiment-trial-{trial}"

    def config(self, base: Path) -> dict[str, Any]:
        return {
            "checkpoint_path": str(self.checkpoint(base)),
            "job_output_dir": str(self.root(base) / "out"),
            "progress": False,
        }

    def set_objective(self, scheduler: AxScheduler, base: Path) -> None:
        control = str(self.control(base))
        if self.script:
            options = {"interpreter": sys.executable, "env": {"CONTROL": control}}
            scheduler.set_script_objective(base / "sim.py", options)
        else:
            scheduler.set_objective_function(functools.partial(function_trial, control))

    def prepare(self, base: Path) -> None:
        for sub in ("starts", "pids", "release", "calls"):
            (self.control(base) / sub).mkdir(parents=True)

    def release(self, base: Path, trial: int) -> None:
        (self.control(base) / "release" / str(trial)).touch()

    def pids(self, base: Path, trial: int) -> tuple[int, int]:
        """The pids of trial ``trial``'s script and of its child."""
        script, child = (self.control(base) / "pids" / str(trial)).read_text().split()
        return int(script), int(child)


SCRIPTS = Setup("scripts", n_jobs=2, points=(0.1, 0.2, 0.3))
HUNG = Setup("hung", n_jobs=1, points=(0.5,))
FUNCTIONS = Setup(
    "functions", n_jobs=2, points=(ENDS_UNRECORDED, CUT_SHORT, NEVER_STARTED), script=False
)
SETUPS = (SCRIPTS, HUNG, FUNCTIONS)


def function_trial(control: str, p: dict[str, Any]) -> dict[str, float]:
    """The function trials' objective; what it does on its first call depends on x."""
    x = p["x"]
    counted = Path(control, "calls", f"{x:.1f}")
    with counted.open("a") as file:
        file.write("call\n")
    first = len(counted.read_text().split()) == 1
    if first and x == ENDS_UNRECORDED:
        while not Path(control, "stop").exists():
            time.sleep(0.02)
        # Freeze the driver: the worker still writes result.json, but the
        # driver can no longer record the result (nor checkpoint it).
        os.kill(int(Path(control, "driver").read_text()), signal.SIGSTOP)
    elif first and x == CUT_SHORT:
        time.sleep(600)  # the driver dies meanwhile, and this worker with it
    return {"objective": 200 + x}


def drive(base: Path) -> None:
    """The driver process: the three experiments' batches at once, until it is killed."""

    async def run(setup: Setup) -> None:
        scheduler = AxScheduler(legacy_client(), JobLibRunner(setup.n_jobs), setup.config(base))
        setup.set_objective(scheduler, base)
        async with scheduler.batch_trial_context_async() as batch:
            for x in setup.points:
                batch.add_trial({"x": x, "y": 0.0})

    async def main() -> None:
        await asyncio.gather(*(run(setup) for setup in SETUPS))

    (FUNCTIONS.control(base) / "driver").write_text(str(os.getpid()))
    asyncio.run(main())


def running_in_checkpoint(setup: Setup, base: Path) -> bool:
    seen = checkpoint_statuses(setup.checkpoint(base))
    return len(seen) == len(setup.points) and all(s == "RUNNING" for s, _ in seen.values())


def started(setup: Setup, base: Path, trials: list[int]) -> bool:
    return all((setup.control(base) / "pids" / str(trial)).exists() for trial in trials)


def pid_files(setup: Setup, base: Path, trials: list[int]) -> bool:
    return all((setup.folder(base, trial) / PID_FILE).exists() for trial in trials)


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The three experiments' folders and checkpoints, once their driver was SIGKILLed."""
    base = tmp_path_factory.mktemp("killed")
    (base / "sim.py").write_text(SCRIPT)
    for setup in SETUPS:
        setup.prepare(base)
    code = f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_local_resume as t; t.drive(t.Path({str(base)!r}))"
    driver = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    functions = FUNCTIONS.control(base)

    def ready() -> bool:
        assert driver.poll() is None, driver.communicate()
        return (
            started(SCRIPTS, base, [0, 1])
            and started(HUNG, base, [0])
            and all(
                (functions / "calls" / f"{x:.1f}").exists() for x in (ENDS_UNRECORDED, CUT_SHORT)
            )
            and all(running_in_checkpoint(setup, base) for setup in SETUPS)
        )

    def frozen_with_result() -> bool:
        return (FUNCTIONS.folder(base, 0) / "result.json").exists() and (
            psutil.Process(driver.pid).status() == psutil.STATUS_STOPPED
        )

    try:
        assert wait_until(ready, 120)
        # The driver writes a script's pid file just after starting it: wait for
        # them (a driver without pid files gets the same kill, a moment later).
        wait_until(lambda: pid_files(SCRIPTS, base, [0, 1]) and pid_files(HUNG, base, [0]), 3)
        (functions / "stop").touch()
        assert wait_until(frozen_with_result, 30)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        driver.communicate(timeout=30)
    yield base
    for setup in (SCRIPTS, HUNG):  # whatever a failed test left running
        for pids in (setup.control(base) / "pids").glob("[0-9]*"):
            for pid in map(int, pids.read_text().split()):
                with contextlib.suppress(psutil.Error):
                    process = psutil.Process(pid)
                    if any("sim.py" in arg or "sleep(600)" in arg for arg in process.cmdline()):
                        process.kill()  # still ours, not a later process with its pid


def outcomes(scheduler: AxScheduler) -> dict[int, tuple[str, str | None]]:
    """Each trial's status and, if it did not complete, its reason."""
    trials = scheduler.experiment.trials
    return {
        i: (t.status.name, None if t.status.is_completed else t.status_reason)
        for i, t in trials.items()
    }


def handle(scheduler: AxScheduler, trial: int) -> dict[str, Any]:
    return dict(scheduler.experiment.trials[trial].run_metadata["ax_scheduler"])


# -- after the kill ------------------------------------------------------------------
async def test_scripts_outlive_the_driver_and_are_re_attached_collected_or_started(
    killed: Path,
) -> None:
    running = [SCRIPTS.pids(killed, trial) for trial in (0, 1)]
    assert all(alive(pid) for pids in running for pid in pids), "scripts died with the driver"
    # Trial 0 ends while no driver runs; trial 1 still runs when the new driver
    # comes; trial 2 never started (it passes its gate when it runs).
    SCRIPTS.release(killed, 0)
    assert wait_until(lambda: not alive(running[0][0]), 10)
    SCRIPTS.release(killed, 2)

    scheduler = AxScheduler.resume(SCRIPTS.checkpoint(killed), JobLibRunner(n_jobs=2))
    SCRIPTS.set_objective(scheduler, killed)
    asyncio.get_running_loop().call_later(1.0, SCRIPTS.release, killed, 1)
    try:
        with no_blocking_calls():
            await scheduler.wait_for_completed_trials_async(timeout=60)
        final = outcomes(scheduler)
        trials = scheduler.experiment.trials
        means = {i: t.objective_mean for i, t in trials.items() if t.status.is_completed}
        handles = {trial: handle(scheduler, trial) for trial in (0, 1, 2)}
    finally:
        await scheduler.aclose()

    assert final == {0: ("COMPLETED", None), 1: ("COMPLETED", None), 2: ("COMPLETED", None)}
    assert means == {0: pytest.approx(100.1), 1: pytest.approx(100.2), 2: pytest.approx(100.3)}
    # Each script started once: the two that ran were followed, not run again.
    assert calls(SCRIPTS.control(killed) / "starts") == Counter({"0": 1, "1": 1, "2": 1})
    for trial in (0, 1, 2):
        assert handles[trial]["pid"] == SCRIPTS.pids(killed, trial)[0]
        assert handles[trial]["job_dir"] == str(SCRIPTS.folder(killed, trial))
    every = [pid for trial in (0, 1, 2) for pid in SCRIPTS.pids(killed, trial)]
    assert wait_until(lambda: not any(alive(pid) for pid in every), 5)
    assert_nothing_running(scheduler)


def test_a_re_attached_script_whose_trial_times_out_is_stopped_with_its_group(
    killed: Path,
) -> None:
    script, child = HUNG.pids(killed, 0)
    assert alive(script)
    assert alive(child)
    config = {"trial_timeout": 1.0}
    with AxScheduler.resume(HUNG.checkpoint(killed), JobLibRunner(n_jobs=1), config) as scheduler:
        HUNG.set_objective(scheduler, killed)
        began = time.monotonic()
        scheduler.wait_for_completed_trials(timeout=30)
        took = time.monotonic() - began
        final = outcomes(scheduler)

    assert final == {0: ("FAILED", "timeout: trial 0 ran longer than trial_timeout=1 s")}
    assert not alive(script)
    assert wait_until(lambda: not alive(child), 2)  # SIGTERM to the group did it
    assert took < 5, took
    assert calls(HUNG.control(killed) / "starts") == Counter({"0": 1})


def test_function_trials_are_completed_from_their_files_failed_or_started(killed: Path) -> None:
    control = FUNCTIONS.control(killed)
    # The premise: the result is on disk, the checkpoint never learned of it.
    assert (FUNCTIONS.folder(killed, 0) / "result.json").exists()
    assert checkpoint_statuses(FUNCTIONS.checkpoint(killed))[0][0] == "RUNNING"
    config = {"requeue_lost_trials": True}
    with AxScheduler.resume(FUNCTIONS.checkpoint(killed), JobLibRunner(2), config) as scheduler:
        FUNCTIONS.set_objective(scheduler, killed)
        scheduler.wait_for_completed_trials()
        final = outcomes(scheduler)
        trials = scheduler.experiment.trials
        means = {i: t.objective_mean for i, t in trials.items() if t.status.is_completed}
        params = {i: t.arm.parameters["x"] for i, t in trials.items()}
        ended_handle = handle(scheduler, 0)

    # Trial 0 from its result.json; trial 1 was cut short (its worker died with
    # the driver) and requeue_lost_trials ran its parameters again as trial 3;
    # trial 2 never started, and ran now.
    assert {i: status for i, (status, _) in final.items()} == {
        0: "COMPLETED",
        1: "FAILED",
        2: "COMPLETED",
        3: "COMPLETED",
    }, final
    reason = final[1][1]
    assert reason is not None
    assert reason.startswith(f"{DRIVER_RESTARTED}: "), reason
    assert params[3] == CUT_SHORT
    assert means == {0: pytest.approx(200.1), 2: pytest.approx(200.3), 3: pytest.approx(200.2)}
    assert calls(control / "calls") == Counter({"0.1": 1, "0.2": 2, "0.3": 1})
    assert ended_handle["job_dir"] == str(FUNCTIONS.folder(killed, 0))
    assert_nothing_running(scheduler)


# -- the guards, on hand-made trial folders --------------------------------------------
@contextlib.contextmanager
def no_blocking_calls() -> Iterator[None]:
    """Fail on any blocking call ax_scheduler makes inside the event loop (blockbuster)."""
    from blockbuster import BlockBuster

    buster = BlockBuster(scanned_modules=["ax_scheduler"])
    buster.activate()
    try:
        yield
    finally:
        buster.deactivate()


PARAMS = {"x": 0.4, "y": 0.5}


def script_job(tmp_path: Path, timeout: float | None = None) -> Job:
    """A script trial dispatched just now; its script writes ``{"objective": 1}``."""
    script = tmp_path / "quick.py"
    script.write_text(
        "import json, os\njson.dump({'objective': 1.0}, open(os.environ['JOB_OUTPUT_FILE'], 'w'))\n"
    )
    objective = ScriptObjective(script, sys.executable, timeout=timeout)
    return trial_job(tmp_path, objective)


def trial_job(tmp_path: Path, objective: Any) -> Job:
    workdir = tmp_path / "out" / "test_experiment-trial-0"
    info = {"dispatched_at": time.time()}
    return Job(0, dict(PARAMS), objective, workdir.name, info=info, workdir=workdir)


def leave_files(
    job: Job, *, pid: int | None = None, token: str | None = None, **files: Any
) -> None:
    """A trial folder as a driver left it: params.json, a pid file, other files."""
    assert job.workdir is not None
    job.workdir.mkdir(parents=True, exist_ok=True)
    (job.workdir / "params.json").write_text(json.dumps(job.parameters))
    if pid is not None:
        write_pid_file(job.workdir, ScriptProcess(pid, token or start_token(pid), time.time()))
    for name, text in files.items():
        (job.workdir / name.replace("_", ".")).write_text(text)


def age(job: Job, seconds: float) -> None:
    """Make every file of the trial's folder ``seconds`` older."""
    assert job.workdir is not None
    for path in job.workdir.iterdir():
        stamp = path.stat().st_mtime - seconds
        os.utime(path, (stamp, stamp))


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process in a session of its own, like a script a dead driver started."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    yield process
    if process.poll() is None:  # not reaped yet: its pid is still its own
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


async def test_a_reused_pid_is_not_taken_for_the_script(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    job = script_job(tmp_path)
    # The pid file's process ended; an unrelated process has its pid now.
    leave_files(job, pid=sleeper.pid, token="1", stderr_log="it failed here\n")

    work = await JobLibRunner().reattach(job)
    assert work is not None
    with no_blocking_calls(), pytest.raises(ObjectiveError) as failure:
        async with asyncio.timeout(5):  # not waited for
            await work

    assert str(failure.value) == (
        "script ended while no driver watched it (exit code unknown) and wrote no result"
        f" file {str(job.workdir / 'result.json')!r}; stderr ends: it failed here"
    )
    assert sleeper.poll() is None  # not ours: left alone
    assert job.info["pid"] == sleeper.pid


async def test_an_earlier_runs_files_in_the_trial_folder_do_not_count(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    # A script trial: an older experiment's pid file names a live process.
    job = script_job(tmp_path)
    leave_files(job, pid=sleeper.pid, result_json='{"objective": 999}')
    age(job, 3600)
    work = await JobLibRunner().reattach(job)
    assert work is not None
    async with asyncio.timeout(10):  # started anew, not waiting for the sleeper
        assert await work == {"objective": 1.0}
    assert sleeper.poll() is None

    # A function trial: an older result.json with the same parameters.
    objective = FunctionObjective(functools.partial(function_trial, str(tmp_path)))
    (tmp_path / "calls").mkdir()
    job = trial_job(tmp_path / "function", objective)
    leave_files(job, result_json='{"objective": 999}')
    age(job, 3600)
    runner = JobLibRunner(n_jobs=1)
    await runner.start()
    try:
        work = await runner.reattach(job)
        assert work is not None
        assert await work == {"objective": pytest.approx(200.4)}
    finally:
        await runner.aclose()
    assert calls(tmp_path / "calls") == Counter({"0.4": 1})


async def test_a_re_attached_script_keeps_its_own_timeout(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    job = script_job(tmp_path, timeout=5)
    assert job.workdir is not None
    leave_files(job)
    # Started 60 s ago by the dead driver, with a limit of 5 s.
    write_pid_file(
        job.workdir, ScriptProcess(sleeper.pid, start_token(sleeper.pid), time.time() - 60)
    )

    work = await JobLibRunner().reattach(job)
    assert work is not None
    with pytest.raises(TrialTimeoutError, match="ran longer than its timeout of 5 s"):
        async with asyncio.timeout(10):
            await work
    assert sleeper.wait(timeout=5) == -signal.SIGTERM


def test_call_objective_removes_an_earlier_runs_outcome(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text('{"objective": 999}')
    (tmp_path / "error.json").write_text('{"error": "old", "traceback": ""}')

    status, _, _ = call_objective(lambda p: 1 / 0, dict(PARAMS), str(tmp_path))

    assert status == "error"
    assert not (tmp_path / "result.json").exists()
    assert "ZeroDivisionError" in json.loads((tmp_path / "error.json").read_text())["error"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "error.json",
        "params.json",
        "stderr.log",
        "stdout.log",
    ]  # no temp file left


async def test_the_threading_backend_cannot_tell_and_fails_its_trials(tmp_path: Path) -> None:
    objective = FunctionObjective(functools.partial(function_trial, str(tmp_path)))
    job = trial_job(tmp_path, objective)
    leave_files(job, result_json='{"objective": 1.0}')  # a loky trial's, say

    assert await JobLibRunner(backend="threading").reattach(job) is None


async def test_without_pidfds_or_proc_the_wait_polls_the_pid(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ax_scheduler import _pidfile

    process = ScriptProcess(sleeper.pid, start_token(sleeper.pid), time.time())
    # As on macOS: no pidfd_open, no /proc (the pid must lead its own session).
    monkeypatch.delattr(os, "pidfd_open")
    monkeypatch.setattr(_pidfile, "_PROC", tmp_path / "no-proc")
    assert _pidfile.is_running(process)

    def end() -> None:
        sleeper.kill()
        sleeper.wait()  # reaped, as init reaps an orphan

    asyncio.get_running_loop().call_later(0.3, end)
    began = time.monotonic()
    async with asyncio.timeout(10):
        await _pidfile.wait_for_exit(process)
    assert 0.3 <= time.monotonic() - began < 0.3 + 2 * _pidfile.POLL_SECONDS
    assert not _pidfile.is_running(process)
