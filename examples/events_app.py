"""A web page that follows an optimization live: the scheduler's events as
Server-Sent Events, from a plain asyncio HTTP server (no framework needed).

Run it and open the printed address: each trial appears when it is queued, its
curve grows as it reports, and the early-stopping strategy's stops show up as
they happen. ``GET /events`` is the stream itself (``text/event-stream``, one
JSON event per message), so any client can follow it::

    python examples/events_app.py --port 8000
    curl -N http://127.0.0.1:8000/events
"""

import argparse
import asyncio
import json
import time

from ax.api.client import Client
from ax.api.configs import RangeParameterConfig

from ax_scheduler import AxScheduler, JobLibRunner, report

PAGE = b"""<!doctype html><meta charset="utf-8"><title>ax-scheduler live</title>
<h1>Trials</h1><table id="t" border="1" cellpadding="4"><tr><th>trial</th><th>state</th>
<th>last step</th><th>objective</th></tr></table><p id="run"></p>
<script>
const rows = {};
function row(i) {
  if (!rows[i]) { const r = document.getElementById("t").insertRow(); r.id = "trial-" + i;
    for (let k = 0; k < 4; k++) r.insertCell(); r.cells[0].textContent = i; rows[i] = r; }
  return rows[i];
}
const source = new EventSource("/events");
source.onmessage = (message) => {
  const e = JSON.parse(message.data);
  if (e.trial_index === null) {
    document.getElementById("run").textContent = e.kind + (e.stopped_because ? ": " + e.stopped_because : "");
    if (e.kind === "run_ended") source.close();
    return;
  }
  const r = row(e.trial_index);
  r.cells[1].textContent = e.kind.replace("trial_", "");
  if (e.kind === "trial_reported") { r.cells[2].textContent = e.step; r.cells[3].textContent = e.metrics.loss.toFixed(3); }
  if (e.kind === "trial_completed") r.cells[3].textContent = e.metrics.loss.toFixed(3);
};
</script>
"""


def train(parameters):
    """A stand-in for a training run: 30 epochs, reporting its loss after each."""
    lr, width = parameters["lr"], parameters["width"]
    loss = 0.0
    for epoch in range(30):
        time.sleep(0.03)
        loss = (lr - 0.3) ** 2 + (width - 0.6) ** 2 + 2.0 / (epoch + 1)
        report({"loss": loss}, step=epoch)
    return {"loss": loss}


def make_client():
    client = Client(random_seed=0)  # the same trials, and stops, every run
    client.configure_experiment(
        name="events_app",
        parameters=[
            RangeParameterConfig(name="lr", parameter_type="float", bounds=(0.0, 1.0)),
            RangeParameterConfig(name="width", parameter_type="float", bounds=(0.0, 1.0)),
        ],
    )
    client.configure_optimization(objective="-loss")
    return client


async def stream_events(scheduler, writer):
    """Send every event to one browser (or curl) until the scheduler closes."""
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
    )
    async for event in scheduler.events():
        writer.write(f"data: {json.dumps(event.to_json())}\n\n".encode())
        await writer.drain()
        if event.kind == "run_ended":
            break


async def serve_http(scheduler, subscribed, reader, writer):
    request = await reader.readline()
    while (await reader.readline()) not in (b"\r\n", b""):
        pass  # the headers: nothing in them matters here
    try:
        if request.startswith(b"GET /events"):
            stream = asyncio.ensure_future(stream_events(scheduler, writer))
            subscribed.set()
            await stream
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + PAGE)
    except ConnectionError:
        pass  # the page was closed
    finally:
        writer.close()


async def main(port, max_trials, wait_for_subscriber):
    config = {
        # Stop a trial whose loss at the same epoch is worse than 70 % of the others.
        "early_stopping": {"percentile": 70, "min_progression": 8, "min_curves": 3},
        "progress": False,
    }
    async with AxScheduler(make_client(), JobLibRunner(n_jobs=2), config) as scheduler:
        scheduler.set_objective_function(train)
        subscribed = asyncio.Event()
        server = await asyncio.start_server(
            lambda r, w: serve_http(scheduler, subscribed, r, w), "127.0.0.1", port
        )
        print(f"serving on http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
        if wait_for_subscriber:
            await subscribed.wait()
        best = await scheduler.run_optimization_async(max_trials=max_trials)
        summary = scheduler.last_run
        print(f"best: {best}")
        print(f"completed {len(summary.completed)}, stopped early {len(summary.early_stopped)}")
        await asyncio.sleep(0.2)  # let the streams send run_ended
        server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-trials", type=int, default=16)
    parser.add_argument(
        "--wait-for-subscriber", action="store_true", help="start once /events has a reader"
    )
    args = parser.parse_args()
    asyncio.run(main(args.port, args.max_trials, args.wait_for_subscriber))
