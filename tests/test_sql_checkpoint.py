"""Checkpoints in a database (``checkpoint_path`` an SQLAlchemy URL): Ax's SQL store,
written a changed trial at a time; resumed after SIGKILL; SQLite and a real MariaDB."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ax_scheduler import AxScheduler, CheckpointError, ConfigError, JobLibRunner
from ax_scheduler._sqlstore import stored_runs
from cluster import TESTS, cluster_env
from conftest import legacy_client, modern_client, statuses, wait_until
from objectives import rosenbrock, three_second_rosenbrock


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'run.db'}"


def load_from_store(url: str, name: str = "test_experiment") -> Any:
    from ax.storage.sqa_store.db import init_engine_and_session_factory
    from ax.storage.sqa_store.load import load_experiment

    init_engine_and_session_factory(url=url, force_init=True)
    return load_experiment(name)


def table_statuses(url: str) -> dict[int, str]:
    """Each trial's status as our row's results table has it (SQLAlchemy only)."""
    try:
        runs = stored_runs(url)
    except CheckpointError:
        return {}  # not written yet
    return {row[0]: row[1] for run in runs.values() for row in (run.table or {}).get("rows", [])}


@pytest.mark.parametrize("kind", ["legacy", "modern"])
def test_a_database_checkpoint_is_the_run_as_axs_store_loads_it(tmp_path: Path, kind: str) -> None:
    url = sqlite_url(tmp_path)
    client = legacy_client() if kind == "legacy" else modern_client()
    with AxScheduler(client, JobLibRunner(n_jobs=2), {"checkpoint_path": url}) as scheduler:
        scheduler.set_objective_function(rosenbrock)
        scheduler.run_optimization(max_trials=5)
    experiment = load_from_store(url)
    assert {i: t.status.name for i, t in experiment.trials.items()} == dict.fromkeys(
        range(5), "COMPLETED"
    )
    assert all("job_dir" in t.run_metadata["ax_scheduler"] for t in experiment.trials.values())
    assert len(experiment.lookup_data().df) == 5
    (run,) = stored_runs(url).values()
    assert run.header["runner"] == "joblib"
    assert run.header["client_type"] == ("AxClient" if kind == "legacy" else "Client")
    assert table_statuses(url) == dict.fromkeys(range(5), "COMPLETED")
    resumed = AxScheduler.resume(url, JobLibRunner(n_jobs=2))
    assert type(resumed.ax_client) is type(client)
    with resumed:
        resumed.set_objective_function(rosenbrock)
        resumed.run_optimization(max_trials=2)
    assert table_statuses(url) == dict.fromkeys(range(7), "COMPLETED")
    assert len(load_from_store(url).trials) == 7


def test_each_write_saves_only_the_trials_that_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ax.storage.sqa_store import save

    saved: list[list[int]] = []
    original = save.save_or_update_trials

    def counted(experiment: Any, trials: list[Any], **kwargs: Any) -> None:
        saved.append([trial.index for trial in trials])
        original(experiment=experiment, trials=trials, **kwargs)

    monkeypatch.setattr(save, "save_or_update_trials", counted)
    url = sqlite_url(tmp_path)
    with AxScheduler(legacy_client(), JobLibRunner(n_jobs=2), {"checkpoint_path": url}) as sch:
        sch.set_objective_function(rosenbrock)
        sch.run_optimization(max_trials=8)
        saved.clear()
        sch.run_optimization(max_trials=2)
    assert saved, "the second run wrote no trial"
    assert {index for indices in saved for index in indices} == {8, 9}
    assert table_statuses(url) == dict.fromkeys(range(10), "COMPLETED")


def test_bad_database_urls_are_config_errors_naming_them(tmp_path: Path) -> None:
    client = legacy_client()
    with pytest.raises(ConfigError, match=r"no SQLAlchemy dialect for .nosuchdb://x"):
        AxScheduler(client, JobLibRunner(n_jobs=1), {"checkpoint_path": "nosuchdb://x"})
    # The password never reaches the message.
    url = "postgresql+nosuchdriver://user:s3cret@host/db"
    with pytest.raises(ConfigError) as raised:
        AxScheduler(client, JobLibRunner(n_jobs=1), {"checkpoint_path": url})
    assert "s3cret" not in str(raised.value)


def test_a_database_holding_another_run_is_not_overwritten(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    with AxScheduler(legacy_client(), JobLibRunner(n_jobs=2), {"checkpoint_path": url}) as sch:
        sch.set_objective_function(rosenbrock)
        sch.run_optimization(max_trials=3)
    with pytest.raises(CheckpointError, match=r"holds a run of 'test_experiment' with 3 trials"):
        AxScheduler(legacy_client(), JobLibRunner(n_jobs=1), {"checkpoint_path": url})
    with pytest.raises(CheckpointError, match=r"run\.db does not exist"):
        AxScheduler.resume(sqlite_url(tmp_path / "elsewhere"), JobLibRunner(n_jobs=1))


DRIVER = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {tests!r})
    from conftest import legacy_client
    from objectives import three_second_rosenbrock
    from ax_scheduler import AxScheduler, JobLibRunner

    scheduler = AxScheduler(
        legacy_client(), JobLibRunner(n_jobs=2), config={{"checkpoint_path": {url!r}}}
    )
    scheduler.set_objective_function(three_second_rosenbrock)
    scheduler.run_optimization(max_trials=8)
    print("finished before it was killed", flush=True)
    """
)


def resume_after_sigkill(tmp_path: Path, url: str) -> None:
    """A driver SIGKILLed with finished and running trials; resumed here, nothing lost."""
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=str(TESTS), url=url))
    driver = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    seen: dict[int, str] = {}

    def finished_and_running() -> bool:
        nonlocal seen
        assert driver.poll() is None, driver.communicate()
        seen = table_statuses(url)
        values = list(seen.values())
        return values.count("COMPLETED") >= 2 and "RUNNING" in values

    try:
        assert wait_until(finished_and_running, 120), seen
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        driver.communicate(timeout=30)
    done_before = {i for i, status in seen.items() if status == "COMPLETED"}
    scheduler = AxScheduler.resume(url, JobLibRunner(n_jobs=2))
    try:
        scheduler.set_objective_function(three_second_rosenbrock)
        scheduler.wait_for_completed_trials()
        scheduler.run_optimization(max_trials=8 - len(scheduler.experiment.trials))
        final = statuses(scheduler.ax_client)
    finally:
        scheduler.close()
    # What the killed driver finished is kept; what it ran died with its workers
    # (FAILED, "driver restarted"); the rest ran now; nothing is left RUNNING.
    assert done_before <= {i for i, status in final.items() if status == "COMPLETED"}
    assert "RUNNING" not in final.values()
    assert len(final) == 8
    stored = load_from_store(url)
    assert {i: t.status.name for i, t in stored.trials.items()} == final
    assert table_statuses(url) == final


@pytest.mark.slow
def test_a_driver_killed_mid_run_resumes_from_sqlite_with_nothing_lost(tmp_path: Path) -> None:
    resume_after_sigkill(tmp_path, sqlite_url(tmp_path))


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh database and user on the MariaDB server ci/start-slurm.sh runs."""
    socket = Path(cluster_env()["LOCALSLURM_ROOT"]) / "mysql" / "mysqld.sock"
    name, password = f"axs_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex

    def sql(statement: str) -> None:
        command = ["mariadb", "--no-defaults", "-S", str(socket), "-uroot", "-e", statement]
        subprocess.run(command, check=True, capture_output=True, timeout=30)

    sql(
        f"CREATE DATABASE {name}; CREATE USER '{name}'@'127.0.0.1' IDENTIFIED BY"
        f" '{password}'; GRANT ALL ON {name}.* TO '{name}'@'127.0.0.1';"
    )
    try:
        yield f"mysql+pymysql://{name}:{password}@127.0.0.1:3307/{name}"
    finally:
        sql(f"DROP DATABASE {name}; DROP USER '{name}'@'127.0.0.1';")


@pytest.mark.mariadb
@pytest.mark.slurm
@pytest.mark.slow
def test_a_driver_killed_mid_run_resumes_from_mariadb_with_nothing_lost(
    tmp_path: Path, mariadb_url: str
) -> None:
    resume_after_sigkill(tmp_path, mariadb_url)
