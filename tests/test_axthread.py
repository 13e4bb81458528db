"""The Ax thread: one thread, urgent calls (recording outcomes) before queued routine ones."""

from __future__ import annotations

import threading

import pytest

from ax_scheduler._axthread import AxThread


def test_urgent_calls_overtake_queued_routine_calls_in_submission_order() -> None:
    ax_thread = AxThread("test-ax")
    release = threading.Event()
    ran: list[str] = []
    busy = ax_thread.submit(release.wait)  # a long Ax call already running
    futures = [
        ax_thread.submit(ran.append, "generate 1"),
        ax_thread.submit(ran.append, "record 1", urgent=True),
        ax_thread.submit(ran.append, "generate 2"),
        ax_thread.submit(ran.append, "record 2", urgent=True),
    ]
    release.set()
    for future in [busy, *futures]:
        future.result(timeout=5)
    assert ran == ["record 1", "record 2", "generate 1", "generate 2"]
    ax_thread.shutdown()


def test_every_call_runs_on_the_same_thread_and_errors_reach_the_caller() -> None:
    ax_thread = AxThread("test-ax")
    names = {ax_thread.submit(lambda: threading.current_thread().name).result() for _ in range(5)}
    assert names == {"test-ax"}
    with pytest.raises(ZeroDivisionError):
        ax_thread.submit(lambda: 1 / 0).result(timeout=5)
    ax_thread.shutdown()


def test_shutdown_runs_what_is_queued_then_refuses_new_calls() -> None:
    ax_thread = AxThread("test-ax")
    release = threading.Event()
    ax_thread.submit(release.wait)
    queued = ax_thread.submit(lambda: "done")
    ax_thread.shutdown()
    release.set()
    assert queued.result(timeout=5) == "done"
    with pytest.raises(RuntimeError, match="after shutdown"):
        ax_thread.submit(print)


def test_a_cancelled_queued_call_never_runs() -> None:
    ax_thread = AxThread("test-ax")
    release = threading.Event()
    ran: list[int] = []
    ax_thread.submit(release.wait)
    cancelled = ax_thread.submit(ran.append, 1)
    assert cancelled.cancel()
    after = ax_thread.submit(ran.append, 2)
    release.set()
    after.result(timeout=5)
    assert ran == [2]
    ax_thread.shutdown()


def test_only_a_quasi_random_generator_counts_as_generating_without_data() -> None:
    """Under Sobol a whole wave is generated ahead; a model's candidates are not."""
    from ax.adapter.registry import Generators
    from ax.generation_strategy.generation_node import GenerationStep
    from ax.generation_strategy.generation_strategy import GenerationStrategy

    from ax_scheduler._ax import AxAdapter
    from conftest import legacy_client, modern_client

    assert AxAdapter.wrap(legacy_client())._generates_without_data()  # Sobol only
    assert AxAdapter.wrap(legacy_client(sobol=False))._generates_without_data()  # Sobol first
    botorch_first = GenerationStrategy(
        nodes=[GenerationStep(generator=Generators.BOTORCH_MODULAR, num_trials=-1)]
    )
    assert not AxAdapter.wrap(
        legacy_client(generation_strategy=botorch_first)
    )._generates_without_data()
    # Ax 1.x's default starts with a center point (a node of its own kind): not assumed.
    assert not AxAdapter.wrap(modern_client(sobol=False))._generates_without_data()
