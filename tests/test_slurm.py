"""SlurmRunner against a real single-node Slurm cluster, reached over real SSH.

`ci/start-slurm.sh` starts the cluster (munge, slurmctld, slurmd, slurmdbd with
MariaDB so `sacct` works) and an OpenSSH server on 127.0.0.1:2222 as the login
node. Jobs run this venv's Python on the same machine; tests/cluster_objectives.py
is on their PYTHONPATH, as a user's module would be installed on a cluster.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

import cluster_objectives
from ax_scheduler import AxScheduler, RunnerError, SlurmRunner
from cluster import (
    PollCounter,
    cluster_env,
    job_config,
    queue,
    sacct_rows,
    slurm,
    ssh_options,
    sshd_sessions,
)
from conftest import experiment_of, legacy_client, statuses, wait_until
from test_scripts import assert_hostile_values_stayed_data, dispatcher

pytestmark = pytest.mark.slurm

EXAMPLES = Path(__file__).parents[1] / "examples"


def queued_jobs() -> set[str]:
    """The queue's job ids, without array task numbers: a pending ``7_[0]`` is ``7_0``
    once it runs, and still the same job."""
    return {job.split("_")[0] for job in queue()}


@pytest.fixture(autouse=True)
def empty_queue_after() -> Iterator[None]:
    """Every test leaves no job of its own in the queue."""
    before = queued_jobs()
    yield
    assert wait_until(lambda: not (queued_jobs() - before), 10), f"jobs left: {queue()}"


def slurm_runner(
    tmp_path: Path, *, ssh: dict[str, Any] | None = None, **kwargs: Any
) -> SlurmRunner:
    config = job_config(tmp_path, **kwargs.pop("config", {}))
    return SlurmRunner(
        partition=cluster_env()["LOCALSLURM_PARTITION"],
        time_limit=kwargs.pop("time_limit", "00:05:00"),
        memory=kwargs.pop("memory", "300M"),
        cpus_per_task=1,
        config=config,
        ssh=ssh_options() if ssh is None else ssh,
        **kwargs,
    )


def run_metadata(client: Any, index: int) -> dict[str, Any]:
    return dict(experiment_of(client).trials[index].run_metadata["ax_scheduler"])


def test_the_tutorial_example_runs_on_slurm_over_ssh(tmp_path: Path) -> None:
    env = cluster_env()
    example_env = {
        **os.environ,
        "SLURM_LOGIN_HOST": env["LOCALSLURM_SSH_HOST"],
        "SLURM_LOGIN_PORT": env["LOCALSLURM_SSH_PORT"],
        "SLURM_LOGIN_USER": env["LOCALSLURM_SSH_USER"],
        "SLURM_LOGIN_KEY": env["LOCALSLURM_SSH_KEY"],
        "SLURM_KNOWN_HOSTS": env["LOCALSLURM_SSH_KNOWN_HOSTS"],
        "SLURM_PARTITION": env["LOCALSLURM_PARTITION"],
        "SLURM_PYTHON": sys.executable,
        "SLURM_JOB_DIR": str(tmp_path / "jobs"),
    }
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "slurm_batch_submission.py")],
        cwd=tmp_path,
        env=example_env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    objectives = [float(v) for v in _batch_objectives(result.stdout)]
    assert objectives == [6.5, 8.5, 56.5, 58.5]
    saved = json.loads((tmp_path / "slurm_batch_results.json").read_text())
    trials = saved["experiment"]["trials"]
    assert len(trials) == 10
    assert {trial["status"]["name"] for trial in trials.values()} == {"COMPLETED"}


def _batch_objectives(out: str) -> list[str]:
    import re

    return re.findall(r"Trial \d: Params .*, Objective: (\S+)", out)


def test_a_20_trial_batch_is_one_job_array(tmp_path: Path) -> None:
    client = legacy_client()
    runner = slurm_runner(tmp_path)
    with AxScheduler(client, runner) as scheduler:
        scheduler.set_objective_function(cluster_objectives.rosenbrock)
        with scheduler.batch_trial_context() as batch:
            for i in range(20):
                batch.add_trial({"x": i / 10 - 1, "y": 0.5})
    assert set(statuses(client).values()) == {"COMPLETED"}
    assert runner.stats["sbatch"] == 1
    job_ids = {run_metadata(client, i)["slurm_job_id"] for i in range(20)}
    array = {job_id.split("_")[0] for job_id in job_ids}
    assert len(array) == 1
    rows = sacct_rows(array.pop())
    assert sorted(int(row[0].split("_")[1]) for row in rows) == list(range(20))
    assert {row[2] for row in rows} == {"COMPLETED"}
    trial = experiment_of(client).trials[7]
    seventh = {"x": 7 / 10 - 1, "y": 0.5}
    assert trial.objective_mean == pytest.approx(
        cluster_objectives.rosenbrock(seventh)["objective"]
    )
    info = run_metadata(client, 7)
    assert Path(info["stdout"]).exists()
    assert json.loads(Path(info["job_dir"], "params.json").read_text()) == seventh


def mode_client() -> Any:
    from ax.service.ax_client import AxClient, ObjectiveProperties

    client = AxClient(verbose_logging=False)
    client.create_experiment(
        name="failures",
        parameters=[
            {"name": "x", "type": "range", "bounds": [-2.0, 2.0], "value_type": "float"},
            {
                "name": "mode",
                "type": "choice",
                "values": ["ok", "raise", "memory", "exit", "forever"],
                "sort_values": False,
                "value_type": "str",
                "is_ordered": False,
            },
        ],
        objectives={"objective": ObjectiveProperties(minimize=True)},
    )
    return client


class InBackground:
    """A coroutine run in a thread of its own (its own event loop), from now on.

    ``result`` awaits its outcome from another loop; ``stop`` cancels it (an
    AxScheduler's exit then cancels its jobs) and waits for it to end.
    """

    def __init__(self, coroutine: Coroutine[Any, Any, Any], name: str) -> None:
        self.outcome: Future[Any] = Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._started = threading.Event()
        # A daemon: a run stuck for good (its cluster restarted under it) must not keep
        # pytest from exiting once ``stop`` has given up waiting for it.
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._main(coroutine),), name=name, daemon=True
        )
        self._thread.start()
        self._started.wait()

    async def _main(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
        self._started.set()
        try:
            self.outcome.set_result(await coroutine)
        except asyncio.CancelledError:
            self.outcome.cancel()
        except BaseException as exc:  # noqa: BLE001 - handed to whoever awaits the result
            self.outcome.set_exception(exc)

    async def result(self) -> Any:
        return await asyncio.wrap_future(self.outcome)

    def stop(self) -> None:
        if self._loop is not None and self._task is not None and not self.outcome.done():
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(60)


TIMED_OUT_TEST = "test_failing_out_of_memory_and_timed_out_jobs_fail_their_trials_with_reasons"


async def run_into_the_time_limit(tmp_path: Path) -> Any:
    """One trial that sleeps for ever in a job of ``--time=1`` (minutes: Slurm's
    smallest); its client once the trial has ended."""
    timeouts = mode_client()
    timed = slurm_runner(tmp_path, time_limit="1")
    async with AxScheduler(timeouts, timed) as scheduler:
        scheduler.set_objective_function(cluster_objectives.by_mode)
        async with scheduler.batch_trial_context_async() as batch:
            batch.add_trial({"x": 0.5, "mode": "forever"})
    return timeouts


@pytest.fixture(scope="module", autouse=True)
def timed_out_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InBackground | None]:
    """The timed-out trial of TIMED_OUT_TEST, started before this module's first test.

    Slurm ends a job TIMEOUT 60 to 90 s after it started (its controller checks
    time limits every 30 s), whatever the test does: the job sleeps through the
    tests before TIMED_OUT_TEST (one of the cluster's two CPUs is its), not
    through a test of its own. Module-scoped and autouse, so it is submitted
    before any test of the module takes its "jobs queued before me" snapshot.
    """
    if not any(item.name == TIMED_OUT_TEST for item in request.session.items):
        yield None
        return
    job_dir = str(tmp_path_factory.mktemp("timed-out") / "cluster jobs")
    background = InBackground(run_into_the_time_limit(Path(job_dir).parent), "timed-out-run")

    def submitted() -> bool:
        commands = slurm("squeue", "-h", "-o", "%o").splitlines()
        return background.outcome.done() or any(job_dir in line for line in commands)

    try:
        assert wait_until(submitted, 60), "the timed-out trial's job was never queued"
        yield background
    finally:
        background.stop()


async def test_failing_out_of_memory_and_timed_out_jobs_fail_their_trials_with_reasons(
    tmp_path: Path, timed_out_run: InBackground | None
) -> None:
    """Slurm's own limits: --mem (enforced by the cluster) and --time (1 minute):
    the timed-out trial is ``timed_out_run``'s, started with the module."""
    assert timed_out_run is not None
    limits = mode_client()
    quick = slurm_runner(tmp_path / "a", memory="200M")
    async with AxScheduler(limits, quick) as scheduler:
        scheduler.set_objective_function(cluster_objectives.by_mode)
        async with scheduler.batch_trial_context_async() as batch:
            for mode in ["ok", "raise", "memory", "exit"]:
                batch.add_trial({"x": 0.5, "mode": mode})
    timeouts = await timed_out_run.result()
    assert statuses(limits) == {0: "COMPLETED", 1: "FAILED", 2: "FAILED", 3: "FAILED"}
    reasons = {i: run_metadata(limits, i)["failure_reason"] for i in (1, 2, 3)}
    assert reasons[1] == "ValueError: simulated crash at x=0.5"
    assert "Exceeded job memory limit" in reasons[2]
    assert "ended FAILED" in reasons[3] or "OUT_OF_MEMORY" in reasons[3]
    assert "exit code 3:0" in reasons[3]
    assert statuses(timeouts) == {0: "FAILED"}
    reason = run_metadata(timeouts, 0)["failure_reason"]
    assert "ended TIMEOUT" in reason
    assert "time limit 1 reached" in reason


def test_a_cancelled_run_leaves_no_job_in_the_queue(tmp_path: Path) -> None:
    client = legacy_client()
    runner = slurm_runner(tmp_path)
    with AxScheduler(client, runner) as scheduler:
        scheduler.set_objective_function(cluster_objectives.sleeps_long)
        started = time.monotonic()
        scheduler.run_optimization(max_trials=3, timeout=6)
        assert time.monotonic() - started < 20
    assert set(statuses(client).values()) == {"ABANDONED"}
    job_ids = {run_metadata(client, i)["slurm_job_id"] for i in range(3)}
    assert wait_until(lambda: not set(queue()) & {j.split("_")[0] for j in job_ids}, 5)
    # On 2 CPUs the third task may still have been pending when it was cancelled
    # (its accounting record can lag far behind): check the jobs that ran.
    ran = [run_metadata(client, i) for i in range(3)]
    ran = [meta for meta in ran if Path(meta["job_dir"], "pids").exists()]
    assert ran, "no trial's job ever started"
    for meta in ran:
        job_id = meta["slurm_job_id"]

        def cancelled(job_id: str = job_id) -> bool:  # sacct lags: wait for the record
            return any(row[2].startswith("CANCELLED") for row in sacct_rows(job_id))

        assert wait_until(cancelled, 30), sacct_rows(job_id)
        pids = Path(meta["job_dir"], "pids").read_text().split()
        for pid in map(int, pids):  # the worker and its child
            assert wait_until(lambda pid=pid: not _alive(pid), 10), f"{pid} survived scancel"


def test_the_run_survives_a_dropped_ssh_connection(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    calls.mkdir()
    client = legacy_client()
    runner = slurm_runner(
        tmp_path,
        config={
            "setup": [
                f"export PYTHONPATH={Path(__file__).parent}",
                f"export AXS_TEST_CALLS={calls}",
            ]
        },
    )
    with AxScheduler(client, runner, config={"synchronous": False}) as scheduler:
        scheduler.set_objective_function(cluster_objectives.counted_rosenbrock)
        with scheduler.batch_trial_context() as batch:
            for i in range(4):
                batch.add_trial({"x": i / 4, "y": 0.0})
        assert wait_until(lambda: len(list(calls.iterdir())) == 4, 30)  # all running
        for pid in sshd_sessions():
            os.kill(pid, signal.SIGKILL)  # the server side of our one connection dies
        scheduler.wait_for_completed_trials(timeout=60)
    assert set(statuses(client).values()) == {"COMPLETED"}
    assert runner.transport.connects >= 2  # type: ignore[attr-defined]
    assert sorted(len(f.read_text().split()) for f in calls.iterdir()) == [1, 1, 1, 1]


async def test_each_poll_is_one_status_command_whatever_the_number_of_jobs(tmp_path: Path) -> None:
    clock = PollCounter()
    ticks = clock.ticks
    runner = slurm_runner(tmp_path, config={"max_array_size": 5}, clock=clock)
    sent: list[list[str]] = []
    real_run = runner.transport.run

    async def recording_run(argv: Any, **kwargs: Any) -> Any:
        sent.append(list(argv))
        return await real_run(argv, **kwargs)

    runner.transport.run = recording_run  # type: ignore[method-assign]
    client = legacy_client()
    async with AxScheduler(client, runner) as scheduler:
        scheduler.set_objective_function(cluster_objectives.rosenbrock)
        async with scheduler.batch_trial_context_async() as batch:
            for i in range(12):
                batch.add_trial({"x": i / 12, "y": 0.0})
    assert set(statuses(client).values()) == {"COMPLETED"}
    sbatch = [c for c in sent if c[0] == "sbatch" and "--test-only" not in c]
    status = [c for c in sent if c[0] in ("sacct", "squeue", "scontrol") and "config" not in c]
    assert len(sbatch) == 3  # 12 trials at MaxArraySize 5: arrays of 5, 5 and 2
    assert len(status) == len(ticks)  # exactly one status command per polling tick
    covered = [len(c[c.index("-j") + 1].split(",")) for c in status]
    assert max(covered) == 3  # one command covers all the arrays in flight


def start_error(runner: SlurmRunner) -> str:
    """What RunnerError ``runner.start()`` raises."""

    async def start() -> str:
        try:
            with pytest.raises(RunnerError) as raised:
                await runner.start()
        finally:
            await runner.aclose()
        return str(raised.value)

    return asyncio.run(start())


def new_key(path: Path) -> str:
    """Make an ed25519 key pair; its public key as ``type base64``."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return " ".join(Path(f"{path}.pub").read_text().split()[:2])


def test_bad_options_and_unreachable_or_untrusted_hosts_fail_at_start(tmp_path: Path) -> None:
    bad_partition = SlurmRunner(partition="nope", config=job_config(tmp_path), ssh=ssh_options())
    assert "invalid partition" in start_error(bad_partition).lower()

    bad_option = SlurmRunner(
        config=job_config(tmp_path, sbatch_options={"frobnicate": 3}), ssh=ssh_options()
    )
    assert "unrecognized option '--frobnicate=3'" in start_error(bad_option)

    unreachable = slurm_runner(tmp_path, ssh=ssh_options(port=2299, reconnect_attempts=0))
    assert "cannot connect to root@127.0.0.1:2299" in start_error(unreachable)

    new_key(tmp_path / "stranger_key")
    rejected = slurm_runner(tmp_path, ssh=ssh_options(client_keys=[str(tmp_path / "stranger_key")]))
    assert "rejected the login" in start_error(rejected)

    wrong = tmp_path / "known_hosts"
    port = cluster_env()["LOCALSLURM_SSH_PORT"]
    wrong.write_text(f"[127.0.0.1]:{port} {new_key(tmp_path / 'other_host_key')}\n")
    mismatch = slurm_runner(tmp_path, ssh=ssh_options(known_hosts=str(wrong)))
    assert "host key of root@127.0.0.1:" in start_error(mismatch)

    missing = slurm_runner(tmp_path, ssh=ssh_options(known_hosts=str(tmp_path / "none")))
    assert "does not exist" in start_error(missing)

    unverified = slurm_runner(
        tmp_path, ssh=ssh_options(known_hosts=str(wrong), verify_host_key=False)
    )

    async def connects() -> None:
        await unverified.start()  # verification explicitly turned off: connects
        await unverified.aclose()

    asyncio.run(connects())


def test_on_the_login_node_itself_without_ssh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_CONF", cluster_env()["SLURM_CONF"])
    client = legacy_client()
    runner = SlurmRunner(
        partition=cluster_env()["LOCALSLURM_PARTITION"], config=job_config(tmp_path)
    )
    assert runner.transport.description == "this machine"
    with AxScheduler(client, runner) as scheduler:
        scheduler.set_objective_function(cluster_objectives.rosenbrock)
        scheduler.run_optimization(max_trials=3)
    assert set(statuses(client).values()) == {"COMPLETED"}


def test_script_objectives_run_in_the_job_and_hostile_values_stay_data(tmp_path: Path) -> None:
    """The script is uploaded over SFTP; its argv never passes through a shell."""
    from test_scripts import ROSENBROCK_OPTIONS, SCRIPTS, client_with_label, run_hostile_batch

    client = client_with_label()
    runner = slurm_runner(tmp_path)
    with AxScheduler(client, runner) as scheduler:
        scheduler.set_script_objective(SCRIPTS / "rosenbrock.py", ROSENBROCK_OPTIONS)
        run_hostile_batch(scheduler)
    assert runner.stats["sbatch"] == 1
    assert_hostile_values_stayed_data(client, lambda i: Path(run_metadata(client, i)["job_dir"]))


def test_failing_and_hanging_scripts_fail_with_exit_code_stderr_or_timeout(
    tmp_path: Path,
) -> None:
    client = legacy_client()
    runner = slurm_runner(tmp_path)
    with AxScheduler(client, runner) as scheduler:
        # misbehaves.sh takes its mode as $1: a wrapper maps trial index -> mode
        scheduler.set_script_objective(
            dispatcher(tmp_path, ["exit3", "noresult", "hang"]),
            script_options={"interpreter": "sh", "args": ["{trial_index}"], "timeout": 3},
        )
        with scheduler.batch_trial_context() as batch:
            for i in range(3):
                batch.add_trial({"x": i / 4, "y": 0.0})
    assert statuses(client) == {0: "FAILED", 1: "FAILED", 2: "FAILED"}
    reasons = [run_metadata(client, i)["failure_reason"] for i in range(3)]
    assert "exit code 3:0" in reasons[0]
    assert "simulation diverged at step 42" in reasons[0]
    assert "wrote no result.json" in reasons[1]
    assert "forgot to write the result" in reasons[1]
    assert reasons[2] == "timeout: ran longer than its timeout of 3 s"
    child = int((Path(run_metadata(client, 2)["job_dir"]) / "child.pid").read_text())
    assert wait_until(lambda: not _alive(child), 10)


def _alive(pid: int) -> bool:
    from conftest import alive

    return alive(pid)


def test_apptainer_containers_need_the_engine_on_the_cluster(tmp_path: Path) -> None:
    """No Apptainer package exists for these machines: the missing engine is a clear
    error at start (the command line itself is tested in test_slurm_logic.py)."""
    client = legacy_client()
    with AxScheduler(client, slurm_runner(tmp_path)) as scheduler:
        scheduler.set_container_objective(
            container_image="sim.sif",
            container_command="python /app/simulate.py {params_file} {output_file}",
            container_options={"engine": "apptainer"},
        )
        with pytest.raises(RunnerError, match=r"'apptainer' is not found on root@127\.0\.0\.1"):
            scheduler.run_optimization(max_trials=1)
        scheduler.set_container_objective(container_image="sim:latest")
        with pytest.raises(RunnerError, match="not 'docker'"):
            scheduler.run_optimization(max_trials=1)
    assert statuses(client) == {}


def test_results_table_load_and_log_lines_follow_the_jobs_states(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = legacy_client()
    # 8 s trials: sacct's accounting lags a few seconds behind, and RUNNING must
    # still be there when it catches up.
    setup = [f"export PYTHONPATH={Path(__file__).parent}", "export AXS_TEST_SLEEP=8"]
    runner = slurm_runner(tmp_path, config={"setup": setup})
    with (
        caplog.at_level(logging.INFO, logger="ax_scheduler"),
        AxScheduler(client, runner, config={"synchronous": False}) as scheduler,
    ):
        scheduler.set_objective_function(cluster_objectives.slow_rosenbrock)
        with scheduler.batch_trial_context() as batch:
            for i in range(2):
                batch.add_trial({"x": i / 2, "y": 0.0})
        assert wait_until(lambda: (runner.load() or {}).get("running") == 2, 60), runner.load()
        running = scheduler.results()
        scheduler.wait_for_completed_trials(timeout=60)
        done = scheduler.results()
        load_after = runner.load()

    assert set(running["status"]) == {"RUNNING"}
    assert running["job_id"].str.fullmatch(r"\d+_[01]").all()
    assert set(done["status"]) == {"COMPLETED"}
    assert list(done["job_id"]) == list(running["job_id"])
    assert (done["queued_at"] <= done["started_at"]).all()
    assert (done["duration_s"] >= 4).all()  # seen RUNNING (lagging) to seen COMPLETED
    assert all(Path(stdout).exists() for stdout in done["stdout"])  # the cluster is this host
    assert load_after == {"queued": 0, "pending": 0, "running": 0}
    logged = [r.getMessage() for r in caplog.records if r.name == "ax_scheduler"]
    for index, job_id in enumerate(done["job_id"]):
        assert f"trial {index} running as Slurm job {job_id}" in logged
        assert any(
            line.startswith(f"trial {index} completed in ")
            and f"(slurm, slurm_job_id={job_id})" in line
            for line in logged
        )
