"""What a run did, from the trials' own log and the tool's record; the tables and targets."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .curves import Params, Workload, loss


@dataclass
class Trial:
    """One trial as its log tells it."""

    parameters: Params
    start: float
    end: float
    steps: dict[int, tuple[float, float]] = field(default_factory=dict)  # step -> (time, value)
    ended: str = ""  # "done" (returned its value), an exception's name, "" (killed)


def read_log(path: Path) -> dict[str, Trial]:
    """Point -> its trial; a trial killed mid-step ends at its last step's line."""
    trials: dict[str, Trial] = {}
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        key, when = entry["k"], entry["t"]
        if entry["e"] == "start":
            trials[key] = Trial(entry["p"], when, when)
        elif entry["e"] == "step":
            trials[key].steps[entry["s"]] = (when, entry["v"])
            trials[key].end = max(trials[key].end, when)
        else:
            trials[key].end, trials[key].ended = when, entry["why"]
    return trials


def best_final(trials: dict[str, Trial], steps: int) -> float:
    """The noise-free final value at the best trial that ran every step and returned its
    value (picked by its final report): a trial stopped at its last step does not count."""
    full = [t for t in trials.values() if len(t.steps) == steps and t.ended == "done"]
    if not full:
        return math.nan
    best = min(full, key=lambda t: t.steps[steps - 1][1])
    return loss(best.parameters, steps - 1, noisy=False)


@dataclass
class Measured:
    """One run of one tool."""

    compute: float
    steps: int
    stopped: int
    best: float
    wall: float
    cpu: float
    points: frozenset[str]
    latencies: list[float]
    stop_to_end: list[float]
    ax_calls: dict[str, dict[str, list[float]]]

    @classmethod
    def of(cls, record: dict[str, Any], trials: dict[str, Trial], workload: Workload) -> Measured:
        stops = record["stops"]
        return cls(
            compute=sum(t.end - t.start for t in trials.values()),
            steps=sum(len(t.steps) for t in trials.values()),
            stopped=sum(len(t.steps) < workload.steps for t in trials.values()),
            best=best_final(trials, workload.steps),
            wall=record["wall"],
            cpu=record["cpu"],
            points=frozenset(trials),
            latencies=record["latencies"],
            stop_to_end=[trials[k].end - asked for k, asked in stops.items() if k in trials],
            ax_calls=record.get("ax_calls", {}),
        )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def ms_pair(values: list[float]) -> str:
    """``median / max`` in ms, or "-" for none."""
    if not values:
        return "-"
    return f"{1000 * median(values):.1f} / {1000 * max(values):.1f}"


@dataclass(frozen=True)
class Row:
    """A tool's numbers over its runs: medians, latencies pooled."""

    name: str
    runs: list[Measured]

    def median_of(self, name: str) -> float:
        return median([getattr(run, name) for run in self.runs])

    def pooled(self, name: str) -> list[float]:
        return [value for run in self.runs for value in getattr(run, name)]

    def busy(self, slots: int) -> float:
        """The share of slot time trials were busy: compute / (slots x wall)."""
        return median([run.compute / (slots * run.wall) for run in self.runs])


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
    ]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def main_table(rows: dict[str, Row], baseline: str, slots: int) -> str:
    ours = rows[baseline]
    header = ["tool", "compute s", "saved", "steps run", "stopped", "best final", "wall s"]
    header += ["wall / ours", "slots busy", "driver CPU s", "report-to-stop ms p50 / max"]
    header += ["stop-to-end ms p50 / max"]
    cells = []
    for row in rows.values():
        compute = row.median_of("compute")
        cells.append(
            [
                row.name,
                f"{compute:.1f}",
                f"{1 - compute / ours.median_of('compute'):.0%}",
                f"{row.median_of('steps'):g}",
                f"{row.median_of('stopped'):g}",
                f"{row.median_of('best'):.5f}",
                f"{row.median_of('wall'):.1f}",
                f"{row.median_of('wall') / ours.median_of('wall'):.2f}",
                f"{row.busy(slots):.0%}",
                f"{row.median_of('cpu'):.1f}",
                ms_pair(row.pooled("latencies")),
                ms_pair(row.pooled("stop_to_end")),
            ]
        )
    return markdown(header, cells)


def waiting_table(rows: dict[str, Row], baseline: str) -> str:
    """Compute the stopped trials ran while their stop was on its way, per run (median).

    "stops" counts stop requests: one that comes after a trial's last report stops
    nothing, so there may be more of them than trials stopped.
    """
    base = rows[baseline].median_of("compute")
    header = [
        "tool",
        "stops",
        "report-to-stop, summed s",
        "stop-to-end, summed s",
        "of ours' compute",
    ]
    cells = []
    for row in rows.values():
        if not row.pooled("latencies"):
            continue
        deciding = median([sum(run.latencies) for run in row.runs])
        ending = median([sum(run.stop_to_end) for run in row.runs])
        stops = median([len(run.latencies) for run in row.runs])
        share = f"{(deciding + ending) / base:.1%}"
        cells.append([row.name, f"{stops:g}", f"{deciding:.2f}", f"{ending:.2f}", share])
    return markdown(header, cells)


def ax_thread_lines(row: Row) -> list[str]:
    """Where the Ax thread's time went in our runs: the calls that took most of it."""
    calls: dict[str, dict[str, list[float]]] = {}
    for run in row.runs:
        for name, timing in run.ax_calls.items():
            entry = calls.setdefault(name, {"waits": [], "runs": []})
            entry["waits"] += timing["waits"]
            entry["runs"] += timing["runs"]
    if not calls:
        return []
    busy = sum(sum(timing["runs"]) for timing in calls.values())
    wall = sum(run.wall for run in row.runs)
    lines = [f"{row.name}: the Ax thread ran calls {busy / wall:.0%} of the wall time"]
    by_total = sorted(calls.items(), key=lambda item: -sum(item[1]["runs"]))
    for name, timing in by_total[:3]:
        lines.append(
            f"  {name}: {len(timing['runs'])} calls, ran ms p50 / max {ms_pair(timing['runs'])},"
            f" queued ms p50 / max {ms_pair(timing['waits'])}"
        )
    return lines


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def target_lines(
    rows: dict[str, Row], baseline: str, stopping: str, rivals: list[str]
) -> list[str]:
    """The issue's local targets, each with the numbers that decide it."""
    es, base = rows[stopping], rows[baseline]
    saved = 1 - es.median_of("compute") / base.median_of("compute")
    equal = [
        math.isclose(a.best, b.best, rel_tol=1e-9) for a, b in zip(es.runs, base.runs, strict=True)
    ]
    lines = [
        f"at least 40 % of compute saved at an equal best value: {saved:.0%} saved, best equal"
        f" in {sum(equal)} of {len(equal)} reps: {verdict(saved >= 0.4 and all(equal))}"
    ]
    for tool in rivals:
        theirs = rows[tool].median_of("compute")
        lines.append(
            f"less compute than {rows[tool].name}: {es.median_of('compute'):.1f} s against"
            f" {theirs:.1f} s: {verdict(es.median_of('compute') < theirs)}"
        )
    latencies = es.pooled("latencies")
    if latencies:
        lines.append(
            f"report-to-stop under 50 ms locally: median {1000 * median(latencies):.1f} ms,"
            f" max {1000 * max(latencies):.1f} ms over {len(latencies)} stops:"
            f" {verdict(max(latencies) < 0.05)}"
        )
    return lines


def same_points(rows: dict[str, Row]) -> bool:
    """Whether every run ran the same points (it should: one Sobol sequence)."""
    return len({run.points for row in rows.values() for run in row.runs}) == 1
