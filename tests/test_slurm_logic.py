"""SlurmRunner's logic against a scripted cluster: parsing, polling, back-off, failures.

The fake cluster (:class:`ax_scheduler.testing.FakeTransport`) answers commands
from state the test sets, and the runner's clock is a FakeClock, so these tests
pin down exactly, in virtual time, what a real cluster does only by chance:
sacct's lag, a failing poll, NODE_FAIL, MaxArraySize, a connection dropped during
sbatch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shlex
from collections.abc import Callable
from typing import Any

import pytest

from ax_scheduler import (
    AxScheduler,
    ConfigError,
    InfrastructureError,
    ObjectiveError,
    SlurmRunner,
    TrialError,
    TrialTimeoutError,
)
from ax_scheduler._jobs import FunctionObjective, Job
from ax_scheduler._sacct import Outcome, SacctWatcher, SlurmState, expand_task_range, parse_sacct
from ax_scheduler._slurm import chunks, job_script, parse_max_array_size
from ax_scheduler.testing import FakeClock, FakeTransport
from conftest import experiment_of, legacy_client, statuses


def objective(parameters: dict[str, Any]) -> dict[str, float]:
    return {"objective": parameters["x"]}


OBJECTIVE = FunctionObjective(objective)


def jobs(n: int, **parameters: Any) -> list[Job]:
    return [Job(i, {"x": float(i), **parameters}, OBJECTIVE, f"exp-trial-{i}") for i in range(n)]


class Ticks(FakeClock):
    """The runner's clock: virtual time, its waits by task, and the test's script.

    ``script[n]`` runs just before the n-th poll (0-based) asks sacct.
    """

    def __init__(self, cluster: FakeTransport, script: dict[int, Callable[[], None]]) -> None:
        super().__init__()
        self.waits: dict[str, list[float]] = {}  # task name -> its sleeps
        self.script = script
        cluster.on_sacct = self._before_sacct
        self.polls = 0

    def _before_sacct(self, cluster: FakeTransport) -> None:
        action = self.script.get(self.polls)
        self.polls += 1
        if action is not None:
            action()

    @property
    def pauses(self) -> list[float]:
        """The watcher's waits between polls."""
        return self.waits.get("ax-scheduler-sacct", [])

    async def sleep(self, seconds: float) -> None:
        task = asyncio.current_task()
        self.waits.setdefault(task.get_name() if task else "", []).append(seconds)
        await super().sleep(seconds)


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Let the runner's tasks run until ``condition()`` holds (the fake has no events)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.001)


def make_runner(cluster: FakeTransport, ticks: Ticks | None = None, **config: Any) -> SlurmRunner:
    config.setdefault("submit_window", 0)
    config.setdefault("monitoring_interval", 8)
    return SlurmRunner(
        partition="debug",
        config=config,
        transport=cluster,
        clock=ticks or Ticks(cluster, {}),
    )


def complete_all(cluster: FakeTransport) -> Callable[[], None]:
    def action() -> None:
        cluster.complete(lambda parameters: {"objective": parameters["x"]})

    return action


# -- pure functions ----------------------------------------------------------------
def test_sacct_lines_become_task_states() -> None:
    text = "\n".join(
        [
            "123_[2-4%2]|PENDING|0:0",
            "123_0|COMPLETED|0:0",
            "123_1|CANCELLED by 0|0:15",
            "124|FAILED|3:0",
            "123_1.batch|CANCELLED|0:15",
            "sacct: warning: something",
            "",
        ]
    )
    states = parse_sacct(text)
    assert [(s.job_id, s.tasks, s.state, s.exit_code) for s in states] == [
        ("123", (2, 3, 4), SlurmState.PENDING, "0:0"),
        ("123", (0,), SlurmState.COMPLETED, "0:0"),
        ("123", (1,), SlurmState.CANCELLED, "0:15"),
        ("124", (), SlurmState.FAILED, "3:0"),
    ]
    outcomes = [s.state.outcome for s in states]
    assert outcomes == [None, Outcome.RESULT, Outcome.CANCELLED, Outcome.FAILED]


def test_slurm_states_are_an_enum_of_sacct_words_that_knows_which_are_over() -> None:
    assert SlurmState.from_sacct("CANCELLED by 1000") is SlurmState.CANCELLED
    assert SlurmState.from_sacct("OUT_OF_MEMORY") is SlurmState.OUT_OF_MEMORY
    assert SlurmState.from_sacct("") is SlurmState.UNKNOWN
    newer = SlurmState.from_sacct("LAUNCH_FAILED_SOMEDAY")  # a word of a newer Slurm
    assert newer is SlurmState.UNKNOWN
    assert not newer.is_terminal
    assert not SlurmState.PENDING.is_terminal
    assert SlurmState.PENDING.outcome is None
    assert SlurmState.TIMEOUT.outcome is Outcome.TIMEOUT
    for state in (SlurmState.NODE_FAIL, SlurmState.PREEMPTED, SlurmState.BOOT_FAIL):
        assert state.is_terminal
        assert state.outcome is Outcome.INFRASTRUCTURE


def test_task_ranges_array_chunks_and_max_array_size() -> None:
    assert expand_task_range("0-2,5,7-8%3") == [0, 1, 2, 5, 7, 8]
    assert chunks(10, 4) == [range(0, 4), range(4, 8), range(8, 10)]
    assert parse_max_array_size("MaxArraySize            = 1001\nMaxJobCount = 10") == 1001
    assert parse_max_array_size("nothing here") is None


async def test_quiet_polls_back_off_to_the_cap_and_stay_there_however_long() -> None:
    cluster = FakeTransport()
    cluster.arrays["100"] = 1
    cluster.states["100_0"] = "RUNNING"
    clock = FakeClock()
    ended = asyncio.Event()

    async def on_change(changes: list[Any]) -> None:
        if any(change.line.state.is_terminal for change in changes):
            ended.set()

    def after_many_ticks(cluster: FakeTransport) -> None:
        if len(cluster.sacct_calls()) == 1200:  # 2 ** 1200 s would overflow a float
            cluster.states["100_0"] = "COMPLETED"

    cluster.on_sacct = after_many_ticks
    watcher: SacctWatcher[str] = SacctWatcher(
        cluster, on_change, lambda *_: None, clock=clock, max_interval=10
    )
    watcher.watch("100_0", "trial 0", SlurmState.RUNNING)
    await asyncio.wait_for(ended.wait(), 10)
    assert clock.sleeps[:6] == [1, 2, 4, 8, 10, 10]
    assert set(clock.sleeps[4:]) == {10}
    assert watcher.polls == 1200
    assert watcher.items() == []
    await watcher.aclose()


@pytest.mark.parametrize(("tasks", "settled"), [(1, ["trial 0"]), (2, [])])
async def test_the_plain_job_line_of_a_one_task_array_is_its_task(
    tasks: int, settled: list[str]
) -> None:
    # Slurm's database lists a one-task array as "100|COMPLETED" for 1 to 5 s
    # before "100_0|COMPLETED": waiting for the latter made every lone trial end late.
    # Of a bigger array, that line is about a task it does not name.
    cluster = FakeTransport()
    cluster.arrays["100"] = tasks
    cluster.states["100"] = "COMPLETED"
    changed: list[str] = []
    third_poll = asyncio.Event()

    async def on_change(changes: list[Any]) -> None:
        changed.extend(change.item for change in changes if change.line.state.is_terminal)

    async def on_tick(changes: list[Any]) -> bool:
        if watcher.polls == 3 or changes:
            third_poll.set()
        return False

    watcher: SacctWatcher[str] = SacctWatcher(
        cluster, on_change, lambda *_: None, on_tick=on_tick, clock=FakeClock(), max_interval=1
    )
    for task in range(tasks):
        watcher.watch(f"100_{task}", f"trial {task}", SlurmState.PENDING, alone=tasks == 1)
    await asyncio.wait_for(third_poll.wait(), 10)
    await asyncio.sleep(0)  # on_change comes after on_tick
    assert changed == settled
    assert len(watcher.items()) == tasks - len(settled)
    await watcher.aclose()


def test_job_script_quotes_every_value_it_did_not_get_from_the_user() -> None:
    script = job_script(
        python="/opt/my python/bin/python3",
        worker="/jobs/x/axs_worker.py",
        manifest="/jobs/it's/manifest.json",
        modules=["python/3.11"],
        setup=["source ~/venv/bin/activate"],
        header="trials 1, 2",
    )
    last = script.strip().splitlines()[-1]
    assert shlex.split(last)[:4] == [
        "exec",
        "/opt/my python/bin/python3",
        "/jobs/x/axs_worker.py",
        "/jobs/it's/manifest.json",
    ]
    assert "module load python/3.11\nsource ~/venv/bin/activate\n" in script


def test_bad_options_are_named() -> None:
    with pytest.raises(ConfigError, match="time_limit '1h'"):
        SlurmRunner(time_limit="1h")
    with pytest.raises(ConfigError, match="memory 'lots'"):
        SlurmRunner(memory="lots")
    with pytest.raises(ConfigError, match="cpus_per_task must be a positive int, got 0"):
        SlurmRunner(cpus_per_task=0)
    with pytest.raises(ConfigError, match=r"'mem' is set by the runner; use SlurmRunner\(memory"):
        SlurmRunner(config={"sbatch_options": {"mem": "4G"}})
    with pytest.raises(ConfigError, match="unknown config key 'partitions'"):
        SlurmRunner(config={"partitions": "x"})
    with pytest.raises(ConfigError, match=r"ssh.*host"):
        SlurmRunner(ssh={"port": 22})


# -- the runner against the fake cluster --------------------------------------------
async def test_a_batch_is_one_array_and_parameters_never_reach_a_command() -> None:
    cluster = FakeTransport()
    ticks = Ticks(cluster, {1: complete_all(cluster)})
    runner = make_runner(cluster, ticks)
    hostile = "$(touch /tmp/pwned); rm -rf ~ 'quoted'"
    works = await runner.run_batch(jobs(20, label=hostile))
    results = await asyncio.gather(*works)
    assert results == [{"objective": float(i)} for i in range(20)]
    [sbatch] = cluster.sbatch_calls()
    assert "--array=0-19" in sbatch
    assert "--partition=debug" in sbatch
    assert all(hostile not in " ".join(command) for command in cluster.commands)
    manifest = cluster.manifest("100")
    assert [t["parameters"]["label"] for t in manifest["tasks"]] == [hostile] * 20
    await runner.aclose()


async def test_one_sacct_per_tick_covers_every_unfinished_array() -> None:
    cluster = FakeTransport(max_array_size=4)
    ticks = Ticks(cluster, {3: complete_all(cluster)})
    runner = make_runner(cluster, ticks)
    await asyncio.gather(*await runner.run_batch(jobs(10)))
    assert [next(a for a in c if a.startswith("--array=")) for c in cluster.sbatch_calls()] == [
        "--array=0-3",
        "--array=0-3",
        "--array=0-1",
    ]
    sacct = cluster.sacct_calls()
    assert len(sacct) == len(ticks.pauses) == 4  # one command per tick, whatever the job count
    assert all(c[c.index("-j") + 1] == "100,101,102" for c in sacct)
    await runner.aclose()


async def test_sacct_lag_and_failed_polls_lose_nothing_and_back_off() -> None:
    cluster = FakeTransport()
    cluster.sacct_failures = 2  # polls 0 and 1 fail; polls 2-3 see no record yet (lag)
    ticks = Ticks(cluster, {4: complete_all(cluster)})
    runner = make_runner(cluster, ticks)
    work = asyncio.ensure_future(runner.run(jobs(1)[0]))
    assert await work == {"objective": 0.0}
    assert ticks.pauses == [1, 2, 4, 8, 8]  # nothing changed for four ticks
    await runner.aclose()


async def test_backoff_resets_when_something_changes() -> None:
    cluster = FakeTransport()

    def running() -> None:
        cluster.states["100_0"] = "RUNNING"

    ticks = Ticks(cluster, {2: running, 4: complete_all(cluster)})
    runner = make_runner(cluster, ticks)
    await runner.run(jobs(1)[0])
    assert ticks.pauses == [1, 2, 4, 1, 2]
    await runner.aclose()


async def test_failures_carry_the_state_exit_code_stderr_or_the_objectives_error() -> None:
    cluster = FakeTransport()

    def finish() -> None:
        cluster.set_stderr("100", 0, "loading...\nslurmstepd: error: Exceeded job memory limit\n")
        cluster.finish("100", 0, "OUT_OF_MEMORY")
        cluster.set_stderr("100", 1, "still going\n")
        cluster.finish("100", 1, "TIMEOUT")
        workdir = cluster.manifest("100")["tasks"][2]["workdir"]
        cluster.files[f"{workdir}/error.json"] = json.dumps(
            {"error": "ValueError: x too big", "traceback": "Traceback ...\nValueError"}
        ).encode()
        cluster.finish("100", 2, "FAILED")
        cluster.finish("100", 3, "COMPLETED")  # exit 0 but no result.json
        cluster.finish("100", 4, "CANCELLED")  # by someone else

    runner = make_runner(cluster, Ticks(cluster, {0: finish}))
    outcomes = await asyncio.gather(*await runner.run_batch(jobs(5)), return_exceptions=True)
    oom, timeout, raised, no_result, cancelled = outcomes
    assert isinstance(oom, ObjectiveError)
    assert "ended OUT_OF_MEMORY (exit code 1:0)" in str(oom)
    assert "Exceeded job memory limit" in str(oom)
    assert isinstance(timeout, TrialTimeoutError)
    assert "time limit 01:00:00" in str(timeout)
    assert isinstance(raised, ObjectiveError)
    assert str(raised) == "ValueError: x too big"
    assert raised.details == "Traceback ...\nValueError"
    assert isinstance(no_result, ObjectiveError)
    assert "wrote no result.json" in str(no_result)
    assert type(cancelled) is TrialError
    assert "cancelled outside ax-scheduler" in str(cancelled)
    await runner.aclose()


async def test_node_failure_is_resubmitted_not_counted_as_the_trials_failure() -> None:
    cluster = FakeTransport()

    def node_fail() -> None:
        cluster.finish("100", 0, "NODE_FAIL")

    ticks = Ticks(cluster, {0: node_fail, 1: complete_all(cluster)})
    runner = make_runner(cluster, ticks)
    job = jobs(1)[0]
    assert await runner.run(job) == {"objective": 0.0}
    assert len(cluster.sbatch_calls()) == 2
    assert cluster.cancelled == ["100_0"]  # a failed job that might requeue is cancelled
    assert job.info["resubmits"] == 1
    assert job.info["slurm_job_id"] == "101_0"
    await runner.aclose()


async def test_infrastructure_failures_beyond_max_resubmits_fail_the_trial() -> None:
    cluster = FakeTransport()

    def preempt_everything() -> None:
        for job_id in cluster.arrays:
            cluster.states.setdefault(f"{job_id}_0", "PREEMPTED")

    ticks = Ticks(cluster, dict.fromkeys(range(10), preempt_everything))
    runner = make_runner(cluster, ticks, max_resubmits=1)
    with pytest.raises(InfrastructureError, match=r"ended PREEMPTED.*after 1 resubmissions"):
        await runner.run(jobs(1)[0])
    assert len(cluster.sbatch_calls()) == 2
    await runner.aclose()


async def test_cancellations_of_the_same_moment_share_one_scancel() -> None:
    cluster = FakeTransport()
    runner = make_runner(cluster, Ticks(cluster, {}))
    works = await runner.run_batch(jobs(5))
    await until(lambda: runner.stats["sacct"] > 0)  # submitted and being polled
    for work in works:
        work.cancel()  # type: ignore[attr-defined]
    await asyncio.wait(works)  # type: ignore[arg-type]
    scancels = [c for c in cluster.commands if c[0] == "scancel"]
    assert scancels == [["scancel", *(f"100_{i}" for i in range(5))]]
    await runner.aclose()
    assert [c for c in cluster.commands if c[0] == "scancel"] == scancels  # nothing left


@pytest.mark.parametrize("went_through", [True, False])
async def test_a_connection_dropped_during_sbatch_never_submits_twice(went_through: bool) -> None:
    cluster = FakeTransport()
    cluster.drop_next_sbatch, cluster.sbatch_went_through = True, went_through
    runner = make_runner(cluster, Ticks(cluster, {0: complete_all(cluster)}))
    assert await runner.run(jobs(1)[0]) == {"objective": 0.0}
    assert len(cluster.arrays) == 1  # exactly one job exists on the cluster
    assert len(cluster.sbatch_calls()) == (1 if went_through else 2)
    await runner.aclose()


@pytest.mark.parametrize("finished_before_the_lookup", [False, True])
async def test_a_refused_sbatch_that_went_through_all_the_same_is_not_submitted_again(
    finished_before_the_lookup: bool,
) -> None:
    # slurmctld restarting mid-reply: sbatch says it failed, the array is queued. Seen
    # in bench/slurm_faults.py: trial 42's array ran twice (jobs 38 and 40). Its task
    # was quick: finished before the retry, so squeue alone no longer listed it.
    cluster = FakeTransport()
    cluster.sbatch_failures, cluster.failed_sbatch_went_through = 1, True
    if finished_before_the_lookup:
        original = cluster._accept

        def accept_and_finish(name: str, tasks: int, directory: str) -> str:
            job_id = original(name, tasks, directory)
            for task in range(tasks):
                cluster.states[f"{job_id}_{task}"] = "COMPLETED"
                cluster.files[f"{directory}/{task}/result.json"] = b'{"objective": 0.0}'
            return job_id

        cluster._accept = accept_and_finish  # type: ignore[method-assign]
    runner = make_runner(cluster, Ticks(cluster, {0: complete_all(cluster)}))
    assert await runner.run(jobs(1)[0]) == {"objective": 0.0}
    assert len(cluster.arrays) == 1  # exactly one job exists on the cluster
    assert len(cluster.sbatch_calls()) == 1
    await runner.aclose()


async def test_closing_the_runner_cancels_every_live_job() -> None:
    cluster = FakeTransport()
    runner = make_runner(cluster, Ticks(cluster, {}))
    works = await runner.run_batch(jobs(3))
    await until(lambda: runner.stats["sacct"] > 0)
    await runner.aclose()
    assert sorted(cluster.cancelled) == ["100_0", "100_1", "100_2"]
    outcomes = await asyncio.gather(*works, return_exceptions=True)
    assert all(isinstance(o, InfrastructureError) and "closed" in str(o) for o in outcomes)


def test_apptainer_command_line_binds_the_trial_dir_and_keeps_values_as_arguments(
    tmp_path: Any,
) -> None:
    from ax_scheduler._config import ContainerOptions
    from ax_scheduler._container import apptainer_exec_argv, make_container_objective

    data = tmp_path / "my data"
    data.mkdir()
    objective = make_container_objective(
        "/images/sim.sif",
        "python /app/simulate.py {params_file} {output_file} --label 'a b'",
        ContainerOptions.from_user(
            {
                "engine": "singularity",
                "volumes": {str(data): "/data:ro"},
                "env_vars": {"MODE": "$(rm -rf ~)"},
                "gpus": 1,
            }
        ),
    )
    argv = apptainer_exec_argv(objective, "/scratch/run 1/a0/3", 3)
    assert argv == [
        "singularity", "exec", "--cleanenv", "--pwd", "/job",
        "--bind", "/scratch/run 1/a0/3:/job",
        "--bind", f"{data}:/data:ro",
        "--env", "MODE=$(rm -rf ~)",
        "--env", "JOB_PARAMS_FILE=/job/params.json",
        "--env", "JOB_OUTPUT_FILE=/job/result.json",
        "--env", "JOB_TRIAL_INDEX=3",
        "--env", "JOB_WORKDIR=/job",
        "--env", "JOB_PROGRESS_FILE=/job/progress.jsonl",  # the trial folder's: read on the tick
        "--nv",
        "/images/sim.sif",
        "python", "/app/simulate.py", "/job/params.json", "/job/result.json", "--label", "a b",
    ]  # fmt: skip


async def test_script_and_container_trials_become_command_manifests(tmp_path: Any) -> None:
    from ax_scheduler._config import ContainerOptions, ScriptOptions
    from ax_scheduler._container import make_container_objective
    from ax_scheduler._script import make_script_objective

    script = tmp_path / "sim.py"
    script.write_text("print('hi')\n")
    scripted = make_script_objective(
        script, ScriptOptions.from_user({"interpreter": "python3", "args": ["{params_file}"]})
    )
    contained = make_container_objective(
        "sim.sif", "run {output_file}", ContainerOptions.from_user({"engine": "apptainer"})
    )
    cluster = FakeTransport()
    runner = make_runner(cluster, Ticks(cluster, {0: complete_all(cluster)}))
    jobs_ = [
        Job(0, {"x": 0.0}, scripted, "exp-trial-0"),
        Job(1, {"x": 1.0}, contained, "exp-trial-1"),
    ]
    await runner.start()
    await asyncio.gather(*(runner.run(job) for job in jobs_))
    assert len(cluster.sbatch_calls()) == 2  # one array per objective
    script_task = cluster.manifest("100")["tasks"][0]
    workdir = script_task["workdir"]
    assert cluster.manifest("100")["kind"] == "command"
    assert script_task["argv"] == [
        scripted.interpreter,  # without ssh: the driver's own, resolved path
        str(script),
        f"{workdir}/params.json",
    ]
    assert script_task["env"]["JOB_OUTPUT_FILE"] == f"{workdir}/result.json"
    container_task = cluster.manifest("101")["tasks"][0]
    assert container_task["argv"][:2] == ["apptainer", "exec"]
    assert container_task["argv"][-3:] == ["sim.sif", "run", "/job/result.json"]
    await runner.aclose()


async def test_a_finished_job_whose_files_cannot_be_read_yet_is_read_on_a_later_tick() -> None:
    cluster = FakeTransport()

    def finish_while_disconnected() -> None:
        complete_all(cluster)()
        cluster.read_failures = 2  # this tick's read of result.json, and the next one's

    runner = make_runner(cluster, Ticks(cluster, {0: finish_while_disconnected}))
    assert await runner.run(jobs(1)[0]) == {"objective": 0.0}  # not failed, not lost
    assert len(cluster.sacct_calls()) == 3
    await runner.aclose()


async def test_a_crashed_poll_loop_fails_the_waiting_trials_instead_of_hanging() -> None:
    cluster = FakeTransport()

    def crash() -> None:
        raise RuntimeError("bug in a poll")

    runner = make_runner(cluster, Ticks(cluster, {0: crash}))
    with pytest.raises(InfrastructureError, match=r"status polling stopped.*bug in a poll"):
        await runner.run(jobs(1)[0])
    await runner.aclose()


async def test_a_command_cut_off_by_a_dropped_connection_is_never_taken_for_a_failure() -> None:
    """asyncssh reports a connection killed mid-command as a result without exit
    status. For sbatch that must be ConnectionDropped (look the job up before
    submitting again), never an ordinary failure that is retried blindly."""
    from types import SimpleNamespace

    from ax_scheduler._config import SSHOptions
    from ax_scheduler._remote import _ConnectionDropped
    from ax_scheduler._sshtransport import SSHTransport

    class CutOff:
        closed = False

        async def run(self, command: str, check: bool, encoding: str | None = "utf-8") -> Any:
            return SimpleNamespace(exit_status=None, exit_signal=None, stdout=b"", stderr=b"")

        def close(self) -> None:
            self.closed = True

    transport = SSHTransport(SSHOptions(host="login", verify_host_key=False))
    conn = CutOff()

    async def connection() -> Any:
        transport._conn = conn  # type: ignore[assignment]
        return conn

    transport.connection = connection  # type: ignore[method-assign]
    with pytest.raises(_ConnectionDropped, match="dropped while running sbatch"):
        await transport.run(["sbatch", "job.sh"], idempotent=False)
    assert conn.closed  # forgotten: the next command reconnects


async def test_a_refused_sbatch_is_retried_after_1_then_2_seconds_on_the_clock() -> None:
    cluster = FakeTransport()
    cluster.sbatch_failures = 2
    clock = Ticks(cluster, {0: complete_all(cluster)})
    runner = make_runner(cluster, clock)
    assert await runner.run(jobs(1)[0]) == {"objective": 0.0}
    assert len(cluster.sbatch_calls()) == 3
    # The submit window, then the back-off between the attempts.
    assert clock.waits["ax-scheduler-sbatch"] == [0, 1, 2]
    await runner.aclose()


def test_a_campaign_runs_on_the_fake_cluster_with_the_objective_it_uploaded() -> None:
    """FakeTransport as a user's unit test has it: the real scheduler and runner,
    no cluster, no waiting; the fake runs what the runner uploaded."""
    cluster = FakeTransport()
    cluster.on_sacct = FakeTransport.complete
    runner = SlurmRunner(partition="gpu", transport=cluster, clock=FakeClock())
    client = legacy_client()
    with AxScheduler(client, runner) as scheduler:
        scheduler.set_objective_function(objective)
        with scheduler.batch_trial_context() as batch:
            for x in (0.25, 0.5, 0.75):
                batch.add_trial({"x": x, "y": 0.0})
    assert set(statuses(client).values()) == {"COMPLETED"}
    means = [t.objective_mean for t in experiment_of(client).trials.values()]
    assert sorted(means) == [0.25, 0.5, 0.75]
    assert len(cluster.sbatch_calls()) == 1  # one batch, one array


# -- reports and early stops ------------------------------------------------------------
def collect_reports(works: list[Job]) -> list[tuple[int, float, dict[str, Any]]]:
    """Every report delivered on the jobs' channels, in order, as (trial, step, metrics)."""
    got: list[tuple[int, float, dict[str, Any]]] = []
    for job in works:
        job.channel.on_report = lambda step, metrics, i=job.trial_index: got.append(
            (i, step, metrics)
        )
    return got


def files_read(argv: list[str]) -> list[str]:
    """The files one progress read names (after ``sh -c SCRIPT sh BASE``: path, offset)."""
    return [f"{argv[4]}/{path}" for path in argv[5::2]]


async def test_one_progress_read_per_tick_covers_every_task_and_reports_keep_ticks_short(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster = FakeTransport()

    def start() -> None:
        for task in range(3):
            cluster.states[f"100_{task}"] = "RUNNING"
        cluster.report("100", 0, '{"step": 0, "objective": 3.0}')
        cluster.report("100", 1, '{"step": 0, "objective": 5.0}')

    def half_a_line() -> None:
        cluster.report("100", 0, '{"step": 1, "objective": 2.0}')
        path = f"{cluster.manifest('100')['tasks'][2]['workdir']}/progress.jsonl"
        cluster.files[path] = b'{"step": 0, "obj'  # a line still being written waits

    def rest_of_the_line() -> None:
        path = f"{cluster.manifest('100')['tasks'][2]['workdir']}/progress.jsonl"
        cluster.files[path] += b'ective": 9.0}\n'
        cluster.report("100", 1, "{oops")

    def last_line_then_end() -> None:
        cluster.report("100", 0, '{"step": 2, "objective": 1.0}')  # written just before exit
        complete_all(cluster)()

    script = {0: start, 1: half_a_line, 3: rest_of_the_line, 5: last_line_then_end}
    ticks = Ticks(cluster, script)
    runner = make_runner(cluster, ticks)
    batch = jobs(3)
    got = collect_reports(batch)
    with caplog.at_level(logging.WARNING, logger="ax_scheduler"):
        assert await asyncio.gather(*await runner.run_batch(batch)) == [
            {"objective": float(i)} for i in range(3)
        ]
    assert got == [
        (0, 0.0, {"objective": 3.0}),
        (1, 0.0, {"objective": 5.0}),
        (0, 1.0, {"objective": 2.0}),
        (2, 0.0, {"objective": 9.0}),
        (0, 2.0, {"objective": 1.0}),  # read on the tick that saw the job end
    ]
    # A tick with new lines resets the back-off like a change of state.
    assert ticks.pauses == [1, 1, 1, 2, 1, 2]
    reads = cluster.progress_reads()
    assert len(reads) == len(cluster.sacct_calls()) == runner.stats["progress"] == 6
    workdirs = [task["workdir"] for task in cluster.manifest("100")["tasks"]]
    assert all(files_read(argv) == [f"{w}/progress.jsonl" for w in workdirs] for argv in reads)
    [skipped] = [r.getMessage() for r in caplog.records if "progress line" in r.getMessage()]
    assert skipped.startswith("trial 1: progress line 2 of ")
    assert "not JSON" in skipped
    await runner.aclose()


async def test_a_stop_is_one_scancel_signal_to_the_worker_for_the_trials_of_a_moment() -> None:
    cluster = FakeTransport()
    runner = make_runner(cluster, Ticks(cluster, {}))
    batch = jobs(3)
    works = await runner.run_batch(batch)
    await until(lambda: runner.stats["sacct"] > 0)  # submitted and watched
    batch[0].channel.request_stop("worse than the median")
    batch[2].channel.request_stop("worse than the median")
    await until(lambda: len(cluster.signalled) == 2)
    scancels = [c for c in cluster.commands if c[0] == "scancel"]
    assert scancels == [["scancel", "--signal=USR2", "--batch", "100_0", "100_2"]]
    assert not cluster.cancelled  # the jobs go on: their workers stop the trials
    for work in works:  # the grace ran out: the existing cancel path
        work.cancel()  # type: ignore[attr-defined]
    await asyncio.wait(works)  # type: ignore[arg-type]
    assert sorted(cluster.cancelled) == ["100_0", "100_1", "100_2"]
    assert runner.stats["stop"] == 1
    await runner.aclose()


async def test_a_reattached_job_reads_its_progress_file_again_from_the_start() -> None:
    cluster = FakeTransport()
    workdir = "/home/user/ax_scheduler_jobs/20260101-000000-abcdef/a0/0"  # an earlier driver's
    cluster.arrays["100"] = 1
    cluster.states["100_0"] = "RUNNING"
    cluster.files[f"{workdir}/progress.jsonl"] = b'{"step": 0, "objective": 4.0}\n'

    def more_then_done() -> None:
        cluster.files[f"{workdir}/progress.jsonl"] += b'{"step": 1, "objective": 3.0}\n'
        cluster.files[f"{workdir}/result.json"] = b'{"objective": 3.0}'
        cluster.states["100_0"] = "COMPLETED"

    runner = make_runner(cluster, Ticks(cluster, {1: more_then_done}))
    [job] = jobs(1)
    job.info.update(slurm_job_id="100_0", job_dir=workdir)
    got = collect_reports([job])
    followed = await runner.reattach(job)
    assert followed is not None
    assert await followed == {"objective": 3.0}
    # From byte 0: the core skips the steps Ax already has (Progressions.resume_from).
    assert [step for _, step, _ in got] == [0.0, 1.0]
    await runner.aclose()


def test_progress_reads_stay_under_the_argument_limit_and_cut_output_is_refused() -> None:
    from ax_scheduler._progressfile import split_tail_output, tail_commands

    files = [(f"/scratch/u/jobs/s/a{i // 100}/{i % 100}/progress.jsonl", i) for i in range(3000)]
    commands = tail_commands(files)
    assert len(commands) == 1  # paths below their common directory: short enough
    [(argv, count)] = commands
    assert count == 3000
    assert argv[4] == "/scratch/u/jobs/s"
    assert argv[5:7] == ["a0/0/progress.jsonl", "0"]
    split = tail_commands(files, limit=20_000)
    assert len(split) > 1
    assert all(len(shlex.join(argv)) <= 20_000 for argv, _ in split)
    assert sum(count for _, count in split) == 3000
    assert split_tail_output(b"@@axs-progress 3\nabc@@axs-progress 0\n", 2) == [b"abc", b""]
    with pytest.raises(ValueError, match="cut short"):
        split_tail_output(b"@@axs-progress 9\nabc", 1)  # a file that shrank while read
    with pytest.raises(ValueError, match="after 1 files"):
        split_tail_output(b"@@axs-progress 0\nstray", 1)


BY_VALUE_OBJECTIVE = """
import sys
from ax_scheduler import TrialStoppedEarly, report
from ax_scheduler._uploads import pickle_objective

def objective(parameters):
    try:
        for step in range(3):
            report({"loss": parameters["x"] * step}, step=step)
    except TrialStoppedEarly as exc:
        return {"loss": -1.0, "stopped": str(exc)}
    return {"loss": parameters["x"]}

with open(sys.argv[1], "wb") as file:
    file.write(pickle_objective(objective))
"""

#: A Python where ax_scheduler cannot be imported loads the pickle and runs it.
WITHOUT_AX_SCHEDULER = """
import importlib.abc, json, os, pickle, sys

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "ax_scheduler":
            raise ImportError(f"no module named {name!r} here")

sys.meta_path.insert(0, NotInstalled())
try:
    import ax_scheduler
    importable = True
except ImportError:
    importable = False
with open(sys.argv[1], "rb") as file:
    objective = pickle.load(file)
os.environ["JOB_PROGRESS_FILE"] = sys.argv[2]
ran = objective({"x": 2.0})
os.environ["JOB_STOP_REQUESTED"] = "stopped early by the scheduler"
stopped = objective({"x": 2.0})
loaded = sorted(name for name in sys.modules if name.startswith("ax_scheduler"))
print(json.dumps({"importable": importable, "ran": ran, "stopped": stopped, "loaded": loaded}))
"""


def test_a_function_that_imports_report_runs_where_ax_scheduler_is_not_installed(
    tmp_path: Any,
) -> None:
    import subprocess
    import sys

    pickled, progress = tmp_path / "objective.pkl", tmp_path / "progress.jsonl"
    made = subprocess.run(
        [sys.executable, "-c", BY_VALUE_OBJECTIVE, str(pickled)], capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    ran = subprocess.run(
        [sys.executable, "-c", WITHOUT_AX_SCHEDULER, str(pickled), str(progress)],
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {
        "importable": False,
        "ran": {"loss": 2.0},
        "stopped": {"loss": -1.0, "stopped": "stopped early by the scheduler"},
        "loaded": [],
    }
    lines = [json.loads(line) for line in progress.read_text().splitlines()]
    assert lines == [{"step": step, "loss": 2.0 * step} for step in range(3)]
