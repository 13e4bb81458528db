"""save_experiment / load_experiment: Ax's JSON, written atomically, continuable."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import objectives
from ax_scheduler import AxScheduler, JobLibRunner
from conftest import experiment_of, statuses


def test_save_then_load_continues_the_run(make_client: Any, tmp_path: Path) -> None:
    path = tmp_path / "sub dir" / "run's state.json"
    with AxScheduler(make_client(), JobLibRunner(n_jobs=2)) as scheduler:
        scheduler.set_objective_function(objectives.rosenbrock_dict)
        scheduler.run_optimization(max_trials=3)
        assert scheduler.save_experiment(path) == path
    assert (path.stat().st_mode & 0o777) != 0o600  # a normal file, not mkstemp's 0600
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left

    with AxScheduler.load_experiment(path, JobLibRunner(n_jobs=2)) as resumed:
        resumed.set_objective_function(objectives.rosenbrock_dict)
        resumed.run_optimization(max_trials=2)
        client = resumed.ax_client
    assert type(client).__name__ == json.loads(path.read_text())["_type"]
    assert list(statuses(client).values()) == ["COMPLETED"] * 5
    # Sobol continued where it stopped instead of proposing its first points again
    params = [t.arm.parameters for t in experiment_of(client).trials.values()]
    assert len({tuple(p.values()) for p in params}) == 5


def test_trials_running_at_save_time_are_failed_on_load(tmp_path: Path) -> None:
    from conftest import legacy_client

    path = tmp_path / "run.json"
    client = legacy_client()
    scheduler = AxScheduler(client, JobLibRunner(n_jobs=1), {"synchronous": False})
    scheduler.set_objective_function(objectives.sleep_forever)
    with scheduler.batch_trial_context() as batch:
        batch.add_trial({"x": 0.5, "y": 0.5})
    client.get_next_trial()  # the user's own pending trial: left alone
    scheduler.save_experiment(path)
    scheduler.close()

    resumed = AxScheduler.load_experiment(path, JobLibRunner(n_jobs=1))
    assert statuses(resumed.ax_client) == {0: "FAILED", 1: "RUNNING"}
    assert "stopped before it finished" in experiment_of(resumed.ax_client).trials[0].status_reason
    resumed.close()


def test_loading_something_else_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"hello": "world"}))
    with pytest.raises(ValueError, match="not an ax-scheduler or Ax JSON snapshot"):
        AxScheduler.load_experiment(path, JobLibRunner(n_jobs=1))


def test_a_failed_write_leaves_the_previous_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ax_scheduler import _core

    path = tmp_path / "run.json"
    path.write_text("previous")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(_core.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        _core.write_atomically(path, "new contents")
    assert path.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_an_experiment_saved_by_ax_json_store_can_be_continued(tmp_path: Path) -> None:
    from ax.storage.json_store.save import save_experiment

    from conftest import legacy_client

    client = legacy_client()
    client.attach_trial({"x": 0.5, "y": 0.5})
    client.complete_trial(0, {"objective": 6.5})
    path = tmp_path / "experiment.json"
    save_experiment(client.experiment, str(path))

    with AxScheduler.load_experiment(path, JobLibRunner(n_jobs=2)) as resumed:
        resumed.set_objective_function(objectives.rosenbrock_dict)
        resumed.run_optimization(max_trials=2)
        assert list(statuses(resumed.ax_client).values()) == ["COMPLETED"] * 3


def test_our_snapshot_is_exactly_what_ax_writes(make_client: Any) -> None:
    """Snapshots cache each trial's encoded data; the JSON must not change by it."""
    from ax_scheduler._ax import AxAdapter

    client = make_client()
    adapter = AxAdapter.wrap(client)
    with AxScheduler(client, JobLibRunner(n_jobs=2)) as scheduler:
        scheduler.set_objective_function(objectives.rosenbrock_with_sem)
        scheduler.run_optimization(max_trials=3)
        first = adapter.snapshot()  # fills the cache
        scheduler.run_optimization(max_trials=2)

    ours = adapter.snapshot()  # three trials' data from the cache, two new
    theirs = (
        client.to_json_snapshot()
        if hasattr(client, "to_json_snapshot")
        else (client._to_json_snapshot())
    )
    assert json.dumps(ours, sort_keys=True) == json.dumps(theirs, sort_keys=True)
    assert first != ours


def test_the_library_never_changes_the_process_umask_and_saves_with_it(tmp_path: Path) -> None:
    # os.umask is process-wide: flipping it (even for a moment) races with every
    # other thread of the user's program that creates files.
    program = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        calls = []
        real = os.umask
        os.umask = lambda mask: calls.append(mask) or real(mask)
        real(0o027)
        import ax_scheduler
        from ax_scheduler import AxScheduler, JobLibRunner
        from conftest import legacy_client
        import objectives
        with AxScheduler(legacy_client(), JobLibRunner(n_jobs=1)) as scheduler:
            scheduler.set_objective_function(objectives.rosenbrock)
            with scheduler.batch_trial_context() as batch:
                batch.add_trial({{"x": 0.5, "y": 0.5}})
            scheduler.save_experiment({str(tmp_path / "run.json")!r})
        print(calls)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"
    assert stat.S_IMODE((tmp_path / "run.json").stat().st_mode) == 0o640  # 0666 less the umask
