"""Real runs to report on, and a headless Chromium to look at the report with.

``tests/test_report.py`` uses these; run this file to refresh the picture in the
docs (``python tests/report_screenshot.py docs/images/report.png``).

Module-level objective so loky workers can import it (``tests`` is on their path).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import objectives
from conftest import legacy_client

#: Debian's chromium (ci/install-chromium.sh); Playwright downloads no browser here.
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

#: Root in CI; the container is the sandbox. /dev/shm is small in containers.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage"]

#: Per plotly div: its plot panels, and how many drew a mark (a path with a shape in
#: a scatter or bar layer). The report has no WebGL traces, so no canvas to check.
RENDERED_PLOTS_JS = """() => Array.from(document.querySelectorAll('div.plotly-graph-div')).map(
  div => {
    const panels = Array.from(div.querySelectorAll('svg.main-svg g.overplot > g'));
    const drawn = panels.filter(panel =>
      Array.from(panel.querySelectorAll('.scatterlayer path, .barlayer path'))
        .some(path => (path.getAttribute('d') || '').length > 4));
    return {panels: panels.length, drawn: drawn.length};
  })"""


def timed_rosenbrock(p: dict[str, Any]) -> dict[str, float]:
    """Rosenbrock, taking 0.1-0.2 s; fails for x < -1.5.

    Eight Sobol points put exactly one x in each eighth of [-2, 2], so a run of
    eight trials has exactly one failure.
    """
    time.sleep(0.1 + 0.025 * (p["y"] + 2))  # long enough to see on the timeline
    if p["x"] < -1.5:
        raise RuntimeError(f"solver diverged at x={p['x']:.3f}")
    return objectives.rosenbrock_dict(p)


def run(client: Any, objective: Any, output: Path, trials: int = 8) -> Any:
    """Run ``trials`` trials on two local workers (trial dirs in ``output``); the experiment."""
    from ax_scheduler import AxScheduler, JobLibRunner

    scheduler = AxScheduler(client, JobLibRunner(n_jobs=2), config={"job_output_dir": output})
    try:
        scheduler.set_objective_function(objective)
        scheduler.run_optimization(max_trials=trials)
        return scheduler.experiment
    finally:
        scheduler.close()


def single_objective_experiment(output: Path) -> Any:
    """Rosenbrock minimized over x, y in [-2, 2]: eight Sobol trials, one failing."""
    return run(legacy_client(), timed_rosenbrock, output)


def multi_objective_experiment(output: Path) -> Any:
    """Two conflicting distances, both minimized: eight Sobol trials."""
    from ax.service.ax_client import ObjectiveProperties

    client = legacy_client(
        objectives={
            "a": ObjectiveProperties(minimize=True, threshold=20.0),
            "b": ObjectiveProperties(minimize=True, threshold=20.0),
        }
    )
    return run(client, objectives.two_objectives, output)


#: Two good trials, then two bad ones that a percentile strategy stops (tests/curves.py),
#: as in tests/test_early_stopping.py: the good ones run first, so which stop is known.
GOOD = [{"x": 0.0, "y": 0.0}, {"x": 0.1, "y": 0.0}]
BAD = [{"x": 1.5, "y": 1.5}, {"x": 1.8, "y": -1.8}]
#: A trial whose objective reports nothing while it runs.
SILENT = [{"x": 0.5, "y": 0.25}]
EARLY_STOPPING = {"percentile": 50, "min_progression": 5, "min_curves": 2}


def early_stopping_run(output: Path, **config: Any) -> Any:
    """An open scheduler after a run with early stopping on two local workers.

    Trials 0 and 1 report their whole curves and complete, 2 and 3 are stopped
    early, and 4 reports nothing and completes. The caller closes it.
    """
    import curves
    from ax_scheduler import AxScheduler, JobLibRunner

    options = {"job_output_dir": output, "early_stopping": EARLY_STOPPING, **config}
    scheduler = AxScheduler(legacy_client(), JobLibRunner(n_jobs=2), options)
    batches = [(curves.curve, GOOD), (slow_curve, BAD), (objectives.rosenbrock_dict, SILENT)]
    try:
        for objective, trials in batches:
            scheduler.set_objective_function(objective)
            with scheduler.batch_trial_context() as batch:
                for parameters in trials:
                    batch.add_trial(parameters)
    except BaseException:
        scheduler.close()
        raise
    return scheduler


def slow_curve(parameters: dict[str, Any]) -> dict[str, float]:
    """tests/curves.py's curve at 0.15 s a step: the stop decided at step 5 reaches
    the trial long before its last step, however busy the machine."""
    import curves
    from ax_scheduler import report

    for step in range(curves.STEPS):
        time.sleep(0.15)
        report({"objective": curves.loss(parameters, step)}, step=step)
    return {"objective": curves.loss(parameters, curves.STEPS - 1)}


def early_stopping_experiment(output: Path) -> Any:
    """The experiment of :func:`early_stopping_run`, its scheduler closed."""
    with early_stopping_run(output) as scheduler:
        return scheduler.experiment


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


class OfflinePage:
    """A page that may load only file:// (and data:) URLs, recording what went wrong."""

    def __init__(self, browser: Any, width: int = 1280) -> None:
        self.page = browser.new_page(viewport={"width": width, "height": 900})
        self.errors: list[str] = []
        self.blocked: list[str] = []
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        self.page.route("**/*", self._only_local)

    def open(self, path: Path) -> Any:
        """Load ``path`` and wait (up to 10 s) until every plot has drawn its SVG.

        A plot that never draws is left for the caller's checks to report, with
        the page's errors, rather than as a bare timeout.
        """
        from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

        self.page.goto(path.resolve().as_uri(), wait_until="load")
        with contextlib.suppress(PlaywrightTimeoutError):
            self.page.wait_for_function(
                "() => Array.from(document.querySelectorAll('div.plotly-graph-div'))"
                ".every(div => div.querySelector('svg.main-svg'))",
                timeout=10_000,
            )
        return self.page

    def plots(self) -> list[dict[str, int]]:
        return list(self.page.evaluate(RENDERED_PLOTS_JS))

    def _on_console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def _only_local(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()


def main(out: str) -> None:
    """Write the single-objective report and a 1280-wide screenshot of it to ``out``."""
    import tempfile

    from playwright.sync_api import sync_playwright

    from ax_scheduler._report import write_report

    with tempfile.TemporaryDirectory() as scratch:
        experiment = single_objective_experiment(Path(scratch))
        report = write_report(experiment, Path(scratch) / "report.html")
        with sync_playwright() as playwright:
            browser = launch(playwright)
            page = OfflinePage(browser)
            page.open(report).screenshot(path=out, full_page=True)
            browser.close()
    print(f"wrote {out} ({Path(out).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/images/report.png")
