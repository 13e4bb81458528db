"""The HTML report: its sections from real runs, escaping, offline, and in Chromium.

Also what makes it readable: a trace axis that an outlier does not squash, a
results table within the page's width, one timeline lane per slot used, and the
learning curves of a run with early stopping, the stopped trials marked.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.offline
import pytest

import curves
import objectives
import report_screenshot
from ax_scheduler._curves import curves_figure, curves_of
from ax_scheduler._figures import assign_lanes, pareto_mask, trace_figure
from ax_scheduler._report import render_report, timeline_bars, write_report
from ax_scheduler._table import results_frame
from conftest import legacy_client, sobol_only

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return report_screenshot.single_objective_experiment(tmp_path_factory.mktemp("single"))


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return report_screenshot.multi_objective_experiment(tmp_path_factory.mktemp("multi"))


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Trials 0, 1 complete their curves, 2, 3 stopped early, 4 reported nothing."""
    return report_screenshot.early_stopping_experiment(tmp_path_factory.mktemp("stopped"))


@pytest.fixture
def single_frame(single: Any) -> Any:
    return results_frame(single)


def plot_count(page: str) -> int:
    return page.count('class="plotly-graph-div"')


def still_running(frame: Any) -> Any:
    """``frame`` as if every trial had started and none had finished yet."""
    running = frame.copy()
    running["status"] = "RUNNING"
    running[["objective", "objective_sem", "duration_s"]] = math.nan
    running["finished_at"] = pd.NaT
    running["failure_reason"] = None
    return running


def test_single_objective_report_has_every_section(single: Any, single_frame: Any) -> None:
    page = render_report(single, single_frame, now=NOW)

    for section in ("summary", "optimization-trace", "objectives-against-parameters"):
        assert f'<section id="{section}">' in page
    assert '<section id="timeline-of-trials">' in page
    assert '<section id="results">' in page
    assert "pareto-front" not in page
    assert plot_count(page) == 3  # the trace, the slice plots, the timeline
    assert "learning-curves" not in page  # no trial reported while it ran
    assert "Stopped early" not in page
    assert "8 (7 completed, 1 failed)" in page
    best = single_frame.loc[single_frame["objective"].idxmin()]
    assert f"<b>{best['objective']:.6g}</b> in trial {best['trial_index']}" in page
    (reason,) = single_frame.loc[single_frame["status"] == "FAILED", "failure_reason"]
    assert reason.startswith("RuntimeError: solver diverged at x=")  # x in [-2, -1.5)
    assert f'<td class="text">{reason}</td>' in page  # the failed trial's row, wrapped


def test_multi_objective_report_highlights_the_pareto_front(multi: Any) -> None:
    frame = results_frame(multi)
    page = render_report(multi, frame, now=NOW)

    assert '<section id="pareto-front">' in page
    assert plot_count(page) == 6  # two traces, two slice figures, the front, the timeline
    assert "a (minimize), b (minimize)" in page
    front = pareto_mask(frame["a"].to_numpy(), frame["b"].to_numpy(), "minimize", "minimize")
    assert 0 < front.sum() < len(frame)


@pytest.mark.parametrize(
    ("x_direction", "y_direction"), list(itertools.product(["minimize", "maximize"], repeat=2))
)
def test_pareto_mask_keeps_exactly_the_non_dominated_points(
    x_direction: str, y_direction: str
) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 6, 40).astype(float), rng.integers(0, 6, 40).astype(float)
    sx, sy = (1 if x_direction == "minimize" else -1), (1 if y_direction == "minimize" else -1)

    def dominated(i: int) -> bool:
        return any(
            sx * x[j] <= sx * x[i]
            and sy * y[j] <= sy * y[i]
            and (sx * x[j] < sx * x[i] or sy * y[j] < sy * y[i])
            for j in range(len(x))
        )

    expected = [not dominated(i) for i in range(len(x))]
    assert pareto_mask(x, y, x_direction, y_direction).tolist() == expected


def test_a_trial_takes_the_lowest_lane_free_at_its_start() -> None:
    intervals = [(0, 5), (1, 3), (4, 6), (5, 9), (5, 7), (6, 8)]
    assert assign_lanes(intervals) == [0, 1, 1, 0, 2, 1]


def test_a_lane_is_free_from_the_moment_its_trial_ended() -> None:
    assert assign_lanes([(0, 10), (10, 12)]) == [0, 0]
    assert assign_lanes([(0, 10), (9.99, 12)]) == [0, 1]


def test_trials_that_overlap_for_milliseconds_take_two_lanes() -> None:
    # Quick trials on two slots (seconds): each overlaps the next by 10 to 20 ms.
    intervals = [(0.0, 0.03), (0.01, 0.05), (0.04, 0.07), (0.06, 0.09)]
    assert assign_lanes(intervals) == [0, 1, 0, 1]


def test_user_text_is_escaped_and_long_text_cut(single: Any, single_frame: Any) -> None:
    frame = single_frame.copy()
    failed = frame.index[frame["status"] == "FAILED"][0]
    reason = "<script>alert('reason')</script> " + "x" * 200
    frame.loc[failed, "failure_reason"] = reason

    page = render_report(single, frame, title="<i>my run</i>", now=NOW)

    assert "<script>alert" not in page
    assert "<i>my run</i>" not in page
    assert "<h1>&lt;i&gt;my run&lt;/i&gt;</h1>" in page
    cell = re.search(
        r'<td class="text"><details><summary><span class="short">([^<]*)</span></summary>'
        r"([^<]*)</details></td>",
        page,
    )
    assert cell is not None  # cut, the whole text a click away
    assert cell.group(1).startswith("&lt;script&gt;alert(&#x27;reason&#x27;)")
    assert cell.group(1).endswith("x\u2026")
    assert cell.group(2) == "&lt;script&gt;alert(&#x27;reason&#x27;)&lt;/script&gt; " + "x" * 200
    assert len("<script>alert('reason')</script> x") < 80 < len(reason)


def test_report_loads_nothing_from_the_network(single: Any, single_frame: Any) -> None:
    page = render_report(single, single_frame, now=NOW)
    plotly_js = plotly.offline.get_plotlyjs()

    assert page.count(plotly_js) == 1
    rest = page.replace(plotly_js, "")
    assert not re.search(r"<script[^>]*\ssrc=|<link|@import|url\(", rest)
    assert "http://" not in rest
    assert "https://" not in rest


def test_report_of_running_trials_says_none_completed(single: Any, single_frame: Any) -> None:
    page = render_report(single, still_running(single_frame), now=NOW)

    assert "No completed trials yet." in page
    assert "8 (8 running)" in page
    assert plot_count(page) == 1  # only the timeline: bars run up to now
    assert "running for" in page  # up to the report's time


def test_report_of_an_experiment_without_trials() -> None:
    experiment = legacy_client().experiment
    page = render_report(experiment, results_frame(experiment), now=NOW)

    assert "No completed trials yet." in page
    assert "No trial has started yet." in page
    assert "No trials yet." in page
    assert plot_count(page) == 0


def test_timeline_hover_names_trial_status_duration_and_job(single: Any, single_frame: Any) -> None:
    frame = single_frame.copy()
    frame["job_id"], frame["host"] = "4242", "node-7"
    done = frame.index[frame["status"] == "COMPLETED"][0]
    frame.loc[done, "queued_at"] = frame.loc[done, "started_at"] - pd.Timedelta(seconds=90)

    page = render_report(single, frame, now=NOW)

    assert f"trial {frame.loc[done, 'trial_index']}: COMPLETED" in page
    assert "queued 1 min 30 s" in page
    assert re.search(r"ran 0\.\d+ s", page)
    assert "job 4242, on node-7, runner joblib" in page


def test_write_report_writes_the_file_and_returns_its_path(single: Any, tmp_path: Path) -> None:
    target = tmp_path / "a dir" / "report.html"

    written = write_report(single, target)

    assert written == target
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]  # no temp file left


# --- the trace's value axis -------------------------------------------------------

#: The issue's run: a best of 6 and one outlier of 1827, the rest tens to 150.
WITH_OUTLIER = [96.0, 41.0, 1827.0, 23.0, 150.0, 12.0, 6.0]


def with_objective(frame: Any, values: list[float]) -> Any:
    """``frame`` with these objective values for its completed trials, in order."""
    changed = frame.copy()
    changed.loc[changed["status"] == "COMPLETED", "objective"] = values
    return changed


def completed(frame: Any) -> Any:
    return frame[frame["status"] == "COMPLETED"]


def traces_named(figure: Any, name: str) -> list[Any]:
    return [trace for trace in figure.data if trace.name == name]


def clip_notes(figure: Any) -> list[str]:
    """The notes in the figure that say its value axis is clipped."""
    return [note.text for note in figure.layout.annotations if "axis clipped" in note.text]


def best_so_far_share(best: list[float], low: float, high: float, log: bool) -> float:
    """How much of an axis from ``low`` to ``high`` the best-so-far trace spans."""
    scale = np.log10 if log else np.asarray
    values = scale(np.asarray(best, dtype=float))
    return float((values.max() - values.min()) / (high - low))


def test_an_outlier_among_positive_values_puts_the_trace_on_a_log_axis(single_frame: Any) -> None:
    done = completed(with_objective(single_frame, WITH_OUTLIER))

    figure = trace_figure(done, "objective", "minimize")

    assert figure.layout.yaxis.type == "log"
    drawn = np.log10([y for trace in figure.data for y in trace.y])
    best = traces_named(figure, "best so far")[0].y
    # The whole axis covers every value drawn; the trace spans about half of it,
    # where a linear axis would give it 5 % (90 of 1821).
    assert best_so_far_share(best, drawn.min(), drawn.max(), log=True) > 0.4
    assert best_so_far_share(best, 6, 1827, log=False) < 0.06


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_an_outlier_log_cannot_help_with_is_drawn_off_scale(
    single_frame: Any, direction: str
) -> None:
    sign = 1 if direction == "minimize" else -1  # maximizing, the outlier is the lowest
    values = [sign * (value - 100) for value in WITH_OUTLIER]  # zero and negatives: no log
    outlier = sign * 1727
    done = completed(with_objective(single_frame, values))
    outlier_trial = done["trial_index"].iloc[WITH_OUTLIER.index(1827.0)]

    figure = trace_figure(done, "objective", direction)

    axis = figure.layout.yaxis
    assert axis.type == "linear"
    low, high = axis.range
    assert best_so_far_share(traces_named(figure, "best so far")[0].y, low, high, log=False) > 0.4
    assert not low < outlier < high
    assert all(outlier not in trace.y for trace in traces_named(figure, "observed"))
    off_scale = traces_named(figure, "off scale")
    assert [list(trace.text) for trace in off_scale] == [
        [f"trial {outlier_trial}: {outlier} (off scale)"]
    ] * 2
    assert all(low < y < high for trace in off_scale for y in trace.y)  # on the edge
    (note,) = clip_notes(figure)
    assert ("1 above" if direction == "minimize" else "1 below") in note
    assert f"to {outlier})" in note


def test_values_close_together_keep_a_plain_linear_axis(single_frame: Any) -> None:
    done = completed(with_objective(single_frame, [5.0, 3.0, 4.0, 2.0, 6.0, 1.0, 3.0]))

    figure = trace_figure(done, "objective", "minimize")

    assert figure.layout.yaxis.type == "linear"
    assert figure.layout.yaxis.range is None
    assert traces_named(figure, "off scale") == []
    assert clip_notes(figure) == []


# --- the results table --------------------------------------------------------------

FIRST_COLUMNS = ["trial_index", "status", "x", "y", "objective", "failure_reason", "duration_s"]


def table_headers(page: str) -> tuple[list[str], list[str]]:
    """The results table's column names: those shown at first, and those on demand."""
    table = page[page.index('<table class="results">') :]
    headers = re.findall(r'<th( class="more")?>([^<]*(?:<wbr>[^<]*)*)</th>', table)
    names = [(more, name.replace("<wbr>", "")) for more, name in headers]
    return [n for more, n in names if not more], [n for more, n in names if more]


def test_results_table_shows_parameters_and_metrics_and_the_rest_on_demand(
    single: Any, single_frame: Any
) -> None:
    page = render_report(single, single_frame, now=NOW)

    first, more = table_headers(page)
    assert first == FIRST_COLUMNS
    # Every column but the curves (none here; the learning curves draw them).
    assert sorted(first + more) == sorted(single_frame.columns.drop("curve"))
    assert {"last_step", "early_stop_reason"} <= set(more)  # no trial reported or stopped
    assert {"job_id", "host", "started_at", "workdir", "objective_sem"} <= set(more)
    assert '<input type="checkbox" id="all-columns">' in page
    assert "#all-columns:checked ~ .table-wrap .more { display: table-cell; }" in page
    rows = re.findall(r"<tr class=\"[A-Z_]+\">.*?</tr>", page)
    assert len(rows) == len(single_frame)
    more_cells = [len(re.findall(r'<td class="[^"]*\bmore\b', row)) for row in rows]
    assert more_cells == [len(more)] * len(rows)


# --- timeline lanes from real runs ------------------------------------------------------


@pytest.fixture(scope="module")
def two_slots(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A 2-slot run of 0.3 s trials: four to the end, then more cut short by a timeout.

    The timeout cancels two running trials and at least one that waited for a
    slot (``prefetch_trials``) and never got one.
    """
    from ax_scheduler import AxScheduler, JobLibRunner

    output = tmp_path_factory.mktemp("two-slots")
    scheduler = AxScheduler(legacy_client(), JobLibRunner(n_jobs=2), {"job_output_dir": output})
    try:
        scheduler.set_objective_function(objectives.slow_rosenbrock)
        scheduler.run_optimization(max_trials=4)
        scheduler.run_optimization(max_trials=10, timeout=0.45)
        return scheduler.experiment
    finally:
        scheduler.close()


def lanes_of(frame: Any) -> Any:
    """The timeline's bars by trial index, each with its lane."""
    return timeline_bars(frame, pd.Timestamp(NOW)).set_index("trial_index")


def test_timeline_of_a_two_slot_run_has_two_lanes(two_slots: Any) -> None:
    frame = results_frame(two_slots)
    ran = frame[frame["status"] == "COMPLETED"]

    bars = lanes_of(ran)

    assert len(bars) >= 4
    assert sorted(set(bars["lane"])) == [0, 1]
    first, second = bars.loc[0], bars.loc[1]
    assert second["start"] < first["end"]  # they ran at once: two lanes, not one


def test_a_trial_abandoned_while_waiting_for_a_slot_is_in_no_lane(two_slots: Any) -> None:
    frame = results_frame(two_slots)
    never = frame[frame["status"] == "ABANDONED"].sort_values("queued_at").iloc[-1]

    bars = lanes_of(frame)

    assert sorted(set(bars["lane"])) == [0, 1]  # not a third lane for the 2-slot runner
    assert pd.isna(never["started_at"])
    assert never["trial_index"] not in bars.index


def test_live_timeline_leaves_a_trial_waiting_for_a_slot_out(
    tmp_path: Path, scheduler_factory: Any
) -> None:
    scheduler = scheduler_factory(
        legacy_client(),
        objective=objectives.one_second_rosenbrock,
        synchronous=False,
        job_output_dir=tmp_path,
    )
    with scheduler.batch_trial_context() as batch:
        for x in (-1.0, 0.0, 1.0):
            batch.add_trial({"x": x, "y": 0.5})
    deadline = time.monotonic() + 10
    while len(running := lanes_of(frame := scheduler.results())) < 2:
        assert time.monotonic() < deadline, frame
        time.sleep(0.02)

    assert set(frame["status"]) == {"RUNNING"}
    assert sorted(running["lane"]) == [0, 1]
    assert frame["started_at"].isna().sum() == 1  # the third waits for a slot


# --- in a real browser ------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # No skip: CI installs chromium (ci/install-chromium.sh); without it this must fail.
    assert Path(report_screenshot.CHROMIUM).exists(), (
        f"no chromium at {report_screenshot.CHROMIUM}: run ci/install-chromium.sh "
        "or set CHROMIUM to a Chromium binary"
    )
    with sync_playwright() as playwright:
        launched = report_screenshot.launch(playwright)
        yield launched
        launched.close()


@pytest.mark.browser
@pytest.mark.parametrize(
    ("report", "plots"), [("single", 3), ("multi", 6), ("running", 1), ("stopped", 4)], ids=str
)
def test_report_renders_offline_in_chromium(
    report: str, plots: int, browser: Any, single: Any, multi: Any, stopped: Any, tmp_path: Path
) -> None:
    experiment = {"multi": multi, "stopped": stopped}.get(report, single)
    frame = results_frame(experiment)
    if report == "running":
        frame = still_running(frame)
    path = write_report(experiment, tmp_path / "report.html", frame=frame)
    page = report_screenshot.OfflinePage(browser)

    page.open(path).screenshot(path=tmp_path / "report.png", full_page=True)

    assert page.errors == []
    assert page.blocked == []
    drawn = page.plots()
    assert len(drawn) == plots
    assert all(plot["panels"] > 0 and plot["drawn"] == plot["panels"] for plot in drawn), drawn
    assert (tmp_path / "report.png").stat().st_size > 10_000


#: Eight parameters of the kind a new user sweeps, x and y among them for Rosenbrock.
WIDE_PARAMETERS = [
    {"name": "x", "type": "range", "bounds": [-2.0, 2.0]},
    {"name": "y", "type": "range", "bounds": [-2.0, 2.0]},
    {"name": "learning_rate", "type": "range", "bounds": [1e-5, 1e-1], "log_scale": True},
    {"name": "weight_decay", "type": "range", "bounds": [1e-6, 1e-2], "log_scale": True},
    {"name": "dropout_rate", "type": "range", "bounds": [0.0, 0.5]},
    {"name": "num_hidden_layers", "type": "range", "bounds": [1, 8], "value_type": "int"},
    {"name": "batch_size", "type": "range", "bounds": [16, 512], "value_type": "int"},
    {
        "name": "optimizer",
        "type": "choice",
        "values": ["adam", "sgd", "rmsprop"],
        "is_ordered": False,
        "sort_values": False,
    },
]


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Eight trials over eight parameters on two local workers, one or more failing."""
    from ax.service.ax_client import AxClient, ObjectiveProperties

    client = AxClient(verbose_logging=False, generation_strategy=sobol_only())
    client.create_experiment(
        name="wide_sweep",
        parameters=WIDE_PARAMETERS,
        objectives={"objective": ObjectiveProperties(minimize=True)},
    )
    return report_screenshot.run(
        client, report_screenshot.timed_rosenbrock, tmp_path_factory.mktemp("wide")
    )


#: The results table's widths, and whether the columns on demand show.
TABLE_WIDTHS_JS = """() => {
  const wrap = document.querySelector('.table-wrap');
  const shown = name => Array.from(wrap.querySelectorAll('th'))
    .filter(th => th.textContent === name && th.offsetWidth > 0).length > 0;
  return {wrap: wrap.scrollWidth, room: wrap.clientWidth,
          page: document.documentElement.scrollWidth, viewport: window.innerWidth,
          job_id: shown('job_id'), workdir: shown('workdir')};
}"""

#: The trace's value axis as plotly drew it, and the best-so-far trace's values.
TRACE_AXIS_JS = """() => {
  const plot = document.querySelector('#optimization-trace .plotly-graph-div');
  const best = plot._fullData.find(trace => trace.name === 'best so far');
  return {type: plot._fullLayout.yaxis.type, range: plot._fullLayout.yaxis.range,
          best: Array.from(best.y)};
}"""

#: The lanes the timeline's axis names.
LANES_JS = """() => Array.from(
  document.querySelectorAll('#timeline-of-trials .ytick text')).map(tick => tick.textContent)"""


@pytest.mark.browser
def test_results_table_fits_a_1280_px_page_the_rest_a_click_away(
    browser: Any, wide: Any, tmp_path: Path
) -> None:
    frame = results_frame(wide)
    assert len(frame.attrs["parameters"]) == 8
    failed = frame.index[frame["status"] == "FAILED"]
    assert len(failed) >= 1
    frame.loc[failed[0], "failure_reason"] = "RuntimeError: solver diverged. " + "stderr: " * 40
    page = report_screenshot.OfflinePage(browser, width=1280).open(
        write_report(wide, tmp_path / "report.html", frame=frame)
    )

    before = page.evaluate(TABLE_WIDTHS_JS)
    page.click("label[for=all-columns]")
    page.click("table.results summary")
    after = page.evaluate(TABLE_WIDTHS_JS)

    assert before["wrap"] <= before["room"], before  # no sideways scrolling
    assert before["page"] <= before["viewport"], before
    assert not before["job_id"]
    assert not before["workdir"]
    assert after["job_id"]
    assert after["workdir"]
    assert page.locator("table.results details[open]").inner_text().endswith("stderr:")


@pytest.mark.browser
def test_trace_with_an_outlier_spreads_the_best_so_far_in_chromium(
    browser: Any, single: Any, single_frame: Any, tmp_path: Path
) -> None:
    frame = with_objective(single_frame, WITH_OUTLIER)
    path = write_report(single, tmp_path / "report.html", frame=frame)

    drawn = report_screenshot.OfflinePage(browser).open(path).evaluate(TRACE_AXIS_JS)

    assert drawn["type"] == "log"
    low, high = drawn["range"]  # plotly's range of a log axis is in decades
    assert best_so_far_share(drawn["best"], low, high, log=True) > 0.35


@pytest.mark.browser
def test_timeline_of_a_two_slot_run_shows_two_lanes_in_chromium(
    browser: Any, two_slots: Any, tmp_path: Path
) -> None:
    frame = results_frame(two_slots)
    path = write_report(
        two_slots, tmp_path / "report.html", frame=frame[frame["status"] == "COMPLETED"]
    )

    lanes = report_screenshot.OfflinePage(browser).open(path).evaluate(LANES_JS)

    assert sorted(lanes) == ["lane 1", "lane 2"]


# --- learning curves and early stopping ----------------------------------------------


def test_report_of_a_run_with_early_stopping_has_its_curves_and_the_compute_saved(
    stopped: Any,
) -> None:
    from ax.early_stopping.utils import estimate_early_stopping_savings

    frame = results_frame(stopped)
    page = render_report(stopped, frame, now=NOW)

    sections = re.findall(r'<section id="([a-z-]+)">', page)
    assert sections[:4] == [
        "summary",
        "optimization-trace",
        "learning-curves",
        "objectives-against-parameters",
    ]
    assert plot_count(page) == 4  # the trace, the curves, the slice plots, the timeline
    assert "5 (3 completed, 2 stopped early)" in page
    assert "<tr><th>Stopped early</th><td>2 of 5 trials</td></tr>" in page
    share = estimate_early_stopping_savings(stopped)
    assert share > 0.1
    assert f"<tr><th>Compute saved</th><td>about {share:.0%}: " in page
    first, more = table_headers(page)
    assert {"last_step", "early_stop_reason"} <= set(first)  # how far each got, and why
    assert "curve" not in first + more
    assert len(re.findall(r'<tr class="EARLY_STOPPED">', page)) == 2
    # The timeline's bar of a stopped trial says why it was stopped (plotly's JSON
    # writes "<" as \u003c).
    br = re.escape(r"\u003cbr\u003e")
    assert re.search(rf'"trial 2: EARLY_STOPPED{br}ran [^"]*{br}Trial objective values at', page)


def test_learning_curves_draw_a_line_per_trial_stopped_ones_dashed_and_marked(
    stopped: Any,
) -> None:
    frame = results_frame(stopped)

    figure = curves_figure(curves_of(frame, "objective"), "objective", "minimize", best=0)

    traces = {trace.name: trace for trace in figure.data}
    assert list(traces) == ["completed", "stopped early", "where stopped", "best: trial 0"]
    # One line per trial that reported (trial 4 did not), a gap after each.
    completed = traces["completed"]
    assert len(completed.x) == 2 * (curves.STEPS + 1)
    assert [i for i, x in enumerate(completed.x) if x is None] == [20, 41]
    assert traces["stopped early"].line.dash == "dash"
    assert completed.line.dash is None
    ends = traces["where stopped"]
    assert list(ends.x) == list(frame["last_step"][2:4])
    assert list(ends.y) == [curve["objective"][-1][1] for curve in frame["curve"][2:4]]
    best = [v for _, v in frame["curve"][0]["objective"]]
    assert list(traces["best: trial 0"].y) == [*best, None]
    assert figure.layout.yaxis.type == "log"  # 0.125 to 39: decades apart
    assert "trial 2 (EARLY_STOPPED)<br>step 0: " in " ".join(
        filter(None, traces["stopped early"].text)
    )


def test_a_live_reports_curves_show_running_trials_and_no_savings_before_any_completed(
    stopped: Any,
) -> None:
    frame = results_frame(stopped)
    frame.loc[[0, 1, 4], "status"] = "RUNNING"  # as if the good trials had not finished yet

    page = render_report(stopped, frame, now=NOW)
    figure = curves_figure(curves_of(frame, "objective"), "objective", "minimize", best=None)

    assert [trace.name for trace in figure.data] == ["stopped early", "running", "where stopped"]
    assert "<tr><th>Compute saved</th><td>not known yet: no completed trial reported" in page


#: The learning curves' traces as Chromium drew them: each line's dash pattern, and
#: the markers drawn.
CURVES_JS = """() => {
  const plot = document.querySelector('#learning-curves .plotly-graph-div');
  return Array.from(plot.querySelectorAll('.scatterlayer .trace')).map((trace, i) => ({
    name: plot._fullData[i].name,
    lines: Array.from(trace.querySelectorAll('path.js-line'))
      .filter(path => (path.getAttribute('d') || '').length > 4)
      .map(path => path.style.strokeDasharray !== '' && path.style.strokeDasharray !== 'none'),
    markers: trace.querySelectorAll('path.point').length,
  }));
}"""


@pytest.mark.browser
def test_learning_curves_draw_their_lines_and_stop_markers_in_chromium(
    browser: Any, stopped: Any, tmp_path: Path
) -> None:
    path = write_report(stopped, tmp_path / "report.html")
    page = report_screenshot.OfflinePage(browser)

    drawn = page.open(path).evaluate(CURVES_JS)

    assert page.errors == []
    assert page.blocked == []
    assert drawn == [
        {"name": "completed", "lines": [False, False], "markers": 0},
        {"name": "stopped early", "lines": [True, True], "markers": 0},  # dashed
        {"name": "where stopped", "lines": [], "markers": 2},
        {"name": "best: trial 0", "lines": [False], "markers": 0},
    ]
