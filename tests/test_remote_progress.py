"""Reports from trials on the real Slurm cluster (over real SSH) and a real SSH host.

A script appends JSON lines to ``$JOB_PROGRESS_FILE`` (tests/scripts/curve_script.py,
whose step 2 is malformed on purpose); a function objective calls
``ax_scheduler.report()`` (tests/curves.py). The runners read every running
trial's ``progress.jsonl`` in ONE command per tick (Slurm: right after sacct; SSH:
the host's own tick), and the percentile strategy stops the bad trials: the
batches run the good trials first, so which trials stop is known in advance. A
trial that keeps going after the stop is cancelled when the grace ends; a
driver killed mid-trial resumes reading the trial's file, and Ax keeps each step
once.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import curves
from ax_scheduler import AxScheduler, SlurmRunner, SSHRunner
from ax_scheduler._config import SSHHost
from ax_scheduler._progressfile import TAIL_SCRIPT
from ax_scheduler._remote import BinaryCompleted, Completed
from ax_scheduler._sshtransport import SSHTransport
from cluster import TESTS, cluster_env, job_config, slurm, ssh_options
from conftest import experiment_of, legacy_client, modern_client, statuses, wait_until
from test_early_stopping import BAD, EARLY_STOPPING, GOOD, run_batch, steps_in_ax

pytestmark = pytest.mark.slurm

SCRIPT = TESTS / "scripts" / "curve_script.py"
#: Seconds per step of the curves: a tick (0.5 s to 1 s here) sees a few steps each.
STEP_SECONDS = "0.2"
SCRIPT_STEPS = 30


@pytest.fixture(autouse=True)
def nothing_left_running(tmp_path: Path) -> Iterator[None]:
    """After each test, no job of its own is queued and no process of its job
    directory runs (a stopped trial's worker and script are gone). Other tests
    may use the cluster meanwhile: jobs are ours by their script's path."""
    yield

    def jobs() -> list[str]:
        lines = slurm("squeue", "-h", "-o", "%i|%o").splitlines()
        return [line for line in lines if str(tmp_path) in line]

    def processes() -> list[int]:
        return [
            process.pid
            for process in psutil.process_iter(["cmdline"])
            if any(str(tmp_path) in part for part in process.info["cmdline"] or [])
        ]

    assert wait_until(lambda: not jobs(), 15), f"jobs left: {jobs()}"
    assert wait_until(lambda: not processes(), 10), f"processes left: {processes()}"


def slurm_runner(tmp_path: Path, *setup: str, **config: Any) -> SlurmRunner:
    lines = [f"export PYTHONPATH={TESTS}", f"export CURVE_STEP_SECONDS={STEP_SECONDS}", *setup]
    return SlurmRunner(
        partition=cluster_env()["LOCALSLURM_PARTITION"],
        time_limit="00:05:00",
        memory="300M",
        config=job_config(tmp_path, setup=lines, max_parallel=2, **config),
        ssh=ssh_options(),
    )


def record_commands(runner: SlurmRunner) -> list[list[str]]:
    """Every command the runner sends from now on, in order."""
    sent: list[list[str]] = []
    transport = runner.transport
    real_run, real_binary = transport.run, transport.run_binary

    async def run(argv: Any, **kwargs: Any) -> Completed:
        sent.append(list(argv))
        return await real_run(argv, **kwargs)

    async def run_binary(argv: Any) -> BinaryCompleted:
        sent.append(list(argv))
        return await real_binary(argv)

    transport.run = run  # type: ignore[method-assign]
    transport.run_binary = run_binary  # type: ignore[method-assign]
    return sent


def is_progress_read(argv: list[str]) -> bool:
    return argv[:3] == ["sh", "-c", TAIL_SCRIPT]


def files_read(argv: list[str]) -> int:
    """How many progress files one read names (after sh -c SCRIPT sh BASE: path, offset pairs)."""
    return (len(argv) - 5) // 2


def script_options(**env: str) -> dict[str, Any]:
    return {
        "interpreter": sys.executable,
        "args": [str(SCRIPT_STEPS)],
        "env": {"CURVE_STEP_SECONDS": STEP_SECONDS, **env},
    }


def assert_bad_trials_stopped_early(client: Any, steps: int) -> dict[int, list[float]]:
    assert statuses(client) == {
        0: "COMPLETED",
        1: "COMPLETED",
        2: "EARLY_STOPPED",
        3: "EARLY_STOPPED",
    }
    reported = steps_in_ax(client)
    for stopped in (2, 3):  # past min_progression, well before the end
        assert 5 <= max(reported[stopped]) < steps - 5, reported[stopped]
    reason = experiment_of(client).trials[2].run_metadata["ax_scheduler"]["early_stop_reason"]
    assert "percentile" in reason
    return reported


def malformed_line_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "progress line" in r.getMessage()]


# -- Slurm ------------------------------------------------------------------------------
def test_a_scripts_progress_lines_on_slurm_stop_its_bad_trials_read_once_per_tick(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = legacy_client()
    runner = slurm_runner(tmp_path)
    sent = record_commands(runner)
    config = {"early_stopping": EARLY_STOPPING}
    with (
        caplog.at_level(logging.WARNING, logger="ax_scheduler"),
        AxScheduler(client, runner, config) as scheduler,
    ):
        scheduler.set_script_objective(SCRIPT, script_options())
        run_batch(scheduler, GOOD + BAD)
    reported = assert_bad_trials_stopped_early(client, SCRIPT_STEPS)
    assert reported[0] == [float(step) for step in range(SCRIPT_STEPS) if step != 2]
    warnings = malformed_line_warnings(caplog)
    assert any(w.startswith("trial 0: progress line 3 of ") and "not JSON" in w for w in warnings)
    # ONE progress read per sacct tick, each naming every trial in flight.
    reads = [argv for argv in sent if is_progress_read(argv)]
    sacct = [argv for argv in sent if argv[0] == "sacct" and "-j" in argv]
    assert len(reads) == len(sacct) == runner.stats["progress"] == runner.stats["sacct"]
    assert max(files_read(argv) for argv in reads) >= 2
    # The stop went to the jobs as a signal (both bad trials, coalesced or not).
    stops = [argv for argv in sent if argv[:2] == ["scancel", "--signal=USR2"]]
    assert 1 <= len(stops) <= 2
    assert sorted(job for argv in stops for job in argv[3:]) == sorted(
        experiment_of(client).trials[i].run_metadata["ax_scheduler"]["slurm_job_id"] for i in (2, 3)
    )


def test_a_function_on_slurm_reports_with_report_and_its_bad_trials_stop(tmp_path: Path) -> None:
    client = modern_client()
    runner = slurm_runner(tmp_path, "export CURVE_STEP_SECONDS=0.3")  # 20 steps: a few a tick
    with AxScheduler(client, runner, {"early_stopping": EARLY_STOPPING}) as scheduler:
        scheduler.set_objective_function(curves.curve)
        run_batch(scheduler, GOOD + BAD)
    reported = assert_bad_trials_stopped_early(client, curves.STEPS)
    assert reported[0] == [float(step) for step in range(curves.STEPS)]
    for stopped in (2, 3):  # report() raised in the job: the worker wrote it down
        error = json.loads(Path(job_dir(client, stopped), "error.json").read_text())
        assert error["error"] == "TrialStoppedEarly: stopped early by the scheduler"


def job_dir(client: Any, index: int) -> str:
    return str(experiment_of(client).trials[index].run_metadata["ax_scheduler"]["job_dir"])


def test_a_slurm_trial_that_reports_on_after_the_stop_is_cancelled_after_the_grace(
    tmp_path: Path,
) -> None:
    log = tmp_path / "log"
    log.mkdir()
    client = modern_client()
    runner = slurm_runner(tmp_path, f"export CURVE_LOG={log}", "export CURVE_STEP_SECONDS=0.1")
    config = {
        "early_stopping": {**EARLY_STOPPING, "min_curves": 1},
        "early_stopping_grace": 1.0,
        "trial_timeout": 60,
    }
    with AxScheduler(client, runner, config) as scheduler:
        scheduler.set_objective_function(curves.curve)
        run_batch(scheduler, GOOD[:1])
        scheduler.set_objective_function(curves.stubborn_curve)
        run_batch(scheduler, BAD[:1])
    assert statuses(client) == {0: "COMPLETED", 1: "EARLY_STOPPED"}
    [told] = log.iterdir()
    # Every report() after the stop raised; it went on until the grace's scancel.
    assert int(told.read_text()) >= 3
    assert runner.stats["stop"] == 1
    assert runner.stats["scancel"] == 1


# -- SSH --------------------------------------------------------------------------------
class RecordingSSH(SSHTransport):
    """The real SSH transport, keeping every command it runs."""

    def __init__(self, options: SSHHost) -> None:
        super().__init__(options)
        self.sent: list[tuple[float, list[str]]] = []

    async def run(self, argv: Any, *, idempotent: bool = True) -> Completed:
        self.sent.append((time.monotonic(), list(argv)))
        return await super().run(argv, idempotent=idempotent)

    async def run_binary(self, argv: Any) -> BinaryCompleted:
        self.sent.append((time.monotonic(), list(argv)))
        return await super().run_binary(argv)


def ssh_runner(tmp_path: Path, transports: list[RecordingSSH], **env: str) -> SSHRunner:
    host = ssh_options(
        python=sys.executable,
        job_dir=str(tmp_path / "ssh jobs"),
        slots=2,
        env={"PYTHONPATH": str(TESTS), "CURVE_STEP_SECONDS": STEP_SECONDS, **env},
    )

    def connect(options: SSHHost) -> RecordingSSH:
        transports.append(RecordingSSH(options))
        return transports[-1]

    return SSHRunner([host], transports=connect)


def test_a_scripts_progress_lines_on_an_ssh_host_stop_its_bad_trials_one_read_per_tick(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = legacy_client()
    transports: list[RecordingSSH] = []
    runner = ssh_runner(tmp_path, transports)
    started = time.monotonic()
    with (
        caplog.at_level(logging.WARNING, logger="ax_scheduler"),
        AxScheduler(client, runner, {"early_stopping": EARLY_STOPPING}) as scheduler,
    ):
        scheduler.set_script_objective(SCRIPT, script_options())
        run_batch(scheduler, GOOD + BAD)
    elapsed = time.monotonic() - started
    reported = assert_bad_trials_stopped_early(client, SCRIPT_STEPS)
    assert reported[1] == [float(step) for step in range(SCRIPT_STEPS) if step != 2]
    assert any(
        w.startswith("trial 1: progress line 3 of ") for w in malformed_line_warnings(caplog)
    )
    [transport] = transports
    reads = [argv for _, argv in transport.sent if is_progress_read(argv)]
    assert reads
    # One read per 1 s tick (plus one when trials end: 4 ends, some shared), each
    # naming both trials that run: a read per trial per tick would be twice as many.
    assert len(reads) <= elapsed / 1.0 + 4 + 1
    assert max(files_read(argv) for argv in reads) == 2
    assert runner.stats["stop"] == 2  # SIGUSR2 to each bad trial's worker


def test_a_function_on_an_ssh_host_reports_and_one_that_ignores_the_stop_is_killed(
    tmp_path: Path,
) -> None:
    log = tmp_path / "log"
    log.mkdir()
    client = modern_client()
    transports: list[RecordingSSH] = []
    runner = ssh_runner(tmp_path, transports, CURVE_LOG=str(log))
    config = {
        "early_stopping": {**EARLY_STOPPING, "min_curves": 1},
        "early_stopping_grace": 1.0,
        "trial_timeout": 60,
    }
    with AxScheduler(client, runner, config) as scheduler:
        scheduler.set_objective_function(curves.curve)
        run_batch(scheduler, GOOD[:1])
        scheduler.set_objective_function(curves.stubborn_curve)
        run_batch(scheduler, BAD[:1])
    assert statuses(client) == {0: "COMPLETED", 1: "EARLY_STOPPED"}
    assert steps_in_ax(client)[0] == [float(step) for step in range(curves.STEPS)]
    [told] = log.iterdir()
    assert int(told.read_text()) >= 3  # report() raised on and on until the grace ran out
    stop_groups = [argv for _, argv in transports[0].sent if "kill -TERM" in " ".join(argv)]
    assert len(stop_groups) == 1  # the cancel path: TERM, grace, KILL of its group


# -- resume -----------------------------------------------------------------------------
DRIVER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from conftest import legacy_client
    from ax_scheduler import AxScheduler, SlurmRunner

    client = legacy_client()
    runner = SlurmRunner(partition={partition!r}, config={config!r}, ssh={ssh!r})
    scheduler = AxScheduler(client, runner, config={{"checkpoint_path": {checkpoint!r}}})
    scheduler.set_script_objective(Path({script!r}), {options!r})
    scheduler.run_optimization(max_trials=1)
    print("finished before it was killed", flush=True)
    """
)


def checkpointed_last_step(path: Path) -> float | None:
    """The RUNNING trial's last recorded step, as the checkpoint's table has it."""
    try:
        table = json.loads(path.read_text())["table"]
    except (FileNotFoundError, ValueError, KeyError):
        return None
    columns = table["columns"]
    for row in table["rows"]:
        if row[columns.index("status")] == "RUNNING":
            step = row[columns.index("last_step")]
            return None if step is None else float(step)
    return None


@pytest.mark.slow
def test_a_resumed_slurm_driver_reads_a_reattached_trials_reports_on_and_ax_keeps_each_step_once(
    tmp_path: Path,
) -> None:
    steps = 40
    options = {**script_options(CURVE_STEP_SECONDS="0.25"), "args": [str(steps)]}
    config = job_config(tmp_path)
    checkpoint = tmp_path / "run.json"
    script = tmp_path / "driver.py"
    partition = cluster_env()["LOCALSLURM_PARTITION"]
    script.write_text(
        DRIVER.format(
            tests=str(TESTS),
            partition=partition,
            config=config,
            ssh=ssh_options(),
            checkpoint=str(checkpoint),
            script=str(SCRIPT),
            options=options,
        )
    )
    output = tmp_path / "driver.log"
    with output.open("w") as log:
        driver = subprocess.Popen([sys.executable, str(script)], stdout=log, stderr=log)
    try:
        # Killed while reports are coming: some in the checkpoint, more on their way.
        assert wait_until(lambda: (checkpointed_last_step(checkpoint) or 0) >= 5, 60), (
            output.read_text()[-3000:]
        )
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    assert "finished before it was killed" not in output.read_text()
    recorded = checkpointed_last_step(checkpoint)
    assert recorded is not None
    assert recorded < steps - 10

    runner = SlurmRunner(partition=partition, config=config, ssh=ssh_options())
    with AxScheduler.resume(checkpoint, runner) as resumed:
        resumed.set_script_objective(SCRIPT, options)
        resumed.wait_for_completed_trials()
        client = resumed.ax_client
    assert statuses(client) == {0: "COMPLETED"}
    # The re-attached job's file was read on from the start, and what Ax had from
    # the first driver was not recorded twice: every step once, to the end.
    df = experiment_of(client).lookup_data().full_df
    assert sorted(df["step"].dropna().tolist()) == [float(s) for s in range(steps) if s != 2]
    assert runner.stats["sbatch"] == 0  # followed, not submitted again
