"""SlurmRunner under faults: N trials on the local cluster over SSH, a fault every K.

Run from the repository root with the cluster up (``bash ci/start-slurm.sh``)::

    python bench/slurm_faults.py                                      # 1000 trials
    python bench/slurm_faults.py --trials 120 --every 30 --sleep 0.1  # quicker

The requirement it checks: N trials (Rosenbrock after a ``--sleep`` s nap, Sobol
candidates, ``run_optimization`` with up to ``--parallel`` trials queued in Slurm)
go to the local cluster through SSH while a fault is injected each time another
``--every`` trials have finished, in rotation:

1. ``ssh``: the runner's SSH connection is killed from the server side (SIGKILL to
   the sshd process serving this process's connection; other clients of the
   login node, such as tests running at the same time, keep theirs);
2. ``scancel``: one RUNNING array task of this run is cancelled with ``scancel``
   from outside the runner; its trial must end FAILED with that reason;
3. ``slurmctld``: the controller is stopped (SIGTERM: it saves its state) and
   started again as ``ci/start-slurm.sh`` starts it, with the same config and
   StateSaveLocation, so queued and running jobs survive.

Progress is counted by a ``logging.Handler`` on the ``ax_scheduler`` logger (the
scheduler logs every trial it completes, fails or abandons); the experiment is
only read after the run. Warnings and errors of the library go to stderr.

Printed: the trials by status (FAILED and ABANDONED with a count per distinct
first-line reason, job ids masked, then each one), the faults with the number of
finished trials at which each happened, wall time, trials/s, ``runner.stats``,
Slurm's own view (sacct: how each trial's last job ended, arrays submitted more
than once, tasks no trial follows), the run's jobs still in ``squeue``, and
whether the counts reconcile: COMPLETED + FAILED + ABANDONED == total == N, and
every FAILED trial has a failure reason in its run metadata. The exit status is
non-zero if they do not, if a trial stays RUNNING, if a job of the run is still
queued, if an array was submitted twice, if the run raised or timed out, or if a
planned fault could not be injected. The job directory is removed after a clean
run and kept otherwise.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from ax.adapter.registry import Generators
from ax.generation_strategy.generation_strategy import GenerationStep, GenerationStrategy
from ax.service.ax_client import AxClient, ObjectiveProperties
from slurm_objectives import sleepy_rosenbrock
from slurm_scale import cluster_env, ssh_options

from ax_scheduler import AxScheduler, SlurmRunner

BENCH = Path(__file__).resolve().parent
FAULTS = ("ssh", "scancel", "slurmctld")
FINISHED = re.compile(r"^trial (\d+) (completed|failed|abandoned)\b")
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL")

log = logging.getLogger("slurm_faults")


# -- the run ------------------------------------------------------------------------
def make_client(seconds: float) -> AxClient:
    """Rosenbrock's x, y in [-2, 2] (the tests' experiment), Sobol candidates only."""
    strategy = GenerationStrategy(nodes=[GenerationStep(generator=Generators.SOBOL, num_trials=-1)])
    client = AxClient(generation_strategy=strategy, verbose_logging=False)
    client.create_experiment(
        name="slurm_faults",
        parameters=[
            {"name": "x", "type": "range", "bounds": [-2.0, 2.0], "value_type": "float"},
            {"name": "y", "type": "range", "bounds": [-2.0, 2.0], "value_type": "float"},
            {"name": "seconds", "type": "fixed", "value": seconds},
        ],
        objectives={"objective": ObjectiveProperties(minimize=True)},
    )
    return client


def make_runner(env: dict[str, str], jobs_dir: Path, parallel: int) -> SlurmRunner:
    return SlurmRunner(
        partition=env["LOCALSLURM_PARTITION"],
        time_limit="00:10:00",
        memory="100M",
        config={
            "python": sys.executable,
            "job_dir": str(jobs_dir),
            # jobs import slurm_objectives by name, like a user's installed module
            "setup": [f"export PYTHONPATH={BENCH}"],
            "max_parallel": parallel,
        },
        ssh=ssh_options(),
    )


class Progress(logging.Handler):
    """Counts the trials the scheduler reports finished; keeps its warnings and errors."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.finished = 0
        self.changed = threading.Condition()
        self.problems: collections.Counter[str] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.problems[f"{record.levelname} {record.msg}"] += 1
        if FINISHED.match(record.getMessage()):
            with self.changed:
                self.finished += 1
                self.changed.notify_all()


# -- faults -------------------------------------------------------------------------
@dataclass
class Fault:
    number: int
    kind: str
    at: int  # trials finished when it was injected
    seconds: float = 0.0  # how long injecting it took
    detail: str = ""
    job: str | None = None  # scancel: the array task cancelled
    error: str | None = None


def slurm(env: dict[str, str], *argv: str, check: bool = True) -> str:
    """Run a Slurm command here, on the cluster's config; its stdout."""
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip() or result.returncode}")
    return result.stdout


def alive(proc: psutil.Process) -> bool:
    """Whether it runs: an exited daemon stays a zombie until PID 1 reaps it."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for(condition: Any, seconds: float, what: str, pause: float = 0.2) -> Any:
    deadline = time.monotonic() + seconds
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {seconds:g} s waiting for {what}")
        time.sleep(pause)
    return result


def kill_our_ssh_connection(env: dict[str, str], port: int) -> str:
    """SIGKILL the sshd process serving THIS process's connection to the login node."""
    listener = int((Path(env["LOCALSLURM_ROOT"]) / "run" / "sshd.pid").read_text())
    me = os.getpid()

    def servers() -> dict[int, int]:
        conns = psutil.net_connections("tcp")
        ours = {
            c.laddr.port
            for c in conns
            if c.pid == me and c.raddr and c.raddr.port == port and c.status == "ESTABLISHED"
        }
        found = {}
        for c in conns:
            if c.pid and c.laddr.port == port and c.raddr and c.raddr.port in ours:
                try:
                    server = psutil.Process(c.pid)
                    if server.ppid() == listener and server.name() == "sshd":
                        found[c.pid] = c.raddr.port
                except psutil.NoSuchProcess:
                    continue
        return found

    # The runner may be between connections (reconnecting): wait for the next one.
    found = wait_for(servers, 60, "an SSH connection of this process", pause=0.1)
    for pid in found:
        os.kill(pid, signal.SIGKILL)
    return "SIGKILL to " + ", ".join(
        f"sshd pid {pid} (our local port {local})" for pid, local in found.items()
    )


def cancel_a_running_job(env: dict[str, str], jobs_dir: str) -> tuple[str, str]:
    """scancel one RUNNING array task of this run, from outside; (task id, detail)."""
    tried = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        out = slurm(env, "squeue", "-h", "-t", "RUNNING", "-o", "%i|%o", check=False)
        running = [line.split("|")[0] for line in out.splitlines() if jobs_dir in line]
        running = [job for job in running if job not in tried and "[" not in job]
        if not running:
            time.sleep(0.2)
            continue
        job = running[0]
        tried.append(job)
        slurm(env, "scancel", job, check=False)

        def state(job: str = job) -> str | None:
            out = slurm(env, "sacct", "-n", "-P", "-X", "-j", job, "-o", "State", check=False)
            words = out.split()
            return words[0] if words and words[0] in TERMINAL else None

        ended = wait_for(state, 60, f"sacct to show {job} ended", pause=0.5)
        if ended == "CANCELLED":
            missed = f" (finished before scancel: {', '.join(tried[:-1])})" if tried[1:] else ""
            return job, f"scancel {job} -> CANCELLED{missed}"
    raise RuntimeError(f"no RUNNING job of this run could be cancelled (tried {tried})")


def restart_slurmctld(env: dict[str, str]) -> str:
    """Stop slurmctld and start it again as ci/start-slurm.sh does (same state dir)."""
    root = env["LOCALSLURM_ROOT"]
    pidfile = Path(root) / "run" / "slurmctld.pid"
    old = psutil.Process(int(pidfile.read_text()))
    # The pid file must be this cluster's slurmctld (ci/*.sh guard against pid reuse too)
    if old.name() != "slurmctld" or root not in old.environ().get("SLURM_CONF", ""):
        raise RuntimeError(f"pid {old.pid} in {pidfile} is not this cluster's slurmctld")
    stopped = time.monotonic()
    old.terminate()
    try:
        wait_for(lambda: not alive(old), 30, f"slurmctld {old.pid} to exit", pause=0.1)
    except RuntimeError:
        old.kill()
        wait_for(lambda: not alive(old), 10, f"slurmctld {old.pid} to die", pause=0.1)
    # New session: a Ctrl-C of this bench must not reach the daemon.
    subprocess.run(
        ["slurmctld"],
        env=env,
        check=True,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=60,
    )
    wait_for(lambda: "UP" in slurm(env, "scontrol", "ping", check=False), 60, "slurmctld UP")
    down = time.monotonic() - stopped
    return f"slurmctld pid {old.pid} -> {pidfile.read_text().strip()}, down {down:.1f} s"


class Injector(threading.Thread):
    """Injects the next fault each time another ``every`` trials have finished."""

    def __init__(
        self, progress: Progress, env: dict[str, str], jobs_dir: str, trials: int, every: int
    ) -> None:
        super().__init__(name="fault-injector", daemon=True)
        self.progress, self.env, self.jobs_dir = progress, env, jobs_dir
        self.thresholds = list(range(every, trials, every))
        self.faults: list[Fault] = []
        self.stopping = False
        self.started_at = time.monotonic()

    def stop(self) -> None:
        with self.progress.changed:
            self.stopping = True
            self.progress.changed.notify_all()
        self.join()

    def run(self) -> None:
        for number, threshold in enumerate(self.thresholds, 1):
            while True:
                with self.progress.changed:
                    reached = self.progress.changed.wait_for(
                        lambda t=threshold: self.stopping or self.progress.finished >= t, 60
                    )
                    finished = self.progress.finished
                if self.stopping:
                    return
                if reached:
                    break
                log.info("[%5.0f s] %d trials finished", self.elapsed, finished)
            self.inject(Fault(number, FAULTS[(number - 1) % len(FAULTS)], finished))

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def inject(self, fault: Fault) -> None:
        log.info(
            "[%5.0f s] fault %d (%s) at %d finished",
            self.elapsed,
            fault.number,
            fault.kind,
            fault.at,
        )
        started = time.monotonic()
        try:
            if fault.kind == "ssh":
                fault.detail = kill_our_ssh_connection(
                    self.env, int(self.env["LOCALSLURM_SSH_PORT"])
                )
            elif fault.kind == "scancel":
                fault.job, fault.detail = cancel_a_running_job(self.env, self.jobs_dir)
            else:
                fault.detail = restart_slurmctld(self.env)
        except Exception as exc:  # noqa: BLE001 - reported, and the run goes on
            fault.error = f"{type(exc).__name__}: {exc}"
            log.error(
                "fault %d (%s) could not be injected: %s", fault.number, fault.kind, fault.error
            )
        fault.seconds = time.monotonic() - started
        self.faults.append(fault)
        log.info(
            "[%5.0f s] fault %d done: %s", self.elapsed, fault.number, fault.detail or fault.error
        )


# -- the report ---------------------------------------------------------------------
def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def masked(reason: str) -> str:
    """The reason without what differs per trial (job ids, trial numbers)."""
    reason = re.sub(r"\b\d+_\d+\b", "<job>", reason)
    return re.sub(r"\btrial \d+", "trial <n>", reason)


def run_info(trial: Any) -> dict[str, Any]:
    return dict(trial.run_metadata.get("ax_scheduler", {}))


def slurm_jobs_of_run(
    env: dict[str, str], names: set[str], since: str
) -> dict[str, dict[str, str]]:
    """Every array task Slurm ran for this run since ``since``: name -> {task id: state}.

    The runner names the arrays of one run ``axs-<session>-a<number>``; the names
    recorded in the trials' run metadata give the session.
    """
    prefixes = {name.rsplit("-a", 1)[0] + "-a" for name in names}
    out = slurm(env, "sacct", "-n", "-P", "-X", "-S", since, "-o", "JobID,JobName,State")
    jobs: dict[str, dict[str, str]] = collections.defaultdict(dict)
    for line in out.splitlines():
        job, name, state = [*line.split("|"), "", ""][:3]
        prefix = name.rsplit("-a", 1)[0] + "-a"
        if prefix in prefixes and name[len(prefix) :].isdigit():
            jobs[name][job] = state.split()[0] if state.split() else "?"
    return jobs


def ours_in_queue(env: dict[str, str], jobs_dir: str) -> list[str]:
    out = slurm(env, "squeue", "-h", "-o", "%i|%T|%o")
    return [line.rsplit("|", 1)[0] for line in out.splitlines() if jobs_dir in line]


@dataclass
class Run:
    """What the run left behind, for the report."""

    args: argparse.Namespace
    env: dict[str, str]
    jobs_dir: str
    since: str  # sacct -S: a little before the run started
    wall: float = 0.0
    crash: str | None = None
    timed_out: bool = False


def report_trials(run: Run, trials: dict[int, Any]) -> tuple[bool, bool]:
    """Trials by status with failure reasons; (counts reconcile, some trial RUNNING)."""
    by_status: dict[str, list[int]] = collections.defaultdict(list)
    for index, trial in trials.items():
        by_status[trial.status.name].append(index)
    completed, failed = by_status.pop("COMPLETED", []), by_status.pop("FAILED", [])
    abandoned, running = by_status.pop("ABANDONED", []), by_status.pop("RUNNING", [])
    reasons = {i: first_line(str(run_info(trials[i]).get("failure_reason", ""))) for i in trials}
    print(f"trials total: {len(trials)} (asked for {run.args.trials})")
    print(f"  COMPLETED  {len(completed)}")
    for name, indices in (("FAILED", failed), ("ABANDONED", abandoned)):
        print(f"  {name:<10} {len(indices)}")
        for reason, count in collections.Counter(masked(reasons[i]) for i in indices).most_common():
            print(f"      {count:4d} x {reason or '(no reason recorded)'}")
        for i in indices:
            job = run_info(trials[i]).get("slurm_job_id", "-")
            print(f"      trial {i} (job {job}): {reasons[i] or '(none)'}")
    print(f"  RUNNING    {len(running)}{'  ' + str(running) if running else ''}")
    for name, indices in sorted(by_status.items()):
        print(f"  {name:<10} {len(indices)}  {indices}")
    no_reason = [i for i in failed if not reasons[i]]
    if no_reason:
        print(f"  FAILED trials without a failure reason: {no_reason}")
    total = len(completed) + len(failed) + len(abandoned)
    return total == len(trials) == run.args.trials and not no_reason, bool(running)


def report_faults(injector: Injector, trials: dict[int, Any]) -> bool:
    """The faults and what each did; whether all planned ones were injected."""
    injected = sum(fault.error is None for fault in injector.faults)
    print(f"faults injected: {injected} of {len(injector.thresholds)} planned")
    trial_of_job = {run_info(t).get("slurm_job_id"): i for i, t in trials.items()}
    for fault in injector.faults:
        what = f"NOT INJECTED: {fault.error}" if fault.error else fault.detail
        print(
            f"  #{fault.number} {fault.kind:<9} at {fault.at:4d} finished trials"
            f" ({fault.seconds:.1f} s): {what}"
        )
        if fault.job is not None:
            index = trial_of_job.get(fault.job)
            if index is None:
                print(f"      -> {fault.job} is no trial's last job")
            else:
                reason = first_line(str(run_info(trials[index]).get("failure_reason", "")))
                print(f"      -> trial {index} {trials[index].status.name}: {reason}")
    return injected == len(injector.thresholds)


def report_slurm(run: Run, trials: dict[int, Any]) -> tuple[bool, bool]:
    """Slurm's view of the run; (no array submitted twice, nothing left in squeue)."""
    job_of = {i: str(run_info(t).get("slurm_job_id", "")) for i, t in trials.items()}
    names = {str(run_info(t).get("slurm_job_name", "")) for t in trials.values()} - {""}
    ran = slurm_jobs_of_run(run.env, names, run.since)
    arrays = {name: sorted({job.split("_")[0] for job in ran[name]}, key=int) for name in ran}
    tasks = {job: state for jobs in ran.values() for job, state in jobs.items()}
    last = collections.Counter(tasks.get(job, "not in sacct") for job in job_of.values() if job)
    print(
        f"Slurm ran {len(tasks)} array tasks in {sum(map(len, arrays.values()))} arrays;"
        f" the trials' last jobs ended {dict(last.most_common())}"
    )
    mismatched = [
        i
        for i, t in trials.items()
        if t.status.name == "COMPLETED" and tasks.get(job_of[i]) != "COMPLETED"
    ]
    if mismatched:
        print(f"  COMPLETED trials whose job is not COMPLETED in sacct: {mismatched}")
    duplicates = {name: ids for name, ids in arrays.items() if len(ids) > 1}
    print(f"  arrays submitted more than once (one name, several job ids): {len(duplicates)}")
    for name, ids in duplicates.items():
        holders = [i for i, t in trials.items() if run_info(t).get("slurm_job_name") == name]
        print(f"      {name}: jobs {', '.join(ids)}; trial(s) {holders} follow only the last")
    tracked = set(job_of.values())
    untracked = {job: state for job, state in tasks.items() if job not in tracked}
    print(f"  tasks that are no trial's last job: {untracked or 'none'}")
    leftovers = ours_in_queue(run.env, run.jobs_dir)
    print(f"squeue leftovers of this run: {leftovers or 'none'}")
    return not duplicates, not leftovers


def report(
    run: Run, client: AxClient, runner: SlurmRunner, injector: Injector, progress: Progress
) -> bool:
    """Print the report; whether the run met the requirement."""
    trials = dict(client.experiment.trials)
    reconciles, running = report_trials(run, trials)
    all_injected = report_faults(injector, trials)
    rate = len(trials) / run.wall if run.wall else 0.0
    print(f"wall time: {run.wall:.1f} s, {rate:.2f} trials/s")
    stats = ", ".join(f"{key} {value}" for key, value in runner.stats.items())
    connects = getattr(runner.transport, "connects", "?")
    print(f"runner.stats: {stats}; SSH connections made: {connects}")
    submitted_once, queue_empty = report_slurm(run, trials)
    if progress.problems:
        print("library warnings/errors logged (by message template):")
        for message, count in progress.problems.most_common():
            print(f"  {count:4d} x {message}")
    if run.crash:
        print(f"run_optimization raised: {run.crash}")
    if run.timed_out:
        print(f"run_optimization timed out after {run.args.timeout:g} s")
    print(f"counts reconcile: {'yes' if reconciles else 'no'}")
    print(f"each array submitted once: {'yes' if submitted_once else 'no'}")
    return (
        reconciles
        and not running
        and queue_empty
        and submitted_once
        and all_injected
        and not run.crash
        and not run.timed_out
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=1000, help="trials (default 1000)")
    parser.add_argument("--every", type=int, default=100, help="finished trials between faults")
    parser.add_argument("--sleep", type=float, default=0.2, help="each trial's sleep, s")
    parser.add_argument("--parallel", type=int, default=50, help="runner max_parallel")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="run_optimization timeout, s (default 60 + 5 s/trial)",
    )
    args = parser.parse_args()
    if args.timeout is None:
        args.timeout = 60 + 5.0 * args.trials
    env = {**os.environ, **cluster_env()}
    if "UP" not in slurm(env, "scontrol", "ping", check=False):
        sys.exit("slurmctld is not UP: start the cluster with `bash ci/start-slurm.sh`")

    logging.getLogger("ax").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="The `AxClient` class is deprecated")
    stderr = logging.StreamHandler()
    stderr.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    stderr.setLevel(logging.WARNING)
    library = logging.getLogger("ax_scheduler")
    library.setLevel(logging.INFO)
    progress = Progress()
    library.addHandler(progress)
    library.addHandler(stderr)
    log.setLevel(logging.INFO)
    log.addHandler(logging.StreamHandler())
    log.handlers[0].setFormatter(logging.Formatter("%(asctime)s %(message)s"))

    run = Run(args, env, os.path.realpath(tempfile.mkdtemp(prefix="axs-faults-")), "")
    client = make_client(args.sleep)
    runner = make_runner(env, Path(run.jobs_dir), args.parallel)
    injector = Injector(progress, env, run.jobs_dir, args.trials, args.every)
    print(
        f"{args.trials} trials ({args.sleep:g} s sleep + Rosenbrock), a fault every"
        f" {args.every} finished, max_parallel {args.parallel}; jobs under {run.jobs_dir}",
        flush=True,
    )
    run.since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 5))
    started = time.monotonic()
    with AxScheduler(client, runner, config={"monitoring_interval": 2}) as scheduler:
        scheduler.set_objective_function(sleepy_rosenbrock)
        injector.started_at = started
        injector.start()
        try:
            scheduler.run_optimization(max_trials=args.trials, timeout=args.timeout)
            run.timed_out = bool(scheduler.last_run and scheduler.last_run.timed_out)
        except Exception as exc:  # noqa: BLE001 - reported with the counts
            run.crash = f"{type(exc).__name__}: {first_line(str(exc))}"
        run.wall = time.monotonic() - started
        injector.stop()
    ok = report(run, client, runner, injector, progress)
    if ok:
        shutil.rmtree(run.jobs_dir, ignore_errors=True)
    else:
        print(f"job files kept under {run.jobs_dir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
