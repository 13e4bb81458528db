"""The async scheduler: the one place that drives Ax.

All Ax calls run on one dedicated thread (``_ax_thread``), so Ax objects are
touched by one thread at a time and a 0.3 s+ BoTorch fit never blocks the event
loop; recording a finished trial overtakes queued generation (see ``_axthread``). Each trial is an asyncio task that waits for a slot, awaits
its runner, and records the outcome in Ax; completions are event-driven.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from ._aio import shielded
from ._ax import AxAdapter, Generated, Parameters
from ._axthread import AxThread
from ._batch import Batch
from ._checkpoint import Checkpointer
from ._config import SchedulerConfig
from ._exceptions import (
    EventLoopMismatchError,
    FailureRateExceededError,
    InfrastructureError,
    ObjectiveError,
    ObjectiveNotSetError,
    OptimizationStalledError,
    ResultError,
    RunnerError,
    SchedulerClosedError,
    TrialError,
    TrialTimeoutError,
)
from ._files import write_atomically
from ._jobs import FunctionObjective, Job, Objective
from ._outcomes import CANCELLED_BY_USER, DRIVER_RESTARTED, Best, Progress, RunSummary
from ._results import describe_metrics, parse_result
from ._runmetadata import RUN_METADATA_KEY, describe_job, dispatch_info, where
from ._table import objective_directions, results_frame
from .runners._base import Runner

logger = logging.getLogger("ax_scheduler")
T = TypeVar("T")


class Scheduler:
    """Runs Ax trials on a runner. Async API; see ``AxScheduler`` for the facade.

    Args:
        adapter: The Ax client, wrapped.
        runner: Where trials run.
        config: Validated options.
    """

    def __init__(self, adapter: AxAdapter, runner: Runner, config: SchedulerConfig) -> None:
        self.ax = adapter
        self.runner = runner
        self.config = config
        self.objective: Objective | None = None
        self.capacity = min(runner.capacity, config.max_parallel_trials or runner.capacity)
        # Read once, here: after this only the Ax thread touches the experiment.
        self.experiment_name = adapter.experiment_name
        runner.use_config(config)
        self._jobs: dict[int, Job] = {}  # running trials' jobs; runners fill in job.info
        self._ended: set[int] = set()  # trials recorded COMPLETED or FAILED
        self._completed: set[int] = set()  # trials recorded COMPLETED
        self._cleanups: set[asyncio.Task[None]] = set()  # cleanup_after_completion
        self._failed: dict[int, str] = {}  # trial index -> failure reason
        self._abandoned: dict[int, str] = {}
        self._lost: list[int] = []  # trials of a resumed run, to re-attach at start
        self._reattached: set[asyncio.Task[None]] = set()  # not yet adopted by a run
        self._interrupt_reason: str | None = None  # set by the facade on Ctrl-C
        self.last_run: RunSummary | None = None
        self.progress = Progress()
        self._directions: dict[str, str] | None = None  # objective -> "minimize"/"maximize"
        self._sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep  # tests inject a clock
        self._failures_checked = 0  # len(_failed) at the last failure-rate check
        self._ax_thread = AxThread("ax-scheduler-ax")
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._cancel_reasons: dict[int, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._batch_open = False
        self._closed = False
        self._ignored_metrics: set[str] = set()  # warned about once
        #: Saved in the checkpoint's header as ``"spec"`` when set: the CLI keeps the
        #: experiment file there, so ``ax-scheduler resume run.json`` can rebuild the run.
        self.spec: dict[str, Any] | None = None
        # Absolute now: trials must not depend on a later os.chdir(), and resolving
        # a path touches the filesystem, which the event loop must not do.
        self._output_dir = config.job_output_dir.expanduser().absolute()
        self.checkpoint: Checkpointer | None = None
        if config.checkpoint_path is not None:
            self.checkpoint = Checkpointer(
                config.checkpoint_path.expanduser().absolute(),
                self._checkpoint_header,
                lambda: self._call_ax(self.ax.snapshot),
                write_atomically,
            )

    # -- plumbing -----------------------------------------------------------------
    def _bind_loop(self) -> asyncio.Semaphore:
        if self._closed:
            raise SchedulerClosedError("this AxScheduler is closed; create a new one")
        loop = asyncio.get_running_loop()
        if self._loop is None or (self._loop.is_closed() and not self._tasks):
            self._loop, self._slots = loop, asyncio.Semaphore(self.capacity)
        elif self._loop is not loop:
            raise EventLoopMismatchError(
                "this AxScheduler already runs trials on another event loop; use one"
                " scheduler per event loop, and do not mix the sync methods (which run"
                " on the scheduler's own loop thread) with the *_async ones"
            )
        assert self._slots is not None
        return self._slots

    async def _call_ax(self, fn: Callable[..., T], *args: Any, urgent: bool = False) -> T:
        """Run a blocking Ax operation on the Ax thread.

        ``urgent`` (recording a trial's outcome) runs before queued routine calls.
        """
        return await asyncio.wrap_future(self._ax_thread.submit(fn, *args, urgent=urgent))

    async def _prepare(self) -> None:
        """Start the runner and check the objective on it, before any trial exists."""
        self._bind_loop()
        if self.objective is None:
            raise ObjectiveNotSetError(
                "no objective: call set_objective_function(fn) before running trials"
            )
        if not self.objective.is_async:  # async objectives run on the loop itself
            await self.runner.start()
            await self.runner.check_objective(self.objective)
        if self._lost:
            await self._reattach_lost()

    @property
    def running_trials(self) -> list[int]:
        """Indices of trials dispatched and not yet recorded."""
        return sorted(self._tasks)

    def _free_slots(self) -> int:
        return self.capacity - len(self._tasks)

    # -- trials -------------------------------------------------------------------
    def _job(self, index: int, parameters: Parameters) -> Job:
        assert self.objective is not None
        name = f"{self.experiment_name}-trial-{index}"
        workdir = self._output_dir / name
        record = functools.partial(self._record_job_info, index) if self.checkpoint else None
        job = Job(index, dict(parameters), self.objective, name, workdir=workdir, on_info=record)
        self._jobs[index] = job  # the runner fills in job.info; recorded with the trial
        return job

    async def _record_job_info(self, index: int) -> None:
        """Put the job's handle into its trial and the checkpoint, and wait for both."""
        await self._call_ax(functools.partial(self.ax.note, index, **self._job_info(index)))
        if self.checkpoint is not None:
            await self.checkpoint.flush()

    def _changed(self) -> int:
        """A trial's state changed: the checkpoint follows. Returns the change's number."""
        return self.checkpoint.changed() if self.checkpoint is not None else 0

    def _checkpoint_header(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment_name,
            "runner": self.runner.kind,
            "written_at": time.time(),
            "config": self.config.model_dump(mode="json"),
            **({"spec": self.spec} if self.spec is not None else {}),
        }

    async def _save_checkpoint(self) -> None:
        if self.checkpoint is not None:
            await shielded(self.checkpoint.flush())

    def _launch(self, job: Job, work: Awaitable[Any]) -> asyncio.Task[None]:
        index = job.trial_index
        task = asyncio.create_task(self._trial(job, work), name=f"ax-scheduler-trial-{index}")
        self._tasks[index] = task
        self.progress.queued += 1
        logger.info("trial %d queued for %s", index, self.runner.kind)
        return task

    async def _trial(self, job: Job, work: Awaitable[Any]) -> None:
        index = job.trial_index
        try:
            outcome, seconds = await self._execute(job, work)
            # The trial has ended: its real outcome is recorded even if the run is
            # being cancelled now (a queued Ax call must not be dropped).
            await shielded(self._call_ax(self._record, index, outcome, seconds, urgent=True))
            change = self._changed()
            if self.config.cleanup_after_completion and index in self._completed:
                self._clean_up_later(job, change)
        finally:
            await _discard_unawaited(work)
            self._tasks.pop(index, None)
            self._jobs.pop(index, None)

    async def _execute(self, job: Job, work: Awaitable[Any]) -> tuple[tuple[str, Any], float]:
        """Run one trial's work in a slot; turn every ending into an outcome."""
        index = job.trial_index
        slots = self._bind_loop()
        started = time.monotonic()
        waiting = True
        try:
            async with slots:
                started, waiting = time.monotonic(), False
                self._note_started(job)
                result = await self._with_trial_timeout(index, self._with_retries(job, work))
                outcome: tuple[str, Any] = ("ok", result)
        except TrialError as exc:
            outcome = ("failed", exc)
        except asyncio.CancelledError:
            reason = self._cancel_reasons.pop(index, "cancelled")
            job.info.setdefault("finished_at", time.time())
            self._note_ended(waiting)
            seconds = time.monotonic() - started
            await shielded(self._call_ax(self._abandon, index, reason, urgent=True))
            self._changed()
            logger.warning(
                "trial %d abandoned: %s (%s%s)",
                index,
                reason,
                describe_job(self.runner.kind, job.info),
                "" if waiting else f", after {seconds:.2f} s",
            )
            raise
        except Exception as exc:  # a runner bug must not take the run down with it
            logger.exception("trial %d: unexpected error from %r", index, self.runner)
            outcome = ("failed", TrialError(f"internal error in {self.runner!r}: {exc!r}"))
        # Stamped here, not when Ax records it: a queued Ax call would make the
        # trial look longer than it ran.
        job.info.setdefault("finished_at", time.time())
        self._note_ended(waiting)
        return outcome, time.monotonic() - started

    def _clean_up_later(self, job: Job, change: int) -> None:
        """Remove a completed trial's folder in the background (it holds no slot)."""
        task = asyncio.create_task(self._remove_files(job, change), name="ax-scheduler-cleanup")
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _remove_files(self, job: Job, change: int) -> None:
        """The folder goes once its result is safe: in Ax and in the checkpoint on disk."""
        index = job.trial_index
        if self.checkpoint is not None and not await self.checkpoint.includes(change):
            logger.warning("trial %d: folder kept, the checkpoint lacks its result", index)
            return
        try:
            await self.runner.remove_files(job)
        except (OSError, RunnerError) as exc:
            logger.warning("trial %d: could not remove its folder: %s", index, exc)
            return
        await self._call_ax(functools.partial(self.ax.note, index, files_removed=True))
        self._changed()

    async def _finish_cleanups(self) -> None:
        """Wait for the folder removals under way (each is bounded by its runner)."""
        if self._cleanups:
            await shielded(asyncio.wait(set(self._cleanups)))

    def _note_started(self, job: Job) -> None:
        """The trial got a slot and goes to the runner: count it, stamp it, log it."""
        self.progress.queued -= 1
        self.progress.running += 1
        job.info.setdefault("started_at", time.time())
        logger.info("trial %d started on %s", job.trial_index, self.runner.kind)

    def _note_ended(self, waiting: bool) -> None:
        if waiting:
            self.progress.queued -= 1
        else:
            self.progress.running -= 1

    async def _with_retries(self, job: Job, work: Awaitable[Any]) -> Any:
        """Await the trial's work; run it again on a fresh job after infrastructure failures.

        Raises:
            InfrastructureError: It failed ``max_retries`` + 1 times (or the runner
                already resubmitted it as often as allowed).
        """
        retries = 0
        while True:
            try:
                return await work
            except InfrastructureError as exc:
                if not exc.retryable or retries >= self.config.max_retries:
                    if retries:
                        exc.args = (f"{exc} (after {retries} retries)", *exc.args[1:])
                    raise
                retries += 1
                delay = self.config.retry_delay * 2 ** (retries - 1)
                job.info.update(retries=retries, last_retry_reason=str(exc))
                logger.warning(
                    "trial %d: %s; running it again on a fresh job in %g s (retry %d of %d)",
                    job.trial_index,
                    exc,
                    delay,
                    retries,
                    self.config.max_retries,
                )
            await self._sleep(delay)
            await job.record_info()
            work = self.runner.run(job)

    async def _with_trial_timeout(self, index: int, work: Awaitable[Any]) -> Any:
        limit = self.config.trial_timeout
        deadline = asyncio.timeout(limit)
        try:
            async with deadline:
                return await work
        except TimeoutError:
            if not deadline.expired():
                raise
            raise TrialTimeoutError(
                f"timeout: trial {index} ran longer than trial_timeout={limit:g} s"
            ) from None

    def _job_info(self, index: int) -> dict[str, Any]:
        job = self._jobs.get(index)
        return job.info if job is not None else {}

    def _abandon(self, index: int, reason: str) -> None:
        """On the Ax thread: mark the trial ABANDONED, keeping where its job ran."""
        self.ax.note(index, **{"finished_at": time.time(), **self._job_info(index)})
        self.ax.abandon(index, reason)
        self._abandoned[index] = reason
        self.progress.abandoned += 1

    def _record(self, index: int, outcome: tuple[str, Any], seconds: float) -> None:
        """On the Ax thread: complete or fail the trial in Ax, and log it."""
        status, value = outcome
        info = self._job_info(index)
        self.ax.note(index, **{"finished_at": time.time(), **info})
        if status == "ok":
            try:
                metrics, unknown = parse_result(value, self.ax.metric_spec())
                if unknown and not self._ignored_metrics.issuperset(unknown):
                    self._ignored_metrics.update(unknown)
                    logger.warning(
                        "trial %d returned metrics the experiment does not track, ignored"
                        " (add them as tracking metrics to keep them): %s",
                        index,
                        describe_metrics(unknown),
                    )
                self.ax.complete(index, metrics)
                self._ended.add(index)
                self._completed.add(index)
                self.progress.completed += 1
                self._track_best(metrics)
                logger.info(
                    "trial %d completed in %.2f s (%s): %s",
                    index,
                    seconds,
                    describe_job(self.runner.kind, info),
                    ", ".join(f"{name}={mean:.6g}" for name, (mean, _) in metrics.items()),
                )
                return
            except ResultError as exc:
                value = exc
            except Exception as exc:  # noqa: BLE001 - Ax refused the data
                value = TrialError(f"Ax rejected the result {value!r}: {type(exc).__name__}: {exc}")
        self._fail(index, str(value), _failure_kind(value))
        self.progress.failed += 1
        details = f"\n{value.details}" if getattr(value, "details", None) else ""
        logger.error(
            "trial %d failed after %.2f s (%s): %s%s",
            index,
            seconds,
            describe_job(self.runner.kind, info),
            value,
            details,
        )

    def _track_best(self, metrics: dict[str, tuple[float, float | None]]) -> None:
        """On the Ax thread: update the best observed value of each objective."""
        if self._directions is None:
            self._directions = objective_directions(self.ax.experiment)
        for name, direction in self._directions.items():
            if name not in metrics:
                continue
            value, best = metrics[name][0], self.progress.best.get(name)
            if best is None or (value < best if direction == "minimize" else value > best):
                self.progress.best[name] = value

    async def _cancel(self, tasks: Iterable[asyncio.Task[None]], reason: str) -> None:
        """Cancel trial tasks and wait until each is recorded as abandoned."""
        pending = [task for task in tasks if not task.done()]
        for index, task in list(self._tasks.items()):
            if task in pending:
                self._cancel_reasons[index] = reason
                task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def _cancel_on_exit(self, tasks: set[asyncio.Task[None]], reason: str) -> None:
        """Cancel ``tasks`` (recorded ABANDONED with ``reason``), then save the checkpoint."""
        await shielded(self._cancel(tasks, reason))
        await self._save_checkpoint()

    def _interrupted(self, what: str, error: BaseException) -> str:
        """The reason recorded for trials cancelled because ``what`` ended with ``error``."""
        if self._interrupt_reason is not None:
            return self._interrupt_reason
        if isinstance(error, asyncio.CancelledError):
            return f"{CANCELLED_BY_USER}: the task awaiting {what} was cancelled"
        return f"cancelled: {what} stopped on {type(error).__name__}: {error}"

    # -- generation ---------------------------------------------------------------
    def _generate_sync(self, n: int) -> Generated:
        generated = self.ax.generate(n)
        for index, _ in generated.trials:
            self.ax.mark_dispatched(index, dispatch_info(self.runner.kind))
        return generated

    async def _generate(self, n: int) -> Generated:
        future = self._ax_thread.submit(self._generate_sync, n)
        try:
            generated = await asyncio.wrap_future(future)
            self._changed()
            return generated
        except asyncio.CancelledError:
            # The Ax call cannot be interrupted: abandon what it still produces.
            future.add_done_callback(self._abandon_generated)
            raise

    def _abandon_generated(self, future: Future[Generated]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        for index, _ in future.result().trials:
            self.ax.abandon(index, "generated while the run was being cancelled")

    def _work(self, job: Job) -> Awaitable[Any]:
        if isinstance(self.objective, FunctionObjective) and self.objective.is_async:
            return _call_async_objective(self.objective.fn, job.parameters)
        return self.runner.run(job)

    def _start_trials(
        self, jobs: list[Job], works: list[Awaitable[Any]] | None = None
    ) -> list[asyncio.Task[None]]:
        if works is None:
            works = [self._work(job) for job in jobs]
        return [self._launch(job, work) for job, work in zip(jobs, works, strict=True)]

    def _jobs_for(self, trials: list[tuple[int, Parameters]]) -> list[Job]:
        return [self._job(index, params) for index, params in trials]

    async def run_optimization(
        self, max_trials: int = 10, timeout: float | None = None, on_timeout: str = "cancel"
    ) -> Best:
        """Run ``max_trials`` new trials, keeping every slot busy; return the best.

        See ``AxScheduler.run_optimization`` for the full contract.
        """
        _check_count("max_trials", max_trials)
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds or None, got {timeout!r}")
        if on_timeout not in ("cancel", "finish"):
            raise ValueError(
                f"on_timeout must be 'cancel' (stop running trials) or 'finish' (let them"
                f" end), got {on_timeout!r}"
            )
        self.progress.begin(max_trials)
        await self._prepare()
        self.progress.total += len(self._reattached)
        mine: set[asyncio.Task[None]] = set(self._reattached)
        run = [index for index, task in self._tasks.items() if task in mine]
        self._reattached.clear()
        deadline = asyncio.timeout(timeout)
        timed_out = False
        try:
            async with deadline:
                await self._keep_slots_full(max_trials, mine, run)
        except TimeoutError:
            if not deadline.expired():
                raise
            timed_out = True
            await self._end_at_timeout(mine, f"{timeout:g}", on_timeout)
        except FailureRateExceededError:
            await self._cancel_on_exit(mine, "cancelled: the run stopped, too many trials failed")
            raise
        except BaseException as exc:
            await self._cancel_on_exit(mine, self._interrupted("run_optimization", exc))
            raise
        self.last_run = self._summary(run, timed_out, on_timeout if timed_out else None)
        await self._save_checkpoint()
        await self._finish_cleanups()
        best = await self._call_ax(self.ax.best)
        if run and not self.last_run.completed:
            _warn_nothing_completed(self.last_run, best)
        return best

    async def _end_at_timeout(self, mine: set[asyncio.Task[None]], timeout: str, how: str) -> None:
        running = [task for task in mine if not task.done()]
        if how == "cancel":
            reason = f"run_optimization timeout of {timeout} s reached"
            logger.warning("%s: cancelling %d running trials", reason, len(running))
            await self._cancel_on_exit(mine, reason)
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
            await self._cancel_on_exit(mine, self._interrupted("run_optimization", exc))
            raise

    def _summary(self, run: list[int], timed_out: bool, on_timeout: str | None) -> RunSummary:
        return RunSummary(
            trials=list(run),
            completed=[i for i in run if i in self._ended and i not in self._failed],
            failed={i: self._failed[i] for i in run if i in self._failed},
            abandoned={i: self._abandoned[i] for i in run if i in self._abandoned},
            timed_out=timed_out,
            on_timeout=on_timeout,
        )

    def _check_failure_rate(self, run: list[int]) -> None:
        """Stop the run when more than ``tolerated_failure_rate`` of its trials failed.

        Raises:
            FailureRateExceededError: With every failed trial of the run and its reason.
        """
        if len(self._failed) == self._failures_checked:
            return  # nothing failed since the last check: the rate cannot have risen
        self._failures_checked = len(self._failed)
        failed = {index: self._failed[index] for index in run if index in self._failed}
        ended = sum(index in self._ended for index in run)
        rate = self.config.tolerated_failure_rate
        if len(failed) < self.config.min_failed_trials_for_failure_rate_check:
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

    async def _keep_slots_full(
        self, max_trials: int, mine: set[asyncio.Task[None]], run: list[int]
    ) -> None:
        """Generate and start trials until ``max_trials`` ran; ``run`` lists them."""
        launched, exhausted, blocked = 0, False, None
        prefetch = self.config.prefetch_trials
        while True:
            # Before generating more: instant failures free slots as fast as Ax
            # generates, so the loop may never reach the wait below.
            self._check_failure_rate(run)
            # Tasks beyond the free slots wait on the slot semaphore: generated
            # ahead, they start the instant a running trial ends.
            room = self._free_slots() + prefetch
            want = min(room, max_trials - launched)
            if want > 0 and not exhausted and blocked is None:
                generated = await self._generate(want if self.ax.generates_jointly else 1)
                prefetch = self._prefetch_depth(generated)
                mine.update(self._start_trials(self._jobs_for(generated.trials)))
                run += [index for index, _ in generated.trials]
                launched += len(generated.trials)
                exhausted, blocked = generated.exhausted, generated.blocked
                if exhausted and launched < max_trials:
                    logger.info(
                        "Ax's generation strategy is complete after %d new trials", launched
                    )
                continue
            if (launched >= max_trials or exhausted) and all(task.done() for task in mine):
                self._check_failure_rate(run)  # a run that ended over the rate says so too
                return
            if not self._tasks:
                raise OptimizationStalledError(
                    f"Ax generates no new trial ({blocked}) and no trial is running whose"
                    " result could change that. Trials created with get_next_trial() and"
                    " never completed count as pending: run them (batch_trial_context) or"
                    " abandon them, or raise the generation strategy's parallelism limit"
                )
            await asyncio.wait(list(self._tasks.values()), return_when=asyncio.FIRST_COMPLETED)
            self._check_failure_rate(run)
            blocked = None

    def _prefetch_depth(self, generated: Generated) -> int:
        """Candidates to keep generated ahead of a free slot.

        ``prefetch_trials`` in general. While Ax's generator ignores data (Sobol),
        a candidate cannot go stale, so a whole wave is kept ready: trials that
        end together restart together instead of one per generation call.
        """
        prefetch = self.config.prefetch_trials
        if generated.data_free and prefetch > 0:
            return max(prefetch, self.capacity)
        return prefetch

    # -- batches ------------------------------------------------------------------
    def new_batch(self) -> Batch:
        """Open a batch; parameters added to it are validated at once."""
        if self._closed:
            raise SchedulerClosedError("this AxScheduler is closed; create a new one")
        if self._batch_open:
            raise RuntimeError("batch_trial_context() cannot be nested: close the open batch first")
        self._batch_open = True
        return Batch(self.ax.validate_parameters)

    def discard_batch(self, batch: Batch) -> None:
        """Drop a batch whose ``with`` body raised: nothing runs."""
        self._batch_open = False
        logger.info("batch of %d trials dropped: its with-block raised", len(batch.parameters))

    async def submit_batch(self, batch: Batch) -> list[int]:
        """Attach the batch's trials in add order and run them.

        Waits for all of them when ``synchronous`` is set. Returns the trial indices.
        """
        self._batch_open = False
        if not batch.parameters:
            return []
        await self._prepare()  # synchronous or not: a bad setup raises before any trial
        trials = await self._attach(batch.parameters)
        self._changed()
        batch.trial_indices = [index for index, _ in trials]
        jobs = self._jobs_for(trials)
        works = None
        if not self.objective or not self.objective.is_async:
            works = await self.runner.run_batch(jobs)
        tasks = self._start_trials(jobs, works)
        logger.info("batch of %d trials submitted: %s", len(tasks), batch.trial_indices)
        if self.config.synchronous:
            try:
                await asyncio.wait(tasks)
            except BaseException as exc:
                await self._cancel_on_exit(set(tasks), self._interrupted("the batch", exc))
                raise
            await self._save_checkpoint()
            await self._finish_cleanups()
        return batch.trial_indices

    def _attach_sync(self, batch: list[Parameters]) -> list[tuple[int, Parameters]]:
        """On the Ax thread: reuse undispatched trials with equal parameters, else attach."""
        trials: list[tuple[int, Parameters]] = []
        try:
            for params in batch:
                index = self.ax.find_undispatched_trial(params)
                if index is None:
                    index = self.ax.attach(params)
                self.ax.mark_dispatched(index, dispatch_info(self.runner.kind))
                trials.append((index, params))
        except BaseException:
            for index, _ in trials:
                self.ax.abandon(index, "the rest of its batch could not be attached")
            raise
        return trials

    async def _attach(self, batch: list[Parameters]) -> list[tuple[int, Parameters]]:
        future = self._ax_thread.submit(self._attach_sync, batch)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.add_done_callback(self._abandon_attached)
            raise

    def _abandon_attached(self, future: Future[list[tuple[int, Parameters]]]) -> None:
        if not future.cancelled() and future.exception() is None:
            for index, _ in future.result():
                self.ax.abandon(index, "attached while the batch was being cancelled")

    async def wait_for_completed_trials(self, timeout: float | None = None) -> list[int]:
        """Wait until every dispatched trial is finished and recorded.

        Returns:
            Indices of the trials that were outstanding when the wait began.

        Raises:
            TimeoutError: ``timeout`` seconds passed first; the trials keep running.
        """
        if self._lost:
            await self._prepare()
        self._bind_loop()
        self._reattached.clear()
        waited = self.running_trials
        try:
            async with asyncio.timeout(timeout):
                while self._tasks:
                    await asyncio.wait(list(self._tasks.values()))
        except TimeoutError:
            raise TimeoutError(
                f"{len(self._tasks)} trials still running after {timeout:g} s:"
                f" {self.running_trials}; they keep running"
            ) from None
        await self._save_checkpoint()
        await self._finish_cleanups()
        return waited

    # -- resuming -------------------------------------------------------------------
    def adopt_lost_trials(self) -> list[int]:
        """Take the trials a dead driver left RUNNING, to re-attach when the run starts.

        Returns:
            Their indices.
        """
        self._lost = self.ax.stale_dispatched_trials()
        return list(self._lost)

    async def _reattach_lost(self) -> None:
        """Re-attach each lost trial's job, or fail (and maybe re-queue) the trial."""
        lost, self._lost = self._lost, []
        for index, handle, parameters in await self._call_ax(self._handles, lost):
            job = self._job(index, parameters)
            # dispatched_at stays: a runner tells files this trial wrote from older ones.
            job.info.update({k: v for k, v in handle.items() if k != "runner"})
            work = None
            if handle.get("runner") == self.runner.kind:
                work = await self.runner.reattach(job)
            if work is not None:
                logger.info("trial %d: re-attached to its job %s", index, where(job.info))
                self._reattached.add(self._launch(job, work))
                continue
            self._jobs.pop(index, None)
            await self._fail_lost(index, handle.get("runner"), parameters)
        self._changed()

    def _handles(self, indices: list[int]) -> list[tuple[int, dict[str, Any], Parameters]]:
        """On the Ax thread: each trial's recorded job handle and parameters."""
        found = []
        for index in indices:
            trial = self.ax.trial(index)
            handle = dict(trial.run_metadata.get(RUN_METADATA_KEY, {}))
            found.append((index, handle, dict(trial.arms[0].parameters)))
        return found

    async def _fail_lost(self, index: int, runner: Any, parameters: Parameters) -> None:
        if runner == self.runner.kind:
            reason = (
                f"{DRIVER_RESTARTED}: its job was in the previous driver's own {runner}"
                " workers, which ended with it"
            )
        else:
            reason = (
                f"{DRIVER_RESTARTED}: the trial ran on a {runner!r} runner and cannot be"
                f" re-attached by {self.runner!r}"
            )
        lost = functools.partial(self._fail, index, reason, "infrastructure", lost_with_driver=True)
        await self._call_ax(lost, urgent=True)
        logger.warning("trial %d FAILED: %s", index, reason)
        if not self.config.requeue_lost_trials:
            return
        (requeued, _), *_ = await self._attach([parameters])
        job = self._job(requeued, parameters)
        self._reattached.add(self._launch(job, self._work(job)))
        logger.info("trial %d re-queued as trial %d (requeue_lost_trials)", index, requeued)

    def _fail(self, index: int, reason: str, kind: str, **facts: Any) -> None:
        """On the Ax thread: mark the trial FAILED with its reason, kind and other facts."""
        self.ax.note(index, failure_kind=kind, **facts)
        self.ax.fail(index, reason)
        self._failed[index] = reason
        self._ended.add(index)

    # -- results --------------------------------------------------------------------
    async def results(self) -> Any:
        """The results table (see ``_table.results_frame``), running trials included."""
        live = {index: dict(job.info) for index, job in self._jobs.items()}
        return await self._call_ax(lambda: results_frame(self.ax.experiment, live))

    async def report(self, path: str | os.PathLike[str], title: str | None = None) -> Path:
        """Write the HTML report (see ``_report.write_report``); returns its path."""
        from ._report import write_report  # plotly is imported only for a report

        frame = await self.results()
        return await self._call_ax(
            lambda: write_report(self.ax.experiment, path, frame=frame, title=title)
        )

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` ran (the Ax thread is gone)."""
        return self._closed

    # -- persistence and lifecycle -----------------------------------------------
    async def save(self, path: str | os.PathLike[str]) -> Path:
        """Write Ax's JSON snapshot of client, experiment and generation strategy."""
        text = await self._call_ax(self.ax.snapshot_json)
        target = Path(path)
        await asyncio.to_thread(write_atomically, target, text)
        return target

    async def aclose(self) -> None:
        """Cancel running trials (recorded as abandoned) and stop the runner."""
        if self._closed:
            return
        self._closed = True
        reason = self._interrupt_reason or "cancelled: the scheduler was closed"
        await self._cancel_on_exit(set(self._tasks.values()), reason)
        await self._finish_cleanups()  # before the runner's connections close
        await self.runner.aclose()
        self._ax_thread.shutdown()

    def close_unused(self) -> None:
        """Close a scheduler that never ran anything (no loop, no workers)."""
        self._closed = True
        self._ax_thread.shutdown()


async def _call_async_objective(
    fn: Callable[[Parameters], Awaitable[Any]], parameters: Parameters
) -> Any:
    try:
        return await fn(dict(parameters))
    except Exception as exc:
        raise ObjectiveError(
            f"{type(exc).__name__}: {exc}", details=traceback.format_exc()
        ) from exc


async def _discard_unawaited(work: Awaitable[Any]) -> None:
    """Release work that a cancelled trial never awaited.

    A coroutine is closed (no "never awaited" warning). A future (a job a runner
    already submitted, like a Slurm array task) is cancelled and waited for, so
    its runner can stop the job before the trial counts as abandoned.
    """
    if asyncio.iscoroutine(work):
        work.close()  # no-op for a finished coroutine
    elif isinstance(work, asyncio.Future) and not work.done():
        work.cancel()
        await shielded(asyncio.wait([work]))


def _failure_kind(error: Any) -> str:
    """How a failure is classified in the trial's run metadata."""
    if isinstance(error, TrialTimeoutError):
        return "timeout"
    if isinstance(error, InfrastructureError):
        return "infrastructure"
    return "objective"


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


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")


# Imported from here by the facade, the CLI and tests.
__all__ = [
    "CANCELLED_BY_USER",
    "DRIVER_RESTARTED",
    "Best",
    "Progress",
    "RunSummary",
    "Scheduler",
    "write_atomically",
]
