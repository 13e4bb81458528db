"""A driver SIGKILLed while a script trial reports, then resumed: its curve goes on.

The script outlives the driver (it runs in its own session). The checkpoint holds
the steps recorded before the kill; the resumed driver re-attaches the script,
reads its progress file again from the start, records only the steps Ax does not
have, and completes the trial with its whole curve.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from ax_scheduler import AxScheduler, Event, JobLibRunner
from conftest import experiment_of, wait_until
from test_early_stopping import SCRIPTS, steps_in_ax

STEPS = 40

DRIVER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from conftest import legacy_client
    from ax_scheduler import AxScheduler, JobLibRunner
    config = {{"job_output_dir": {out!r}, "checkpoint_path": {checkpoint!r}, "progress": False}}
    with AxScheduler(legacy_client(), JobLibRunner(n_jobs=1), config) as scheduler:
        scheduler.set_script_objective(
            {script!r}, {{"interpreter": sys.executable, "args": [{steps!r}]}}
        )
        with scheduler.batch_trial_context() as batch:
            batch.add_trial({{"x": 0.5, "y": 0.5}})
    """
)


def lines_in(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def test_a_resumed_trials_reports_continue_where_the_checkpoint_left_them(
    tmp_path: Path,
) -> None:
    out, checkpoint = tmp_path / "out", tmp_path / "run.json"
    driver = DRIVER.format(
        tests=str(Path(__file__).parent),
        out=str(out),
        checkpoint=str(checkpoint),
        script=str(SCRIPTS / "curve_script.py"),
        steps=str(STEPS),
    )
    env = {**os.environ, "CURVE_STEP_SECONDS": "0.15"}
    process = subprocess.Popen([sys.executable, "-c", driver], env=env, cwd=tmp_path)
    progress = out / "test_experiment-trial-0" / "progress.jsonl"
    try:
        assert wait_until(lambda: lines_in(progress) >= 10, 60), "the script never reported"
        time.sleep(1.5)  # a paced checkpoint write with some of the curve
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert json.loads(checkpoint.read_text())  # written whole, despite the kill

    reported: list[Event] = []
    with AxScheduler.resume(checkpoint, JobLibRunner(n_jobs=1)) as scheduler:
        in_checkpoint = steps_in_ax(scheduler.ax_client)[0]
        assert len(in_checkpoint) >= 5  # the checkpoint had part of the curve
        scheduler.set_script_objective(
            SCRIPTS / "curve_script.py", {"interpreter": sys.executable, "args": [str(STEPS)]}
        )
        scheduler.on_event(reported.append)
        scheduler.wait_for_completed_trials(timeout=60)
        client = scheduler.ax_client
    assert experiment_of(client).trials[0].status.name == "COMPLETED"
    new_steps = [e.data["step"] for e in reported if e.kind == "trial_reported"]
    assert new_steps, "nothing was read after the resume"
    assert min(new_steps) > max(in_checkpoint)  # nothing recorded twice
    every_step = [float(step) for step in range(STEPS) if step != 2]  # step 2's line is bad
    assert steps_in_ax(client)[0] == every_step
