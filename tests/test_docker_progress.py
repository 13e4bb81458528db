"""Container trials that report while they run, on DockerRunner against a real engine.

The objective is a busybox ``sh`` loop (tests/curves.py's learning curve): each
step, awk reads the parameters from ``$JOB_PARAMS_FILE`` and appends a progress
line to ``$JOB_PROGRESS_FILE`` (``/job/progress.jsonl``, the mounted trial folder);
step 2's line is malformed on purpose. The parameters are data awk reads from a
file: they never pass through the shell. The batches run good trials first, so
which trials a percentile strategy stops is known in advance.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ax_scheduler import AxScheduler, CheckpointError, DockerRunner
from ax_scheduler._ax import client_from_snapshot
from ax_scheduler._checkpoint import read_checkpoint
from conftest import experiment_of, legacy_client, modern_client, statuses, wait_until
from test_docker import our_containers, require_docker
from test_early_stopping import BAD, EARLY_STOPPING, GOOD, run_batch, steps_in_ax

pytestmark = pytest.mark.docker

IMAGE = "localtest:latest"

#: tests/curves.py's loss at ``step`` from a params.json (one ``"name": value`` a
#: line); with ``result=1`` the result file's object instead of a progress line.
LOSS_AWK = r"""
{ gsub(/[{}", ]/, ""); split($0, kv, ":"); if (kv[1] != "") v[kv[1]] = kv[2] }
END {
  loss = (v["x"] * v["x"] + v["y"] * v["y"] + 0.1) * (1 + 5 / (step + 1))
  if (result) printf "{\"objective\": %.6f}\n", loss
  else printf "{\"step\": %d, \"objective\": %.6f}\n", step, loss
}
"""

#: ``sh /app/curve.sh STEPS SECONDS``: one progress line a step, then the result.
CURVE_SH = r"""
step=0
while [ "$step" -lt "$1" ]; do
  sleep "$2"
  if [ "$step" -eq 2 ]; then
    echo '{not json' >> "$JOB_PROGRESS_FILE"
  else
    awk -v step="$step" -f /app/loss.awk "$JOB_PARAMS_FILE" >> "$JOB_PROGRESS_FILE"
  fi
  step=$((step + 1))
done
awk -v step=$(($1 - 1)) -v result=1 -f /app/loss.awk "$JOB_PARAMS_FILE" > "$JOB_OUTPUT_FILE"
"""

#: The curve, but a SIGTERM is only noted (a line in the trial folder's ``terms``).
STUBBORN_SH = r"""
trap 'echo TERM >> "$JOB_WORKDIR/terms"' TERM
. /app/curve.sh
"""

STEPS = 30


@pytest.fixture(autouse=True)
def docker_engine() -> Iterator[None]:
    """A reachable engine before each test; none of our containers left after it."""
    require_docker()
    yield
    assert wait_until(lambda: our_containers() == [], 10), our_containers()


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """The curve programs, mounted read-only at /app."""
    folder = tmp_path / "app"
    folder.mkdir()
    for name, text in [
        ("loss.awk", LOSS_AWK),
        ("curve.sh", CURVE_SH),
        ("stubborn.sh", STUBBORN_SH),
    ]:
        (folder / name).write_text(text)
    return folder


def curve(app: Path, program: str, steps: int, seconds: float) -> tuple[Any, ...]:
    """``set_container_objective``'s arguments for one of the programs in ``app``."""
    command = ["sh", f"/app/{program}", str(steps), str(seconds)]
    return IMAGE, command, {"volumes": {str(app): "/app:ro"}, "network": "none"}


def set_curve(scheduler: AxScheduler, app: Path, program: str, steps: int, seconds: float) -> None:
    scheduler.set_container_objective(*curve(app, program, steps, seconds))


def progress_lines(folder: Path) -> int:
    path = folder / "progress.jsonl"
    return path.read_text().count("\n") if path.exists() else 0


def test_a_containers_progress_lines_are_its_curve_and_sigterm_stops_the_bad_ones(
    app: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = legacy_client()
    out = tmp_path / "out"
    # A grace far longer than a whole curve: a bad trial that SIGTERM did not end
    # would run to its end and complete.
    config = {
        "job_output_dir": str(out),
        "early_stopping": EARLY_STOPPING,
        "early_stopping_grace": 60.0,
    }
    # init: the loop sets no SIGTERM handler, which as the container's PID 1 would
    # make it ignore the signal; under the engine's init it ends like anywhere else.
    runner = DockerRunner(max_parallel=2, init=True)
    with AxScheduler(client, runner, config) as scheduler:
        set_curve(scheduler, app, "curve.sh", STEPS, 0.1)
        with caplog.at_level(logging.WARNING, logger="ax_scheduler"):
            run_batch(scheduler, GOOD + BAD)
    assert statuses(client) == {
        0: "COMPLETED",
        1: "COMPLETED",
        2: "EARLY_STOPPED",
        3: "EARLY_STOPPED",
    }
    steps = steps_in_ax(client)
    every_step = [float(step) for step in range(STEPS) if step != 2]  # step 2's line is bad
    assert steps[0] == steps[1] == every_step
    for stopped in (2, 3):  # stopped once past min_progression, and it ended there
        assert 5 <= max(steps[stopped]) < STEPS - 5
        assert progress_lines(out / f"test_experiment-trial-{stopped}") < STEPS - 5
    reason = experiment_of(client).trials[2].run_metadata["ax_scheduler"]["early_stop_reason"]
    assert "percentile" in reason
    skipped = [r.getMessage() for r in caplog.records if "progress line" in r.getMessage()]
    progress_file = out / "test_experiment-trial-0" / "progress.jsonl"
    assert f"trial 0: progress line 3 of {progress_file} skipped: not JSON" in " ".join(skipped)


def test_a_container_that_ignores_sigterm_is_stopped_after_the_grace(
    app: Path, tmp_path: Path
) -> None:
    client = modern_client()
    out = tmp_path / "out"
    config = {
        "job_output_dir": str(out),
        "early_stopping": {**EARLY_STOPPING, "min_curves": 1},
        "early_stopping_grace": 0.5,
    }
    # No init: the trap is the container's PID 1's own handler, so the signal arrives.
    runner = DockerRunner(max_parallel=1, stop_grace_seconds=1)
    with AxScheduler(client, runner, config) as scheduler:
        set_curve(scheduler, app, "curve.sh", 10, 0.05)
        run_batch(scheduler, GOOD[:1])
        set_curve(scheduler, app, "stubborn.sh", 100_000, 0.1)  # hours, unless stopped
        run_batch(scheduler, BAD[:1])
    assert statuses(client) == {0: "COMPLETED", 1: "EARLY_STOPPED"}
    terms = (out / "test_experiment-trial-1" / "terms").read_text().split()
    assert set(terms) == {"TERM"}  # it was told (at least once), and went on regardless


DRIVER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from conftest import legacy_client
    from ax_scheduler import AxScheduler, DockerRunner
    config = {{"job_output_dir": {out!r}, "checkpoint_path": {checkpoint!r}, "progress": False}}
    with AxScheduler(legacy_client(), DockerRunner(max_parallel=1), config) as scheduler:
        scheduler.set_container_objective(*{objective!r})
        with scheduler.batch_trial_context() as batch:
            batch.add_trial({{"x": 0.5, "y": 0.5}})
    """
)


def checkpoint_steps(path: Path) -> list[float]:
    """Trial 0's steps in the checkpoint while its container runs (none before)."""
    try:
        client = client_from_snapshot(read_checkpoint(path).client)
    except CheckpointError:
        return []  # not written yet
    trial = experiment_of(client).trials.get(0)
    if trial is None or trial.status.name != "RUNNING":
        return []
    return steps_in_ax(client).get(0, [])


def test_a_resumed_driver_reads_a_running_containers_progress_again_and_records_the_rest(
    app: Path, tmp_path: Path
) -> None:
    out, checkpoint = tmp_path / "out", tmp_path / "run.json"
    driver = DRIVER.format(
        tests=str(Path(__file__).parent),
        out=str(out),
        checkpoint=str(checkpoint),
        objective=curve(app, "curve.sh", STEPS, 0.15),
    )
    process = subprocess.Popen([sys.executable, "-c", driver], cwd=tmp_path)
    try:
        recorded = wait_until(
            lambda: process.poll() is not None or len(checkpoint_steps(checkpoint)) >= 3, 60
        )
        assert process.poll() is None, "the driver ended before it was killed"
        assert recorded, "the checkpoint never held part of the curve"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    in_checkpoint = checkpoint_steps(checkpoint)
    assert max(in_checkpoint) < STEPS - 5  # the container went on without a driver

    runner = DockerRunner(max_parallel=1)
    with AxScheduler.resume(checkpoint, runner, config={"progress": False}) as scheduler:
        set_curve(scheduler, app, "curve.sh", STEPS, 0.15)
        scheduler.wait_for_completed_trials(timeout=60)
        client = scheduler.ax_client
    assert statuses(client) == {0: "COMPLETED"}
    # Every step once: the lines written while no driver watched, and none twice.
    assert steps_in_ax(client)[0] == [float(step) for step in range(STEPS) if step != 2]
    assert progress_lines(out / "test_experiment-trial-0") == STEPS
