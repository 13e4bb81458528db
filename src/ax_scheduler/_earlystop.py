"""Trials' reports: recorded in Ax as curves, judged by the early-stopping strategy.

Every running trial's job has a channel (``Job.channel``) on which its runner
delivers reports (``ax_scheduler.report`` calls, progress-file lines). Here they
are collected per trial and handed to the Ax thread in one call for all trials
with news (urgent, so a queued model fit does not delay them): attached as the
trial's curve, then, if a strategy is configured, judged by it. A trial the
strategy stops is told so on its channel; ``_trial`` gives it
``early_stopping_grace`` seconds to end before it is stopped like a cancelled one.

While an Ax call is under way new reports accumulate, so the calls never queue
up behind a fast reporter: one call covers whatever arrived meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from ._ax.adapter import first_line
from ._context import Context
from ._exceptions import ConfigError, ResultError
from ._jobs import Job
from ._results import MetricValues, describe_metrics, parse_report

logger = logging.getLogger("ax_scheduler")

#: A trial's new reports, as ``(step, values)``.
Reports = list[tuple[float, MetricValues]]


class Progressions:
    """Collects reports, records them in Ax, and asks the early-stopping strategy.

    Args:
        ctx: The scheduler's shared parts (each accepted report is an event).

    Attributes:
        last_step: Trial index -> the last step recorded (from Ax for a resumed run).
        latencies: Seconds from the arrival of the report that decided a stop to
            the stop request, per stopped trial (the bench reads them).
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._jobs: dict[int, Job] = {}
        self._pending: dict[int, Reports] = {}
        self._arrived: dict[int, float] = {}  # trial -> when its oldest unrecorded report came
        self._flushing: asyncio.Task[None] | None = None
        # Trial -> resolved once its reports known so far are in Ax: those of the
        # round under way (_current), and those that wait for the next (_next).
        self._current: dict[int, asyncio.Future[None]] = {}
        self._next: dict[int, asyncio.Future[None]] = {}
        self._strategy: Any = None
        self._strategy_known = False
        self._ignored: set[str] = set()
        self._recorded_before: dict[int, float] = {}
        self._refused: set[int] = set()  # trials whose reports Ax refused (warned about)
        self.last_step: dict[int, float] = {}
        self.latencies: dict[int, float] = {}

    def check_strategies(self) -> None:
        """Refuse a strategy set twice: on the Ax client and in ``config``.

        Reads the client once, before trials run (the facade's constructor).

        Raises:
            ConfigError: Both are set, or the config names a metric the experiment
                does not have.
        """
        options = self._ctx.config.early_stopping
        if options is None:
            return
        if self._ctx.ax.client_early_stopping_strategy() is not None:
            raise ConfigError(
                "early stopping is set twice: config['early_stopping'] and the Ax client's"
                " early_stopping_strategy; keep one"
            )
        metrics = sorted(self._ctx.ax.experiment.metrics)
        if options.metric is not None and options.metric not in metrics:
            raise ConfigError(
                f"config['early_stopping']['metric']: the experiment has no metric"
                f" {options.metric!r}; its metrics: {', '.join(map(repr, metrics))}"
            )

    # -- reports in -------------------------------------------------------------------------
    def follow(self, job: Job) -> Callable[[], None]:
        """Take ``job``'s reports until the returned function is called."""
        index = job.trial_index
        self._jobs[index] = job
        job.channel.on_report = lambda step, metrics: self._report(index, step, metrics)

        def unfollow() -> None:
            job.channel.on_report = None
            self._jobs.pop(index, None)

        return unfollow

    def _report(self, index: int, step: float, metrics: dict[str, Any]) -> None:
        step = float(step)
        if step <= self._recorded_before.get(index, -math.inf):
            return  # already in Ax: a resumed trial's file is read again from its start
        try:
            values, unknown = parse_report(metrics, self._ctx.ax.metric_spec())
        except ResultError as exc:
            logger.warning("trial %d: report at step %g skipped: %s", index, step, exc)
            return
        self._warn_ignored(index, unknown)
        if not values:
            return
        self.last_step[index] = step
        self._pending.setdefault(index, []).append((step, values))
        self._arrived.setdefault(index, time.monotonic())
        if index not in self._next:
            self._next[index] = asyncio.get_running_loop().create_future()
        self._ctx.events.emit("trial_reported", index, step=step, metrics=metrics)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush(), name="ax-scheduler-reports")

    def _warn_ignored(self, index: int, unknown: list[str]) -> None:
        if unknown and not self._ignored.issuperset(unknown):
            self._ignored.update(unknown)
            logger.warning(
                "trial %d reported metrics the experiment does not track, ignored: %s",
                index,
                describe_metrics(unknown),
            )

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, {}
            arrived, self._arrived = self._arrived, {}
            self._current, self._next = self._next, {}
            try:
                stops = await self._ctx.call_ax(self._record_and_judge, batch, urgent=True)
            finally:
                for recorded in self._current.values():
                    if not recorded.done():
                        recorded.set_result(None)
                self._current = {}
            self._ctx.changed()  # the checkpoint keeps curves too (coalesced, paced)
            for index, reason in stops.items():
                self._stop(index, reason, arrived.get(index))

    def _record_and_judge(self, batch: dict[int, Reports]) -> dict[int, str]:
        """On the Ax thread: attach the reports; which trials the strategy stops."""
        ax = self._ctx.ax
        try:
            ax.attach_progress(batch)
        except Exception as exc:  # noqa: BLE001 - Ax refused them: the trials run on
            if not self._refused.issuperset(batch):
                self._refused.update(batch)
                logger.warning("trials %s: Ax refused their reports: %r", sorted(batch), exc)
        strategy = self._early_stopping_strategy()
        if strategy is None:
            return {}
        candidates = {
            i for i in batch if (job := self._jobs.get(i)) and not job.channel.stop_reason
        }
        try:
            return ax.should_stop(strategy, candidates)
        except Exception:
            # A strategy that cannot judge this experiment (a multi-objective one
            # without a metric, say) would fail the same way at every report.
            logger.exception("the early-stopping strategy failed; no trial is stopped early now")
            self._strategy = None
            return {}

    def _judgeable(self, strategy: Any, batch: dict[int, Reports]) -> set[int]:
        """The trials of ``batch`` the strategy could stop now (Ax thread).

        Asking costs tens of milliseconds on every report round (Ax aligns every
        curve of the experiment), so trials it would certainly keep are left out
        here: one told to stop already, one not past the strategy's
        ``min_progression``, all of them while fewer trials completed than its
        ``min_curves``.
        """
        minimum = getattr(strategy, "min_progression", None)
        curves = getattr(strategy, "min_curves", None)
        if isinstance(curves, int) and self._ctx.ax.completed_count() < curves:
            return set()
        return {
            index
            for index in batch
            if (job := self._jobs.get(index)) is not None
            and job.channel.stop_reason is None
            and not (
                isinstance(minimum, int | float) and self.last_step.get(index, -math.inf) < minimum
            )
        }

    def _early_stopping_strategy(self) -> Any:
        """The configured strategy, or the client's; None if neither (Ax thread)."""
        if not self._strategy_known:
            options = self._ctx.config.early_stopping
            self._strategy = (
                options.strategy()
                if options is not None
                else self._ctx.ax.client_early_stopping_strategy()
            )
            self._strategy_known = True
        return self._strategy

    # -- a stop out -------------------------------------------------------------------------
    def _stop(self, index: int, reason: str, arrived: float | None) -> None:
        job = self._jobs.get(index)
        if job is None or job.channel.stop_reason is not None:
            return  # it ended meanwhile
        if arrived is not None:
            self.latencies[index] = time.monotonic() - arrived
        job.info["stop_requested_at"] = time.time()
        logger.info("trial %d: stopping it early: %s", index, first_line(reason))
        job.channel.request_stop(first_line(reason))

    async def drain(self, index: int) -> None:
        """Wait until every report of trial ``index`` that arrived is recorded in Ax
        (not for other trials': they may report on and on)."""
        for recorded in (self._current.get(index), self._next.get(index)):
            if recorded is not None:
                await asyncio.shield(recorded)

    def resume_from(self, steps: dict[int, float]) -> None:
        """Trials' last recorded steps (from Ax): their files are read again from the
        start, and what Ax has already is not recorded twice."""
        self.last_step.update(steps)
        self._recorded_before.update(steps)
