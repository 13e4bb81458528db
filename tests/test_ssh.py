"""SSHRunner against the real OpenSSH server of the local cluster: two hosts, one machine.

`ci/start-slurm.sh` runs sshd on 127.0.0.1:2222 and :2223; the runner treats them
as two hosts. Trials are real processes started by sshd, running this venv's
Python. The objectives below travel by value (cloudpickle), because the remote
worker cannot import this test module; each host's ``env`` tells them where to
write their events (``events.jsonl``: start and end of every call, with the
host's tag and the worker's pid), which is how the tests see what ran where.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import asyncssh
import cloudpickle
import psutil
import pytest

from ax_scheduler import ConfigError, InfrastructureError, RunnerError, SSHRunner
from ax_scheduler._jobs import FunctionObjective, Job
from cluster import cluster_env, ssh_options, sshd_sessions
from conftest import alive, experiment_of, legacy_client, statuses, wait_until
from test_scripts import dispatcher

pytestmark = pytest.mark.slurm

# The remote worker imports nothing from tests/: the objectives travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

SSH_PORTS = ("LOCALSLURM_SSH_PORT", "LOCALSLURM_SSH_PORT2")


# -- objectives (run on the hosts) ------------------------------------------------------
def record(kind: str, parameters: dict[str, Any], **fields: Any) -> None:
    """Append one event line; O_APPEND keeps concurrent lines whole."""
    event = {
        "kind": kind,
        "host": os.environ["AXS_TEST_HOST"],
        "pid": os.getpid(),
        "x": parameters["x"],
        "time": time.time(),
        **fields,
    }
    with open(os.path.join(os.environ["AXS_TEST_DIR"], "events.jsonl"), "a") as file:
        file.write(json.dumps(event) + "\n")


def rosenbrock_value(x: float, y: float) -> float:
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def rosenbrock(parameters: dict[str, Any]) -> dict[str, float]:
    """Rosenbrock after ``AXS_TEST_SLEEP`` seconds; with ``AXS_TEST_FAIL`` set, x < 0
    raises and x == 0.5 kills its own process."""
    record("start", parameters)
    x, y = parameters["x"], parameters["y"]
    if os.environ.get("AXS_TEST_FAIL") and x < 0:
        raise ValueError(f"no negative x please, got {x}")
    if os.environ.get("AXS_TEST_FAIL") and x == 0.5:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(float(os.environ.get("AXS_TEST_SLEEP", "0")))
    record("end", parameters)
    return {"objective": rosenbrock_value(x, y)}


def sleeper(parameters: dict[str, Any]) -> dict[str, float]:
    """Starts a child that sleeps, then sleeps itself: a trial that never ends."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    record("start", parameters, child=child.pid)
    time.sleep(300)
    return {"objective": 0.0}


def echo(parameters: dict[str, Any]) -> dict[str, Any]:
    return {"objective": 0.0, "echo": parameters["text"]}


# -- helpers ----------------------------------------------------------------------------
def host(
    tmp_path: Path, port_key: str = "LOCALSLURM_SSH_PORT", *, tag: str = "", **overrides: Any
) -> dict[str, Any]:
    """A host entry of the local sshd; its trials log events under ``tmp_path``."""
    env = {
        "AXS_TEST_DIR": str(tmp_path),
        "AXS_TEST_HOST": tag or port_key,
        **overrides.pop("env", {}),
    }
    options = ssh_options(port_key, **{"python": sys.executable, "env": env, **overrides})
    options.setdefault("job_dir", str(tmp_path / "ssh jobs 'q'"))  # a shell-hostile path
    return options


def events(tmp_path: Path, kind: str = "start") -> list[dict[str, Any]]:
    path = tmp_path / "events.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [event for event in map(json.loads, lines) if event["kind"] == kind]


def run_metadata(client: Any, index: int) -> dict[str, Any]:
    return dict(experiment_of(client).trials[index].run_metadata["ax_scheduler"])


def address(port_key: str) -> str:
    env = cluster_env()
    return f"{env['LOCALSLURM_SSH_USER']}@{env['LOCALSLURM_SSH_HOST']}:{env[port_key]}"


def free_port() -> int:
    """A port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def objective_values(client: Any) -> dict[int, float]:
    df = experiment_of(client).lookup_data().df
    return {int(row["trial_index"]): float(row["mean"]) for _, row in df.iterrows()}


class Proxy:
    """A TCP forwarder to an sshd port: a host that can go down while trials run."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # stopped
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def stop(self) -> None:
        """Cut every connection and refuse new ones: the host is down."""
        for sock in [self.listener, *self.sockets]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the threads blocked on it
            sock.close()

    def known_hosts(self, path: Path) -> str:
        """A known_hosts file that trusts sshd's key on the proxy's port."""
        real = Path(cluster_env()["LOCALSLURM_SSH_KNOWN_HOSTS"]).read_text().splitlines()[0]
        path.write_text(f"[127.0.0.1]:{self.port} {real.split(' ', 1)[1]}\n")
        return str(path)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    forwarder = Proxy(int(cluster_env()["LOCALSLURM_SSH_PORT"]))
    yield forwarder
    forwarder.stop()


def our_sshd_sessions() -> list[int]:
    """The sshd processes serving THIS process's connections (not other tests')."""
    ports = {int(cluster_env()[key]) for key in SSH_PORTS}
    ours = {
        conn.laddr.port
        for conn in psutil.Process().net_connections("tcp")
        if conn.raddr and conn.raddr.port in ports and conn.status == psutil.CONN_ESTABLISHED
    }
    found = []
    for pid in sshd_sessions():
        with contextlib.suppress(psutil.Error):
            if any(c.raddr and c.raddr.port in ours for c in psutil.Process(pid).net_connections()):
                found.append(pid)
    return found


@pytest.fixture(autouse=True)
def no_worker_left_running(tmp_path: Path) -> Iterator[None]:
    """After each test (and its scheduler's close), no worker of its job_dir runs."""
    yield

    def workers() -> list[int]:
        return [
            process.pid
            for process in psutil.process_iter(["cmdline"])
            if any(str(tmp_path) in part for part in process.info["cmdline"] or [])
        ]

    # A trial whose host went down finishes there on its own (it is 2 s long).
    assert wait_until(lambda: not workers(), 5), f"workers left running: {workers()}"


# -- the tutorial, on two hosts ---------------------------------------------------------
def sample_load(runner: SSHRunner, loads: list[dict[str, int]], done: threading.Event) -> None:
    while not done.wait(0.05):
        loads.append(dict(runner.load() or {}))


def test_tutorial_run_spreads_trials_over_hosts_within_their_slots(
    tmp_path: Path, scheduler_factory: Any
) -> None:
    client = legacy_client()
    hosts = [
        host(tmp_path, "LOCALSLURM_SSH_PORT", slots=2, env={"AXS_TEST_SLEEP": "1"}),
        host(tmp_path, "LOCALSLURM_SSH_PORT2", slots=1, env={"AXS_TEST_SLEEP": "1"}),
    ]
    runner = SSHRunner(hosts=hosts)
    assert runner.capacity == 3
    scheduler = scheduler_factory(client, runner)
    scheduler.set_objective_function(rosenbrock)
    loads: list[dict[str, int]] = []  # what the progress display reads, sampled
    done = threading.Event()
    sampler = threading.Thread(target=sample_load, args=(runner, loads, done))
    sampler.start()
    with scheduler.batch_trial_context() as batch:
        for i in range(4):
            batch.add_trial({"x": 1.0 - i / 8, "y": 0.25 * i})
    scheduler.run_optimization(max_trials=4)
    done.set()
    sampler.join()

    assert statuses(client) == dict.fromkeys(range(8), "COMPLETED")
    peak_load = {name: max(load[name] for load in loads) for name in loads[0]}
    assert sorted(peak_load.values()) == [1, 2]
    assert set(runner.load().values()) == {0}  # type: ignore[union-attr]
    table = scheduler.results()
    assert set(table["host"]) == set(peak_load)
    trials = experiment_of(client).trials
    expected = {i: rosenbrock_value(**trials[i].arm.parameters) for i in range(8)}
    assert objective_values(client) == pytest.approx(expected)
    starts, ends = events(tmp_path, "start"), events(tmp_path, "end")
    assert len(starts) == len(ends) == 8  # each trial ran exactly once
    by_pid = {event["pid"]: event for event in starts}
    for index in range(8):
        info = run_metadata(client, index)
        assert info["runner"] == "ssh"
        event = by_pid[info["pid"]]  # the recorded pid is the worker's
        assert info["host"] == address(event["host"])
        assert info["stdout"] == info["job_dir"] + "/stdout.log"
    per_host: dict[str, list[tuple[float, float]]] = {}
    end_of = {event["pid"]: event["time"] for event in ends}
    for event in starts:
        per_host.setdefault(event["host"], []).append((event["time"], end_of[event["pid"]]))
    peaks = {name: max_overlap(intervals) for name, intervals in per_host.items()}
    assert peaks == {"LOCALSLURM_SSH_PORT": 2, "LOCALSLURM_SSH_PORT2": 1}


def test_failures_fail_their_trial_and_the_run_goes_on(
    tmp_path: Path, scheduler_factory: Any
) -> None:
    client = legacy_client()
    runner = SSHRunner(hosts=[host(tmp_path, slots=3, env={"AXS_TEST_FAIL": "1"})])
    scheduler = scheduler_factory(client, runner)
    scheduler.set_objective_function(rosenbrock)
    with scheduler.batch_trial_context() as batch:
        batch.add_trial({"x": -1.5, "y": 0.0})  # raises
        batch.add_trial({"x": 0.5, "y": 0.0})  # SIGKILLs itself
        batch.add_trial({"x": 1.0, "y": 1.0})
    with scheduler.batch_trial_context() as batch:
        batch.add_trial({"x": 0.25, "y": 0.0})

    assert statuses(client) == {0: "FAILED", 1: "FAILED", 2: "COMPLETED", 3: "COMPLETED"}
    trials = experiment_of(client).trials
    assert trials[0].status_reason == "ValueError: no negative x please, got -1.5"
    assert trials[1].status_reason.startswith(f"worker on {address(SSH_PORTS[0])} was killed")
    assert "SIGKILL" in trials[1].status_reason
    stderr = Path(run_metadata(client, 0)["stderr"]).read_text()
    assert "Traceback" in stderr
    assert "no negative x please" in stderr


# -- stopping ---------------------------------------------------------------------------
def test_closing_the_scheduler_kills_the_remote_process_group(
    tmp_path: Path, scheduler_factory: Any
) -> None:
    client = legacy_client()
    scheduler = scheduler_factory(
        client,
        SSHRunner(hosts=[host(tmp_path)], config={"stop_grace_seconds": 2}),
        synchronous=False,
    )
    scheduler.set_objective_function(sleeper)
    with scheduler.batch_trial_context() as batch:
        batch.add_trial({"x": 0.1, "y": 0.2})
    assert wait_until(lambda: events(tmp_path), 20), "the trial never started"
    [started] = events(tmp_path)
    worker, child = started["pid"], started["child"]
    assert alive(worker)
    assert alive(child)

    began = time.monotonic()
    scheduler.close()
    assert time.monotonic() - began < 10
    assert not alive(worker)
    assert not alive(child)
    assert statuses(client) == {0: "ABANDONED"}
    assert run_metadata(client, 0)["pid"] == worker


def test_trial_timeout_kills_the_remote_process_group(
    tmp_path: Path, scheduler_factory: Any
) -> None:
    client = legacy_client()
    scheduler = scheduler_factory(client, SSHRunner(hosts=[host(tmp_path)]), trial_timeout=3)
    scheduler.set_objective_function(sleeper)
    scheduler.run_optimization(max_trials=1)

    [started] = events(tmp_path)
    assert not alive(started["pid"])
    assert not alive(started["child"])
    assert statuses(client) == {0: "FAILED"}
    assert "trial_timeout=3" in experiment_of(client).trials[0].status_reason


async def test_closing_the_runner_kills_what_still_runs(tmp_path: Path) -> None:
    runner = SSHRunner(hosts=[host(tmp_path)], config={"stop_grace_seconds": 1})
    job = Job(0, {"x": 0.1}, FunctionObjective(sleeper), "close-test-0")
    running = asyncio.ensure_future(runner.run(job))
    try:
        started_in_time = await asyncio.to_thread(wait_until, lambda: events(tmp_path), 20)
        assert started_in_time, "the trial never started"
        [started] = await asyncio.to_thread(events, tmp_path)
        assert job.info["pid"] == started["pid"]
    finally:
        await runner.aclose()
    with pytest.raises(InfrastructureError, match="runner was closed"):
        await running
    assert not alive(started["pid"])
    assert not alive(started["child"])


async def test_cleanup_finishes_inside_an_anyio_cancel_scope(tmp_path: Path) -> None:
    # anyio re-delivers a scope's cancellation at every await: the kill must be shielded.
    runner = SSHRunner(hosts=[host(tmp_path)], config={"stop_grace_seconds": 1})
    job = Job(0, {"x": 0.1}, FunctionObjective(sleeper), "scope-test-0")
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(runner.run, job)
            started_in_time = await anyio.to_thread.run_sync(
                wait_until, lambda: events(tmp_path), 20
            )
            group.cancel_scope.cancel()
    finally:
        await runner.aclose()
    assert started_in_time, "the trial never started"
    [started] = events(tmp_path)
    assert not alive(started["pid"])
    assert not alive(started["child"])


# -- hosts that are down ----------------------------------------------------------------
def test_hosts_that_are_down_or_cannot_load_the_objective_are_left_out(
    tmp_path: Path, scheduler_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    dead = free_port()
    hosts = [
        host(tmp_path, port=dead, slots=2, reconnect_attempts=0),
        host(tmp_path, "LOCALSLURM_SSH_PORT2", python="/nonexistent/python3"),
        host(tmp_path, "LOCALSLURM_SSH_PORT", slots=2, env={"AXS_TEST_SLEEP": "0.5"}),
    ]
    client = legacy_client()
    scheduler = scheduler_factory(client, SSHRunner(hosts=hosts))
    scheduler.set_objective_function(rosenbrock)
    with caplog.at_level(logging.WARNING, logger="ax_scheduler"):
        scheduler.run_optimization(max_trials=4)

    assert statuses(client) == dict.fromkeys(range(4), "COMPLETED")
    assert {run_metadata(client, i)["host"] for i in range(4)} == {address(SSH_PORTS[0])}
    end_of = {event["pid"]: event["time"] for event in events(tmp_path, "end")}
    intervals = [(event["time"], end_of[event["pid"]]) for event in events(tmp_path)]
    assert max_overlap(intervals) == 2  # the capacity is 5, but only these 2 slots are up
    warnings = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert any(f"127.0.0.1:{dead}" in w and "cannot connect" in w for w in warnings)
    assert any("/nonexistent/python3" in w and address(SSH_PORTS[1]) in w for w in warnings)


def test_every_host_down_at_start_is_a_runner_error_naming_them(
    tmp_path: Path, scheduler_factory: Any
) -> None:
    ports = [free_port(), free_port()]
    hosts = [host(tmp_path, port=port, reconnect_attempts=0) for port in ports]
    scheduler = scheduler_factory(legacy_client(), SSHRunner(hosts=hosts))
    scheduler.set_objective_function(rosenbrock)
    with pytest.raises(RunnerError, match="none of the SSH hosts can be reached") as caught:
        scheduler.run_optimization(max_trials=1)
    for port in ports:
        assert f"root@127.0.0.1:{port}: cannot connect" in str(caught.value)


def test_a_host_lost_mid_trial_is_marked_down_and_its_trial_resubmitted(
    tmp_path: Path, scheduler_factory: Any, proxy: Proxy
) -> None:
    doomed = host(
        tmp_path,
        port=proxy.port,
        known_hosts=proxy.known_hosts(tmp_path / "known_hosts"),
        reconnect_attempts=0,
        tag="proxy",
        env={"AXS_TEST_SLEEP": "2"},
    )
    good = host(tmp_path, "LOCALSLURM_SSH_PORT2", env={"AXS_TEST_SLEEP": "2"})
    client = legacy_client()
    scheduler = scheduler_factory(client, SSHRunner(hosts=[doomed, good]), synchronous=False)
    scheduler.set_objective_function(rosenbrock)
    with scheduler.batch_trial_context() as batch:
        batch.add_trial({"x": 0.1, "y": 0.2})
        batch.add_trial({"x": 0.3, "y": 0.4})
    assert wait_until(lambda: len(events(tmp_path)) == 2, 20), "the trials never started"
    [on_proxy] = [event for event in events(tmp_path) if event["host"] == "proxy"]
    proxy.stop()
    scheduler.wait_for_completed_trials(timeout=30)

    assert statuses(client) == {0: "COMPLETED", 1: "COMPLETED"}
    lost = 0 if on_proxy["x"] == 0.1 else 1
    info = run_metadata(client, lost)
    assert info["host"] == address(SSH_PORTS[1])
    assert info["resubmits"] == 1
    assert info["job_dir"].endswith("-attempt-0-1")
    assert "resubmits" not in run_metadata(client, 1 - lost)


@pytest.mark.parametrize(
    ("max_resubmits", "reason"),
    [(2, "every SSH host is down: root@127.0.0.1:{port}: cannot connect"), (0, "gave up after 0")],
)
def test_a_trial_whose_every_host_is_down_fails_as_infrastructure(
    tmp_path: Path, scheduler_factory: Any, proxy: Proxy, max_resubmits: int, reason: str
) -> None:
    only = host(
        tmp_path,
        port=proxy.port,
        known_hosts=proxy.known_hosts(tmp_path / "known_hosts"),
        reconnect_attempts=0,
        env={"AXS_TEST_SLEEP": "2"},
    )
    runner = SSHRunner(hosts=[only], config={"max_resubmits": max_resubmits})
    client = legacy_client()
    scheduler = scheduler_factory(client, runner, synchronous=False)
    scheduler.set_objective_function(rosenbrock)
    with scheduler.batch_trial_context() as batch:
        batch.add_trial({"x": 0.1, "y": 0.2})
    assert wait_until(lambda: events(tmp_path), 20), "the trial never started"
    proxy.stop()
    scheduler.wait_for_completed_trials(timeout=30)

    assert statuses(client) == {0: "FAILED"}
    assert reason.format(port=proxy.port) in experiment_of(client).trials[0].status_reason


# -- dropped connections ----------------------------------------------------------------
def test_trials_survive_dropped_connections_and_are_reattached_not_rerun(
    tmp_path: Path, scheduler_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    hosts = [
        host(tmp_path, port_key, slots=slots, env={"AXS_TEST_SLEEP": "3"})
        for port_key, slots in zip(SSH_PORTS, (2, 1), strict=True)
    ]
    runner = SSHRunner(hosts=hosts, config={"poll_interval": 0.2})
    client = legacy_client()
    scheduler = scheduler_factory(client, runner, synchronous=False)
    scheduler.set_objective_function(rosenbrock)
    with scheduler.batch_trial_context() as batch:
        for i in range(3):
            batch.add_trial({"x": i / 4, "y": 0.1})
    assert wait_until(lambda: len(events(tmp_path)) == 3, 20), "the trials never started"
    sessions = our_sshd_sessions()
    assert len(sessions) == 2  # one connection per host
    with caplog.at_level(logging.WARNING, logger="ax_scheduler"):
        for pid in sessions:
            os.kill(pid, signal.SIGKILL)
        scheduler.wait_for_completed_trials(timeout=30)

    assert statuses(client) == dict.fromkeys(range(3), "COMPLETED")
    trials = experiment_of(client).trials
    expected = {i: rosenbrock_value(**trials[i].arm.parameters) for i in range(3)}
    assert objective_values(client) == pytest.approx(expected)
    assert len(events(tmp_path, "start")) == 3  # re-attached, never run twice
    assert len(events(tmp_path, "end")) == 3
    reattached = [r.getMessage() for r in caplog.records if "re-attached" in r.getMessage()]
    assert len(reattached) == 3
    assert all("resubmits" not in run_metadata(client, i) for i in range(3))


# -- host keys ----------------------------------------------------------------------------
async def test_a_changed_host_key_is_refused_unless_verification_is_off(tmp_path: Path) -> None:
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{cluster_env()['LOCALSLURM_SSH_PORT']} {impostor}")
    entry = host(tmp_path, known_hosts=str(known_hosts), reconnect_attempts=0)
    runner = SSHRunner(hosts=[entry])
    with pytest.raises(RunnerError, match=re.escape(f"host key of {address(SSH_PORTS[0])} is not")):
        await runner.start()
    await runner.aclose()

    trusting = SSHRunner(hosts=[{**entry, "verify_host_key": False}])
    try:
        await trusting.start()
        job = Job(0, {"x": 0.0, "text": "hi"}, FunctionObjective(echo), "key-test-0")
        assert await trusting.run(job) == {"objective": 0.0, "echo": "hi"}
    finally:
        await trusting.aclose()


# -- input ------------------------------------------------------------------------------
async def test_parameter_values_never_reach_a_shell(tmp_path: Path) -> None:
    runner = SSHRunner(hosts=[host(tmp_path)])
    text = f"$(touch {tmp_path}/a) `touch {tmp_path}/b`; touch {tmp_path}/c ' \" \\ \n"
    try:
        job = Job(0, {"x": 0.0, "text": text}, FunctionObjective(echo), "shell-test-0")
        assert await runner.run(job) == {"objective": 0.0, "echo": text}
    finally:
        await runner.aclose()
    assert not {"a", "b", "c"} & set(os.listdir(tmp_path))


@pytest.mark.parametrize(
    ("hosts", "config", "message"),
    [
        ([], None, "hosts is empty"),
        ({"host": "gpu1"}, None, "hosts must be a list"),
        ([{"host": "gpu1", "slots": 0}], None, "hosts[0]['slots']: input should be greater than 0"),
        ([{"host": "gpu1"}, {"host": "gpu2", "slotz": 2}], None, "unknown hosts[1] key 'slotz'"),
        ([{"host": "gpu1", "slots": 8}], None, "set max_sessions to at least 9"),
        ([{"host": "gpu1", "env": {"A B": "1"}}], None, "variable name 'A B'"),
        (["gpu1"], {"max_resubmitz": 1}, "unknown config key 'max_resubmitz'"),
        (["gpu1"], {"stop_grace_seconds": -1}, "config['stop_grace_seconds']"),
    ],
)
def test_bad_hosts_and_options_are_config_errors_naming_them(
    hosts: Any, config: Any, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        SSHRunner(hosts=hosts, config=config)
    assert message in str(caught.value)


def test_capacity_is_the_sum_of_slots_and_strings_are_host_names() -> None:
    runner = SSHRunner(hosts=["gpu1", {"host": "gpu2", "slots": 3, "username": "me"}])
    assert runner.capacity == 4
    assert [h.address for h in runner.hosts] == ["gpu1:22", "me@gpu2:22"]


def test_the_ssh_hosts_example_runs_on_two_hosts(tmp_path: Path) -> None:
    env = cluster_env()
    ports = [env["LOCALSLURM_SSH_PORT"], env["LOCALSLURM_SSH_PORT2"]]
    example_env = {
        **os.environ,
        "SSH_HOSTS": f"127.0.0.1:{ports[0]}:2,127.0.0.1:{ports[1]}:1",
        "SSH_USER": env["LOCALSLURM_SSH_USER"],
        "SSH_KEY": env["LOCALSLURM_SSH_KEY"],
        "SSH_KNOWN_HOSTS": env["LOCALSLURM_SSH_KNOWN_HOSTS"],
        "SSH_PYTHON": sys.executable,
    }
    example = Path(__file__).parents[1] / "examples" / "ssh_hosts.py"
    result = subprocess.run(
        [sys.executable, str(example)],
        cwd=tmp_path,
        env=example_env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trials = re.findall(r"Trial (\d) on (\S+): (\w+), objective (\S+)", result.stdout)
    assert len(trials) == 8
    assert {status for _, _, status, _ in trials} == {"COMPLETED"}
    assert {host.rsplit(":", 1)[1] for _, host, _, _ in trials} == set(ports)
    assert float(trials[0][3]) == 6.5


# -- script objectives --------------------------------------------------------------------
def test_script_objectives_run_on_the_hosts_and_hostile_values_stay_data(
    tmp_path: Path, scheduler_factory: Any
) -> None:
    """The script is uploaded once per host; its argv never passes through a shell."""
    from test_scripts import (
        HOSTILE,
        ROSENBROCK_OPTIONS,
        SCRIPTS,
        assert_hostile_values_stayed_data,
        client_with_label,
        run_hostile_batch,
    )

    client = client_with_label()
    hosts = [host(tmp_path, slots=2), host(tmp_path, "LOCALSLURM_SSH_PORT2", slots=2)]
    scheduler = scheduler_factory(client, SSHRunner(hosts=hosts))
    scheduler.set_script_objective(SCRIPTS / "rosenbrock.py", ROSENBROCK_OPTIONS)
    run_hostile_batch(scheduler)

    assert_hostile_values_stayed_data(client, lambda i: Path(run_metadata(client, i)["job_dir"]))
    used = {run_metadata(client, index)["host"] for index in range(len(HOSTILE))}
    assert used == {address(key) for key in SSH_PORTS}
    [script] = Path(run_metadata(client, 0)["job_dir"]).parent.glob("script-*")
    assert re.fullmatch(r"script-[0-9a-f]{16}-rosenbrock\.py", script.name)  # by content
    assert script.stat().st_mode & 0o777 == 0o755
    assert not list(tmp_path.rglob("pwned"))


def test_failing_and_hanging_scripts_fail_with_exit_code_stderr_or_timeout(
    tmp_path: Path, scheduler_factory: Any
) -> None:
    client = legacy_client()
    scheduler = scheduler_factory(client, SSHRunner(hosts=[host(tmp_path, slots=3)]))
    scheduler.set_script_objective(
        dispatcher(tmp_path, ["exit3", "noresult", "hang"]),
        script_options={"interpreter": "sh", "args": ["{trial_index}"], "timeout": 3},
    )
    with scheduler.batch_trial_context() as batch:
        for i in range(3):
            batch.add_trial({"x": i / 4, "y": 0.0})

    assert statuses(client) == {0: "FAILED", 1: "FAILED", 2: "FAILED"}
    reasons = [run_metadata(client, i)["failure_reason"] for i in range(3)]
    where = f"script on {address(SSH_PORTS[0])} exited with code"
    assert reasons[0] == f"{where} 3; stderr ends: simulation diverged at step 42"
    assert (
        reasons[1] == f"{where} 0 and wrote no result.json; stderr ends: forgot to write the result"
    )
    assert reasons[2] == "timeout: ran longer than its timeout of 3 s"
    workdir = Path(run_metadata(client, 2)["job_dir"])
    for name in ("script.pid", "child.pid"):
        pid = int((workdir / name).read_text())
        assert wait_until(lambda pid=pid: not alive(pid), 10), f"{name} {pid} still runs"


async def test_script_failures_are_objective_errors_and_timeouts_timeout_errors(
    tmp_path: Path,
) -> None:
    from ax_scheduler._exceptions import ObjectiveError, TrialTimeoutError
    from ax_scheduler._jobs import ScriptObjective

    runner = SSHRunner(hosts=[host(tmp_path, slots=2)])
    script = dispatcher(tmp_path, ["exit3", "hang"])
    objective = ScriptObjective(script, "sh", ("{trial_index}",), timeout=1)
    try:
        await runner.check_objective(objective)
        failing = runner.run(Job(0, {"x": 0.0}, objective, "script-test-0"))
        hanging = runner.run(Job(1, {"x": 0.0}, objective, "script-test-1"))
        outcomes = await asyncio.gather(failing, hanging, return_exceptions=True)
    finally:
        await runner.aclose()
    assert type(outcomes[0]) is ObjectiveError
    assert type(outcomes[1]) is TrialTimeoutError
    assert str(outcomes[1]) == "timeout: ran longer than its timeout of 1 s"


def test_closing_the_scheduler_stops_a_scripts_own_process_group_too(
    tmp_path: Path, scheduler_factory: Any
) -> None:
    """The worker starts the script in a process group of its own: stopping the
    worker's group must reach it too, within the runner's grace period, even when
    the script ignores SIGTERM."""
    client = legacy_client()
    runner = SSHRunner(hosts=[host(tmp_path)], config={"stop_grace_seconds": 2})
    scheduler = scheduler_factory(client, runner, synchronous=False)
    scheduler.set_script_objective(
        dispatcher(tmp_path, ["stubborn"]), script_options={"interpreter": "sh", "args": ["0"]}
    )
    with scheduler.batch_trial_context() as batch:
        batch.add_trial({"x": 0.1, "y": 0.2})
    workdir = tmp_path / "never"

    def started() -> bool:
        nonlocal workdir
        found = list(tmp_path.rglob("child.pid"))
        if found:
            workdir = found[0].parent
        return bool(found) and (workdir / "script.pid").exists()

    assert wait_until(started, 20), "the script never started"
    pids = [int((workdir / name).read_text()) for name in ("script.pid", "child.pid")]
    assert all(alive(pid) for pid in pids)
    scheduler.close()
    assert statuses(client) == {0: "ABANDONED"}
    for pid in pids:
        assert wait_until(lambda pid=pid: not alive(pid), 5), f"{pid} survived the stop"
