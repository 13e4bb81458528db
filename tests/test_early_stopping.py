"""Trials that report while they run, and the early-stopping strategy that stops them.

Real local runners: loky worker processes (the report socket), threads, an
``async def`` objective on the loop, and a script writing progress lines. The
curves (tests/curves.py) make bad trials plain from their early steps, and the
batches run good trials first, so which trials stop is known in advance.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import socket
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

import curves
from ax_scheduler import (
    AxScheduler,
    ConfigError,
    JobLibRunner,
    TrialStoppedEarly,
    report,
)
from ax_scheduler._reportserver import ReportServer
from conftest import experiment_of, legacy_client, modern_client, statuses

SCRIPTS = Path(__file__).parent / "scripts"

GOOD = [{"x": 0.0, "y": 0.0}, {"x": 0.1, "y": 0.0}]
BAD = [{"x": 1.5, "y": 1.5}, {"x": 1.8, "y": -1.8}]
EARLY_STOPPING = {"percentile": 50, "min_progression": 5, "min_curves": 2}
#: What becomes of a batch of GOOD + BAD under EARLY_STOPPING.
GOOD_KEPT_BAD_STOPPED = {0: "COMPLETED", 1: "COMPLETED", 2: "EARLY_STOPPED", 3: "EARLY_STOPPED"}


def steps_in_ax(client: Any) -> dict[int, list[float]]:
    """Each trial's reported steps, as Ax holds them."""
    df = experiment_of(client).lookup_data().full_df
    return {
        int(index): sorted(group["step"].dropna().tolist())
        for index, group in df.groupby("trial_index")
    }


def run_batch(scheduler: AxScheduler, parameters: list[dict[str, float]]) -> None:
    with scheduler.batch_trial_context() as batch:
        for params in parameters:
            batch.add_trial(params)


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_a_percentile_strategy_stops_the_bad_trials_of_a_function_on_the_local_pool(
    backend: str, tmp_path: Path
) -> None:
    client = modern_client()
    config = {"job_output_dir": str(tmp_path), "early_stopping": EARLY_STOPPING}
    with AxScheduler(client, JobLibRunner(n_jobs=2, backend=backend), config) as scheduler:
        scheduler.set_objective_function(curves.curve)
        run_batch(scheduler, GOOD + BAD)
    assert statuses(client) == GOOD_KEPT_BAD_STOPPED
    steps = steps_in_ax(client)
    assert steps[0] == steps[1] == [float(step) for step in range(curves.STEPS)]
    for stopped in (2, 3):  # stopped once past min_progression, long before the end
        assert 5 <= max(steps[stopped]) < curves.STEPS - 5
    reason = experiment_of(client).trials[2].run_metadata["ax_scheduler"]["early_stop_reason"]
    assert "percentile" in reason


def test_the_legacy_clients_own_strategy_stops_an_async_objectives_bad_trials() -> None:
    from ax.early_stopping.strategies import PercentileEarlyStoppingStrategy
    from ax.service.ax_client import AxClient, ObjectiveProperties

    from conftest import PARAMETERS, sobol_only

    strategy = PercentileEarlyStoppingStrategy(min_progression=5, min_curves=2)
    client = AxClient(
        generation_strategy=sobol_only(), early_stopping_strategy=strategy, verbose_logging=False
    )
    client.create_experiment(
        name="legacy_curves",
        parameters=PARAMETERS,
        objectives={"objective": ObjectiveProperties(minimize=True)},
        support_intermediate_data=True,
    )
    with AxScheduler(client, JobLibRunner(n_jobs=2)) as scheduler:
        scheduler.set_objective_function(curves.async_curve)
        run_batch(scheduler, GOOD + BAD)
    assert statuses(client) == GOOD_KEPT_BAD_STOPPED
    assert max(steps_in_ax(client)[3]) < curves.STEPS - 5


def test_a_scripts_progress_lines_are_its_curve_a_malformed_one_is_skipped_and_sigterm_stops_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = legacy_client()
    config = {"job_output_dir": str(tmp_path), "early_stopping": EARLY_STOPPING}
    with AxScheduler(client, JobLibRunner(n_jobs=2), config) as scheduler:
        scheduler.set_script_objective(
            SCRIPTS / "curve_script.py", {"interpreter": sys.executable, "args": ["20"]}
        )
        with caplog.at_level(logging.WARNING, logger="ax_scheduler"):
            run_batch(scheduler, GOOD + BAD)
    assert statuses(client) == GOOD_KEPT_BAD_STOPPED
    steps = steps_in_ax(client)
    assert steps[0] == [float(step) for step in range(20) if step != 2]  # step 2's line is bad
    assert max(steps[2]) < 15
    skipped = [r.getMessage() for r in caplog.records if "progress line" in r.getMessage()]
    assert any(message.startswith("trial 0: progress line 3 of ") for message in skipped)
    assert all("not JSON" in message for message in skipped)


def test_a_trial_that_ignores_the_stop_is_killed_after_the_grace_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "log"
    log.mkdir()
    monkeypatch.setenv("CURVE_LOG", str(log))
    client = modern_client()
    config = {
        "job_output_dir": str(tmp_path / "out"),
        "early_stopping": {**EARLY_STOPPING, "min_curves": 1},
        "early_stopping_grace": 0.5,
        "trial_timeout": 60,
    }
    with AxScheduler(client, JobLibRunner(n_jobs=1), config) as scheduler:
        scheduler.set_objective_function(curves.curve)
        run_batch(scheduler, GOOD[:1])
        scheduler.set_objective_function(curves.stubborn_curve)
        run_batch(scheduler, BAD[:1])
    assert statuses(client) == {0: "COMPLETED", 1: "EARLY_STOPPED"}
    [told] = log.iterdir()
    # Every report after the stop raised again; it kept going until the grace ran out.
    assert int(told.read_text()) >= 3


def test_reports_without_a_strategy_are_curves_and_the_result_lands_on_the_last_step(
    tmp_path: Path,
) -> None:
    client = modern_client()
    with AxScheduler(client, JobLibRunner(n_jobs=2), {"job_output_dir": str(tmp_path)}) as s:
        s.set_objective_function(curves.curve)
        run_batch(s, GOOD + BAD)
    assert set(statuses(client).values()) == {"COMPLETED"}
    df = experiment_of(client).lookup_data().full_df
    last = df[(df.trial_index == 2) & (df.step == curves.STEPS - 1)]
    assert last["mean"].tolist() == [pytest.approx(curves.loss(BAD[0], curves.STEPS - 1))]
    # The modern client's default strategy is never installed: nothing was stopped.
    assert client._maybe_early_stopping_strategy is None


def test_run_optimization_counts_stopped_trials_toward_max_trials_and_lists_them(
    tmp_path: Path,
) -> None:
    client = modern_client()
    config = {"job_output_dir": str(tmp_path), "early_stopping": EARLY_STOPPING}
    with AxScheduler(client, JobLibRunner(n_jobs=2), config) as scheduler:
        scheduler.set_objective_function(curves.curve)
        scheduler.run_optimization(max_trials=8)
        summary = scheduler.last_run
    assert summary is not None
    assert len(summary.trials) == 8
    stopped = [i for i, status in statuses(client).items() if status == "EARLY_STOPPED"]
    assert sorted(summary.early_stopped) == stopped
    assert set(summary.completed).isdisjoint(stopped)
    assert len(summary.completed) + len(stopped) == 8


def test_stop_when_ends_the_run_with_its_reason(tmp_path: Path) -> None:
    client = modern_client()
    with AxScheduler(client, JobLibRunner(n_jobs=2), {"job_output_dir": str(tmp_path)}) as s:
        s.set_objective_function(curves.curve)
        s.run_optimization(
            max_trials=20, stop_when=lambda progress: progress.completed >= 3 and "enough"
        )
        summary = s.last_run
    assert summary is not None
    assert summary.stopped_because == "stop_when: enough"
    assert 3 <= len(summary.completed) < 20


def test_report_outside_a_trial_and_bad_values_raise_clear_errors() -> None:
    with pytest.raises(RuntimeError, match="outside a trial"):
        report({"loss": 1.0}, step=1)
    from ax_scheduler._reporting import CallbackReporter, reporting_to

    with reporting_to(CallbackReporter(lambda step, metrics: None)):
        with pytest.raises(TypeError, match="'loss' must be a number"):
            report({"loss": "high"}, step=1)
        with pytest.raises(TypeError, match="step"):
            report({"loss": 1.0}, step=float("nan"))
    stopped = CallbackReporter(lambda step, metrics: None)
    stopped.reason = "worse than the median"
    with reporting_to(stopped), pytest.raises(TrialStoppedEarly, match="median"):
        report({"loss": 1.0}, step=2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"percentile": 150}, "early_stopping.percentile"),
        ({"min_curves": 0}, "early_stopping.min_curves"),
        ({"patience": 3}, "patience"),
        ({"metric": "loss"}, "no metric 'loss'; its metrics: 'objective'"),
    ],
)
def test_bad_early_stopping_options_name_the_key(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AxScheduler(modern_client(), JobLibRunner(), {"early_stopping": options})


def test_a_strategy_set_on_the_client_and_in_config_is_refused() -> None:
    from ax.early_stopping.strategies import PercentileEarlyStoppingStrategy

    client = modern_client()
    client.set_early_stopping_strategy(PercentileEarlyStoppingStrategy())
    with pytest.raises(ConfigError, match="set twice"):
        AxScheduler(client, JobLibRunner(), {"early_stopping": EARLY_STOPPING})


def test_the_experiment_file_takes_early_stopping_and_names_a_bad_key_by_its_line(
    tmp_path: Path,
) -> None:
    from ax_scheduler import SpecError
    from ax_scheduler.cli.spec import load_file

    examples = Path(__file__).parents[1] / "examples"
    base = (examples / "experiment.yaml").read_text()
    (tmp_path / "cli_objective.py").write_text((examples / "cli_objective.py").read_text())
    good = tmp_path / "good.yaml"
    good.write_text(base + "  early_stopping: {percentile: 40, min_progression: 3}\n")
    spec = load_file(good)
    options = spec.experiment.config.early_stopping
    assert options is not None
    assert (options.percentile, options.min_progression) == (40, 3)
    bad = tmp_path / "bad.yaml"
    bad.write_text(base + "  early_stopping: {percentile: 400}\n")
    with pytest.raises(SpecError) as raised:
        load_file(bad)
    line = base.count("\n") + 1
    assert f"bad.yaml:{line}: config.early_stopping.percentile:" in str(raised.value)
    assert "less than 100 (got 400)" in str(raised.value)


@pytest.mark.parametrize("variant", [[], ["--script"]], ids=["function", "script"])
def test_the_early_stopping_example_runs_and_lists_its_stops(
    variant: list[str], tmp_path: Path
) -> None:
    import subprocess

    example = Path(__file__).parents[1] / "examples" / "early_stopping.py"
    result = subprocess.run(
        [sys.executable, str(example), *variant],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("best parameters: {'lr': ")
    completed = eval(lines[1].removeprefix("completed: "))  # a printed list of ints
    stopped = eval(lines[2].removeprefix("stopped early: "))
    assert len(completed) + len(stopped) == 8
    assert all("percentile" in line for line in lines[3:])
    assert len(lines[3:]) == len(stopped)


WORSE_EACH_TIME = itertools.count()


def flat(parameters: dict[str, float]) -> dict[str, float]:
    """Each trial is worse than the one before (threads share the counter): the best
    never improves, so a global-stopping strategy ends the run at its min_trials."""
    return {"objective": float(next(WORSE_EACH_TIME))}


GLOBAL_STOPPING = {"min_trials": 4, "window_size": 2, "improvement_bar": 0.1}


def test_config_global_stopping_ends_the_run_with_its_reason(tmp_path: Path) -> None:
    config = {"job_output_dir": str(tmp_path), "global_stopping": GLOBAL_STOPPING}
    runner = JobLibRunner(n_jobs=1, backend="threading")
    with AxScheduler(modern_client(), runner, config) as scheduler:
        scheduler.set_objective_function(flat)
        scheduler.run_optimization(max_trials=20)
        summary = scheduler.last_run
    assert summary is not None
    assert summary.stopped_because is not None
    assert summary.stopped_because.startswith("global stopping: The improvement in best objective")
    # min_trials, the prefetched trial that takes the slot the 4th frees, and one
    # Ax may be generating as the 4th ends (14 before stops were judged at every end).
    assert 4 <= len(summary.completed) <= 6


@pytest.mark.parametrize("run", range(3))
def test_stop_when_is_judged_after_every_end_even_when_trials_end_as_fast_as_ax_generates(
    tmp_path: Path, run: int
) -> None:
    # Instant trials free their slot while Ax generates the next one, so the run
    # never waits for a trial; stop rules judged only after such a wait came 1 to 10
    # trials late.
    runner = JobLibRunner(n_jobs=1, backend="threading")
    with AxScheduler(modern_client(), runner, {"job_output_dir": str(tmp_path)}) as scheduler:
        scheduler.set_objective_function(flat)
        scheduler.run_optimization(max_trials=30, stop_when=lambda p: p.completed >= 3)
        summary = scheduler.last_run
    assert summary is not None
    assert summary.stopped_because == "stop_when returned True"
    assert 3 <= len(summary.completed) <= 5


def test_a_legacy_clients_global_stopping_is_a_stop_with_its_reason_not_exhaustion(
    tmp_path: Path,
) -> None:
    from ax.global_stopping.strategies.improvement import ImprovementGlobalStoppingStrategy

    # Also judged while trials are pending (the run prefetches one): by default it
    # would wait for a moment with none, which a run with prefetch may never have.
    strategy = ImprovementGlobalStoppingStrategy(
        **GLOBAL_STOPPING, inactive_when_pending_trials=False
    )
    client = legacy_client(global_stopping_strategy=strategy)
    runner = JobLibRunner(n_jobs=1, backend="threading")
    with AxScheduler(client, runner, {"job_output_dir": str(tmp_path)}) as scheduler:
        scheduler.set_objective_function(flat)
        scheduler.run_optimization(max_trials=20)
        summary = scheduler.last_run
    assert summary is not None
    assert summary.stopped_because is not None
    assert summary.stopped_because.startswith("Ax's global stopping strategy: The improvement")
    assert 4 <= len(summary.completed) < 10  # what ran before Ax said stop (prefetch: one more)


class BrokenStrategy:
    """An early-stopping strategy that cannot judge this experiment."""

    def should_stop_trials_early(self, **kwargs: Any) -> dict[int, str]:
        raise ValueError("this strategy needs a multi-fidelity experiment")


def test_a_strategy_that_cannot_judge_the_experiment_is_logged_once_and_the_run_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = modern_client()
    client.set_early_stopping_strategy(BrokenStrategy())
    runner = JobLibRunner(n_jobs=2, backend="threading")
    with AxScheduler(client, runner, {"job_output_dir": str(tmp_path)}) as scheduler:
        scheduler.set_objective_function(curves.curve)
        with caplog.at_level(logging.ERROR, logger="ax_scheduler"):
            run_batch(scheduler, GOOD + BAD)
        client = scheduler.ax_client
    assert set(statuses(client).values()) == {"COMPLETED"}
    failures = [r for r in caplog.records if "early-stopping strategy failed" in r.getMessage()]
    assert len(failures) == 1


def test_a_pool_started_on_another_event_loop_still_carries_the_reports(tmp_path: Path) -> None:
    runner = JobLibRunner(n_jobs=2)
    asyncio.run(runner.start())  # warmed up on a loop of its own, then used by the sync API
    client = modern_client()
    with AxScheduler(client, runner, {"job_output_dir": str(tmp_path)}) as scheduler:
        scheduler.set_objective_function(curves.curve)
        run_batch(scheduler, GOOD)
    assert steps_in_ax(client)[0] == [float(step) for step in range(curves.STEPS)]


@pytest.mark.parametrize("loop_turns", range(4))
def test_a_worker_connecting_as_the_pool_closes_leaves_no_socket_open(loop_turns: int) -> None:
    """Whenever a worker's connection lands, closing the pool closes it.

    On asyncio's stream server (Python 3.11), a connection accepted in the loop
    turn before the server closed was dropped unclosed inside asyncio; the garbage
    collector's ResourceWarning then failed whichever test ran next (seen in CI).
    """
    worker = socket.socket(socket.AF_UNIX)

    async def connect_then_close() -> None:
        server = ReportServer()
        await server.start()
        worker.connect(server.path)
        for _ in range(loop_turns):
            await asyncio.sleep(0)
        await server.aclose()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for _ in range(5):
            asyncio.run(connect_then_close())
            worker.close()
            worker = socket.socket(socket.AF_UNIX)
            gc.collect()
        worker.close()
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []
