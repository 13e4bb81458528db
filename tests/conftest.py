"""Shared fixtures: Ax clients of both APIs, real local runners, and the guards
every test runs under (no leaked workers; no blocking calls on the event loop)."""

from __future__ import annotations

import inspect
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ax_scheduler

sys.path.insert(0, str(Path(__file__).parent))  # loky workers import tests/objectives.py
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])
)

logging.getLogger("ax").setLevel(logging.WARNING)

PARAMETERS = [
    {"name": "x", "type": "range", "bounds": [-2.0, 2.0], "value_type": "float"},
    {"name": "y", "type": "range", "bounds": [-2.0, 2.0], "value_type": "float"},
]


def sobol_only() -> Any:
    from ax.adapter.registry import Generators
    from ax.generation_strategy.generation_strategy import GenerationStep, GenerationStrategy

    return GenerationStrategy(nodes=[GenerationStep(generator=Generators.SOBOL, num_trials=-1)])


def legacy_client(
    *, sobol: bool = True, objectives: dict[str, Any] | None = None, **kwargs: Any
) -> Any:
    """The tutorial's client: AxClient with Rosenbrock's x, y in [-2, 2]."""
    from ax.service.ax_client import AxClient, ObjectiveProperties

    if sobol:
        kwargs.setdefault("generation_strategy", sobol_only())
    client = AxClient(verbose_logging=False, **kwargs)
    client.create_experiment(
        name="test_experiment",
        parameters=PARAMETERS,
        objectives=objectives or {"objective": ObjectiveProperties(minimize=True)},
    )
    return client


def modern_client(
    *,
    sobol: bool = True,
    objective: str = "-objective",
    outcome_constraints: list[str] | None = None,
) -> Any:
    """The same experiment on ax.api.client.Client."""
    from ax.api.client import Client
    from ax.api.configs import RangeParameterConfig

    client = Client(random_seed=0)
    client.configure_experiment(
        name="test_experiment",
        parameters=[
            RangeParameterConfig(name=name, parameter_type="float", bounds=(-2.0, 2.0))
            for name in ("x", "y")
        ],
    )
    client.configure_optimization(objective=objective, outcome_constraints=outcome_constraints)
    if sobol:
        client.set_generation_strategy(sobol_only())
    return client


@pytest.fixture(params=["legacy", "modern"])
def client_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_client(client_kind: str) -> Any:
    return legacy_client if client_kind == "legacy" else modern_client


@pytest.fixture
def scheduler_factory() -> Iterator[Any]:
    """Builds AxSchedulers and closes every one after the test."""
    from ax_scheduler import AxScheduler, JobLibRunner

    made: list[Any] = []

    def build(client: Any, runner: Any = None, objective: Any = None, **config: Any) -> Any:
        scheduler = AxScheduler(client, runner or JobLibRunner(n_jobs=2), config=config)
        if objective is not None:
            scheduler.set_objective_function(objective)
        made.append(scheduler)
        return scheduler

    yield build
    for scheduler in made:
        scheduler.close()


def statuses(client: Any) -> dict[int, str]:
    experiment = client.experiment if hasattr(client, "experiment") else client._experiment
    return {index: trial.status.name for index, trial in experiment.trials.items()}


def experiment_of(client: Any) -> Any:
    return client.experiment if hasattr(client, "experiment") else client._experiment


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting to be reaped does not)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until(condition: Any, seconds: float) -> bool:
    """Poll ``condition()`` every 50 ms for up to ``seconds``; its last value."""
    import time

    deadline = time.monotonic() + seconds
    while not (result := condition()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(result)


def worker_pids() -> set[int]:
    """Live loky worker processes that are children of this test process."""
    import psutil

    return {
        child.pid
        for child in psutil.Process().children(recursive=True)
        if child.is_running()
        and child.status() != psutil.STATUS_ZOMBIE
        and "popen_loky" in " ".join(child.cmdline())
    }


@pytest.fixture(autouse=True)
def no_leaked_workers() -> Iterator[None]:
    """Every test must leave no worker process behind (after its fixtures closed)."""
    import time

    before = worker_pids()
    yield
    deadline = time.monotonic() + 5
    while (leaked := worker_pids() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not leaked, f"worker processes left running: {sorted(leaked)}"


REPOSITORY_OUTPUT = Path(__file__).parents[1] / "ax_scheduler_output"


def repository_trial_folders() -> set[str]:
    return set(os.listdir(REPOSITORY_OUTPUT)) if REPOSITORY_OUTPUT.is_dir() else set()


@pytest.fixture(autouse=True)
def no_trial_folders_in_the_repository(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """Tests write trials into temporary directories, never the checkout's
    ``ax_scheduler_output/`` (the default ``job_output_dir`` when run from there):
    each test runs in a scratch working directory of its own (not its ``tmp_path``,
    which stays as the test left it), and one that writes there anyway fails."""
    # Not with the monkeypatch fixture: a test's own monkeypatch (a DOCKER_HOST
    # pointed nowhere) must be undone before the other fixtures' teardowns run.
    home = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    before = repository_trial_folders()
    try:
        yield
    finally:
        os.chdir(home)
    written = sorted(repository_trial_folders() - before)
    assert not written, (
        f"{request.node.nodeid} wrote {len(written)} trial folders into {REPOSITORY_OUTPUT}"
        f" ({', '.join(written[:3])} ...): give it a tmp_path job_output_dir or cwd"
    )


TESTS = str(Path(__file__).parent)
LIBRARY = str(Path(ax_scheduler.__file__).parent)
ASYNC_CODE = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE


def blocking_call_site(exempt: list[tuple[str, Any]]) -> str | None:
    """Where ax_scheduler's code blocks the event loop (its innermost frame), called
    from inside blockbuster's check of a blocking call.

    None when blockbuster exempts a caller (``exempt``: file name ends, function
    names), and when the call is the test's own doing: sync code the test called
    (a helper, a sync constructor like ``AxScheduler.resume``) with no
    ax_scheduler coroutine in between blocks by the caller's choice. What the
    guard is for is ax_scheduler's own coroutines, tasks and callbacks.
    """
    frame = sys._getframe(1)
    while frame is not None and not frame.f_code.co_filename.endswith("blockbuster.py"):
        frame = frame.f_back  # out of the guard, to blockbuster's wrapper
    site = None
    while frame is not None:
        code = frame.f_code
        if code.co_filename.startswith(TESTS):
            return None
        if any(code.co_filename.endswith(end) and code.co_name in names for end, names in exempt):
            return None
        if code.co_filename.startswith(LIBRARY):
            where = os.path.relpath(code.co_filename, Path(LIBRARY).parent)
            site = site or f"{where}:{frame.f_lineno} in {code.co_name}"
            if code.co_flags & ASYNC_CODE:
                return site
        frame = frame.f_back
    return site


@pytest.fixture(autouse=True)
def no_blocking_calls_in_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every coroutine test fails if ax_scheduler's own code makes a blocking call on
    the event loop (blockbuster), even one whose error a task or an ``except`` ate."""
    if not inspect.iscoroutinefunction(getattr(request, "function", None)):
        yield
        return
    from blockbuster import BlockBuster

    found: list[str] = []

    def guard(name: str, function: Any) -> Any:
        allowed, exempt = function.can_block_predicate, function.can_block_functions

        def can_block(*args: Any, **kwargs: Any) -> bool:
            if allowed(*args, **kwargs):  # blockbuster's own rule (a non-blocking socket ...)
                return True
            site = blocking_call_site(exempt)
            if site is not None:
                found.append(f"{name} at {site}")
            return site is None

        return can_block

    buster = BlockBuster(scanned_modules=["ax_scheduler"])
    for name, function in buster.functions.items():
        # Log records go where the application's handlers write them (pytest's own
        # handler writes a file): the handlers' choice, not a wait of ours.
        function.can_block_functions.append(("logging/__init__.py", {"emit", "flush"}))
        function.can_block_predicate = guard(name, function)
    buster.activate()
    try:
        yield
    finally:
        buster.deactivate()
    if found:
        calls = "\n".join(dict.fromkeys(found))
        pytest.fail(f"blocking calls on the event loop:\n{calls}", pytrace=False)
