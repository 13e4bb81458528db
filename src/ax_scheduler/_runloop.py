"""run_optimization's loop: keep every slot busy with trials Ax generates.

A freed slot gets the next candidate at once; candidates are generated ahead
(``prefetch_trials``, a whole wave under Sobol) so a trial that ends restarts its
slot without waiting for Ax. The loop stops at ``max_trials``, when Ax's
generation strategy completes, at the run's timeout, or when too many trials
failed; it waits on trial completions and never polls.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ._ax import Generated
from ._config.arguments import one_of, positive_int, positive_seconds
from ._context import Context
from ._exceptions import FailureRateExceededError, OptimizationStalledError
from ._outcomes import Best, Progress, RunSummary
from ._record import Recorder
from ._runmetadata import dispatch_info
from ._trial import Trials

logger = logging.getLogger("ax_scheduler")

#: ``run_optimization(stop_when=...)``: called with the live progress after each
#: trial ends; a true value (a string says why) ends the run.
StopWhen = Callable[[Progress], bool | str | None]

Tasks = set[asyncio.Task[None]]


class _EndCounter:
    """Counts the ends of a run's trial tasks (``mine``), and adds new ones to it."""

    def __init__(self, mine: Tasks) -> None:
        self._mine = mine
        self._ended = self._judged = 0
        self.follow(list(mine))

    def follow(self, tasks: list[asyncio.Task[None]]) -> None:
        self._mine.update(tasks)
        for task in tasks:
            task.add_done_callback(self._count)

    def _count(self, _: asyncio.Task[None]) -> None:
        self._ended += 1

    def new(self) -> bool:
        """Whether a trial ended since the last call."""
        news, self._judged = self._ended > self._judged, self._ended
        return news


class RunLoop:
    """Runs ``run_optimization`` calls.

    Args:
        ctx: The scheduler's shared parts.
        trials: Starts, tracks and cancels the trials.
        recorder: The tally of outcomes (written on the Ax thread, read here).

    Attributes:
        last_run: What the last finished call did.
    """

    def __init__(self, ctx: Context, trials: Trials, recorder: Recorder) -> None:
        self._ctx = ctx
        self._trials = trials
        self._recorder = recorder
        self._failures_checked = 0  # failures at the last failure-rate check
        self._stopped_because: str | None = None
        self._stop_when: StopWhen | None = None
        self._global_stopping: Any = None
        self.last_run: RunSummary | None = None

    async def run(
        self,
        max_trials: int,
        timeout: float | None,
        on_timeout: str,
        adopted: Tasks,
        stop_when: StopWhen | None = None,
    ) -> Best:
        """Run ``max_trials`` new trials, and ``adopted`` ones (re-attached); return the best.

        The caller has checked the arguments (:func:`check_run_arguments`) and
        started the runner. See ``AxScheduler.run_optimization`` for the contract.
        """
        self._ctx.progress.total += len(adopted)
        self._stopped_because, self._stop_when = None, stop_when
        self._ctx.events.emit("run_started", max_trials=max_trials)
        mine = set(adopted)
        run = [index for index, task in self._trials.tasks.items() if task in mine]
        timed_out = await self._until_done(max_trials, timeout, on_timeout, mine, run)
        self.last_run = summary = self._summary(run, timed_out, on_timeout if timed_out else None)
        self._ctx.events.emit(
            "run_ended",
            completed=summary.completed,
            failed=sorted(summary.failed),
            early_stopped=sorted(summary.early_stopped),
            abandoned=sorted(summary.abandoned),
            stopped_because=summary.stopped_because,
        )
        await self._trials.settle()
        best = await self._ctx.call_ax(self._ctx.ax.best)
        if run and not self.last_run.completed:
            _warn_nothing_completed(self.last_run, best)
        return best

    async def _until_done(
        self, max_trials: int, timeout: float | None, on_timeout: str, mine: Tasks, run: list[int]
    ) -> bool:
        """Keep the slots full until the run is done or its timeout is reached.

        Returns:
            Whether the timeout was reached.

        Raises:
            FailureRateExceededError, CancelledError ...: What stopped the run,
                once its trials (``mine``) are cancelled and the checkpoint written.
        """
        deadline = self._ctx.clock.timeout(timeout)
        try:
            async with deadline:
                await self._keep_slots_full(max_trials, mine, run)
        except TimeoutError:
            if not deadline.expired():
                raise
            await self._end_at_timeout(mine, f"{timeout:g}", on_timeout)
            return True
        except FailureRateExceededError:
            reason = "cancelled: the run stopped, too many trials failed"
            await self._trials.cancel_on_exit(mine, reason)
            raise
        except BaseException as exc:
            reason = self._trials.interrupted("run_optimization", exc)
            await self._trials.cancel_on_exit(mine, reason)
            raise
        return False

    async def _keep_slots_full(self, max_trials: int, mine: Tasks, run: list[int]) -> None:
        """Generate and start trials until ``max_trials`` ran; ``run`` lists them."""
        trials = self._trials
        launched, exhausted, blocked = 0, False, None
        first = True  # the first generation since slots freed: see AxAdapter.generate
        prefetch = self._ctx.config.prefetch_trials
        ends = _EndCounter(mine)
        while True:
            # Before generating more: trials that end at once (instant failures,
            # cheap objectives) free slots as fast as Ax generates, so the loop
            # may never reach the wait below. The stop rules are judged here too,
            # after every end: judged only after the wait, a run of 1 ms trials
            # went 10 trials past its global-stopping decision.
            self._check_failure_rate(run)
            judge = ends.new() and not exhausted and launched < max_trials
            if judge and await self._run_should_stop():
                exhausted = True
                await trials.cancel_waiting(mine, f"not started: {self._stopped_because}")
            # Tasks beyond the free slots wait on the slot semaphore: generated
            # ahead, they start the instant a running trial ends.
            want = min(trials.free_slots() + prefetch, max_trials - launched)
            if want > 0 and not exhausted and blocked is None:
                generated = await self._generate(want, first)
                first = False
                prefetch = self._prefetch_depth(generated)
                ends.follow(trials.start(trials.jobs_for(generated.trials)))
                run += [index for index, _ in generated.trials]
                launched += len(generated.trials)
                exhausted, blocked = generated.exhausted, generated.blocked
                if exhausted and launched < max_trials:
                    self._stopped_because = generated.stopped
                    logger.info("%s after %d new trials", generated.stopped, launched)
                continue
            if (launched >= max_trials or exhausted) and all(task.done() for task in mine):
                self._check_failure_rate(run)  # a run that ended over the rate says so too
                return
            if not trials.tasks:
                raise OptimizationStalledError(
                    f"Ax generates no new trial ({blocked}) and no trial is running whose"
                    " result could change that. Trials created with get_next_trial() and"
                    " never completed count as pending: run them (batch_trial_context) or"
                    " abandon them, or raise the generation strategy's parallelism limit"
                )
            await asyncio.wait(list(trials.tasks.values()), return_when=asyncio.FIRST_COMPLETED)
            blocked, first = None, True

    async def _run_should_stop(self) -> bool:
        """Whether ``stop_when`` or the global-stopping strategy ends the run now."""
        if self._stop_when is not None:
            verdict = self._stop_when(self._ctx.progress)
            if verdict:
                # "stop_when: <its reason>", or "stop_when returned True" for a bare True.
                self._stopped_because = (
                    f"stop_when: {verdict}"
                    if isinstance(verdict, str)
                    else "stop_when returned True"
                )
        if self._stopped_because is None and self._ctx.config.global_stopping is not None:
            self._stopped_because = await self._ctx.call_ax(self._global_stop_reason)
        if self._stopped_because is None:
            return False
        logger.info("the run stops: %s", self._stopped_because)
        return True

    def _global_stop_reason(self) -> str | None:
        """On the Ax thread: why the global-stopping strategy ends the run, or None."""
        options = self._ctx.config.global_stopping
        assert options is not None
        if self._global_stopping is None:
            self._global_stopping = options.strategy()
        return self._ctx.ax.should_stop_optimization(self._global_stopping)

    def _prefetch_depth(self, generated: Generated) -> int:
        """Candidates to keep generated ahead of a free slot.

        ``prefetch_trials`` in general. While Ax's generator ignores data (Sobol),
        a candidate cannot go stale, so a whole wave is kept ready: trials that
        end together restart together instead of one per generation call.
        """
        prefetch = self._ctx.config.prefetch_trials
        if generated.data_free and prefetch > 0:
            return max(prefetch, self._trials.capacity)
        return prefetch

    # -- generation (on the Ax thread) ---------------------------------------------------
    async def _generate(self, n: int, first: bool) -> Generated:
        future = self._ctx.ax_thread.submit(self._generate_sync, n, first)
        try:
            generated = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            # The Ax call cannot be interrupted: abandon what it still produces.
            future.add_done_callback(
                functools.partial(self._ctx.ax_thread.call_soon, self._abandon_generated)
            )
            raise
        self._ctx.changed()
        return generated

    def _generate_sync(self, n: int, first: bool) -> Generated:
        generated = self._ctx.ax.generate(n, first)
        for index, _ in generated.trials:
            self._ctx.ax.mark_dispatched(index, dispatch_info(self._ctx.runner.kind))
        return generated

    def _abandon_generated(self, future: Future[Generated]) -> None:
        """On the Ax thread: abandon the candidates of a cancelled generation."""
        if future.cancelled() or future.exception() is not None:
            return
        for index, _ in future.result().trials:
            self._ctx.ax.abandon(index, "generated while the run was being cancelled")

    # -- how a run ends ----------------------------------------------------------------
    async def _end_at_timeout(self, mine: Tasks, timeout: str, how: str) -> None:
        running = [task for task in mine if not task.done()]
        if how == "cancel":
            reason = f"run_optimization timeout of {timeout} s reached"
            logger.warning("%s: cancelling %d running trials", reason, len(running))
            await self._trials.cancel_on_exit(mine, reason)
            return
        logger.warning(
            "run_optimization timeout of %s s reached: no new trials; waiting for the %d"
            " running ones to finish (on_timeout='finish')",
            timeout,
            len(running),
        )
        try:
            if running:
                await asyncio.wait(running)
        except BaseException as exc:
            await self._trials.cancel_on_exit(
                mine, self._trials.interrupted("run_optimization", exc)
            )
            raise

    def _summary(self, run: list[int], timed_out: bool, on_timeout: str | None) -> RunSummary:
        tally = self._recorder
        return RunSummary(
            trials=list(run),
            completed=[
                i
                for i in run
                if i in tally.ended and i not in tally.failed and i not in tally.early_stopped
            ],
            failed={i: tally.failed[i] for i in run if i in tally.failed},
            abandoned={i: tally.abandoned[i] for i in run if i in tally.abandoned},
            timed_out=timed_out,
            on_timeout=on_timeout,
            early_stopped={i: tally.early_stopped[i] for i in run if i in tally.early_stopped},
            stopped_because=self._stopped_because,
        )

    def _check_failure_rate(self, run: list[int]) -> None:
        """Stop the run when more than ``tolerated_failure_rate`` of its trials failed.

        Raises:
            FailureRateExceededError: With every failed trial of the run and its reason.
        """
        tally = self._recorder
        if len(tally.failed) == self._failures_checked:
            return  # nothing failed since the last check: the rate cannot have risen
        self._failures_checked = len(tally.failed)
        failed = {index: tally.failed[index] for index in run if index in tally.failed}
        ended = sum(index in tally.ended for index in run)
        rate = self._ctx.config.tolerated_failure_rate
        if len(failed) < self._ctx.config.min_failed_trials_for_failure_rate_check:
            return
        if len(failed) <= rate * ended:
            return
        listed = "; ".join(
            f"trial {index}: {_first_line(reason)}" for index, reason in sorted(failed.items())
        )
        raise FailureRateExceededError(
            f"{len(failed)} of the {ended} finished trials of this run failed, more than"
            f" tolerated_failure_rate={rate:g}; the run stopped and cancelled what still ran."
            f" Failed: {listed}",
            failed,
        )


def check_run_arguments(max_trials: Any, timeout: Any, on_timeout: Any) -> None:
    """Check ``run_optimization``'s arguments before anything starts.

    Raises:
        ConfigError: One is invalid; the message names it and its value.
    """
    positive_int("max_trials", max_trials, minimum=0)
    if timeout is not None:
        positive_seconds("timeout", timeout)
    one_of(
        "on_timeout",
        on_timeout,
        ("cancel", "finish"),
        "'cancel' (stop running trials) or 'finish' (let them end)",
    )


def _warn_nothing_completed(summary: RunSummary, best: Best) -> None:
    """Say why a run returns no best of its own: a silent None hides every failure."""
    reasons = {**summary.failed, **summary.abandoned}
    listed = "; ".join(
        f"trial {index}: {_first_line(reason)}" for index, reason in sorted(reasons.items())
    )
    returned = "None" if best is None else "the best of the experiment's earlier trials"
    logger.warning(
        "no trial of this run completed (%d failed, %d abandoned, of %d), so"
        " run_optimization returns %s. %s. scheduler.last_run and scheduler.results()"
        " have every trial's reason",
        len(summary.failed),
        len(summary.abandoned),
        len(summary.trials),
        returned,
        listed or "No trial ended",
    )


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= limit else line[: limit - 3] + "..."
