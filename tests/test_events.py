"""The run's events: ``scheduler.events()``, ``on_event`` and the example web app.

The example app (examples/events_app.py) is run as a user runs it, in its own
process, and followed over HTTP like a browser's EventSource does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import curves
from ax_scheduler import AxScheduler, Event, JobLibRunner
from ax_scheduler import _events as events_module
from conftest import modern_client
from test_early_stopping import BAD, EARLY_STOPPING, GOOD, run_batch

EXAMPLES = Path(__file__).parents[1] / "examples"
EXAMPLE_ARGS = ["--port", "0", "--max-trials", "6", "--wait-for-subscriber"]
OUTCOMES = {"trial_completed", "trial_failed", "trial_early_stopped", "trial_abandoned"}


def check_each_trials_story(events: list[dict[str, Any]]) -> dict[int, list[str]]:
    """Queued, started, reports, one outcome, in that order, for every trial."""
    stories: dict[int, list[str]] = {}
    for event in events:
        if event["trial_index"] is not None:
            stories.setdefault(event["trial_index"], []).append(event["kind"])
    for index, kinds in stories.items():
        assert kinds[:2] == ["trial_queued", "trial_started"], (index, kinds)
        assert kinds[-1] in OUTCOMES, (index, kinds)
        assert set(kinds[2:-1]) <= {"trial_reported"}, (index, kinds)
    return stories


async def read_sse(port: int) -> list[dict[str, Any]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /events HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n")
    await writer.drain()
    assert b"200 OK" in await reader.readline()
    events = []
    while line := await reader.readline():
        if line.startswith(b"data: "):
            events.append(json.loads(line[len(b"data: ") :]))
            if events[-1]["kind"] == "run_ended":
                break
    writer.close()
    return events


async def fetch_page(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await writer.drain()
    page = await reader.read()
    writer.close()
    return page


def test_the_example_app_streams_every_trials_story_to_a_browser(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "events_app.py"), *EXAMPLE_ARGS],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("serving on http://127.0.0.1:"), first
        port = int(first.rsplit(":", 1)[1])
        page = asyncio.run(fetch_page(port))
        assert b'new EventSource("/events")' in page
        events = asyncio.run(asyncio.wait_for(read_sse(port), 120))
        rest, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0
    assert events[0]["kind"] == "run_started"
    assert events[-1]["kind"] == "run_ended"
    stories = check_each_trials_story(events)
    assert len(stories) == 6
    assert {"trial_reported", "trial_completed"} <= {event["kind"] for event in events}
    # Which trials stop depends on timing (a model fit delays decisions): the
    # stream and the run's own count agree, whatever they are.
    stopped = [i for i, story in stories.items() if story[-1] == "trial_early_stopped"]
    assert events[-1]["early_stopped"] == sorted(stopped)
    assert f"stopped early {len(stopped)}" in rest


def test_on_event_sees_a_batch_in_order_with_its_stops_and_a_raising_callback_is_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("callback bug")

    config = {"job_output_dir": str(tmp_path), "early_stopping": EARLY_STOPPING}
    with AxScheduler(modern_client(), JobLibRunner(n_jobs=2), config) as s:
        s.set_objective_function(curves.curve)
        s.on_event(seen.append)
        s.on_event(broken)
        with caplog.at_level(logging.ERROR, logger="ax_scheduler"):
            run_batch(s, GOOD + BAD)
    stories = check_each_trials_story([event.to_json() for event in seen])
    assert [story[-1] for story in stories.values()] == [
        "trial_completed",
        "trial_completed",
        "trial_early_stopped",
        "trial_early_stopped",
    ]
    reported = [e for e in seen if e.kind == "trial_reported" and e.trial_index == 1]
    assert [e.data["step"] for e in reported] == [float(step) for step in range(curves.STEPS)]
    assert reported[-1].data["metrics"] == {"objective": curves.loss(GOOD[1], curves.STEPS - 1)}
    stop = next(e for e in seen if e.kind == "trial_early_stopped")
    assert "percentile" in stop.data["reason"]
    assert [r for r in caplog.records if "gets no more events" in r.getMessage()]


async def test_events_end_when_the_scheduler_closes_and_a_slow_reader_loses_the_oldest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_module, "QUEUE_SIZE", 5)
    config = {"job_output_dir": str(tmp_path)}
    scheduler = AxScheduler(modern_client(), JobLibRunner(n_jobs=1, backend="threading"), config)
    scheduler.set_objective_function(curves.curve)
    stream = scheduler.events()
    first = asyncio.ensure_future(stream.__anext__())  # subscribed from here on
    await asyncio.sleep(0)
    async with scheduler.batch_trial_context_async() as batch:
        batch.add_trial({"x": 0.0, "y": 0.0})
    await scheduler.aclose()
    received = [await first] + [event async for event in stream]
    # 23 events (queued, started, 20 reports, completed) through a queue of 5.
    assert received[0].kind == "trial_queued"
    assert sum(event.dropped for event in received) + len(received) == 3 + curves.STEPS
    assert received[-1].kind == "trial_completed"
