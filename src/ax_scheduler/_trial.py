"""One trial's life: a slot, its job, its outcome recorded in Ax; or abandoned.

Each trial is an asyncio task (:meth:`Trials.launch`) that waits for one of the
runner's slots, awaits its job (under ``trial_timeout``, run again on a fresh job
after infrastructure failures: see ``_attempts``) and has the outcome recorded
on the Ax thread. A cancelled trial is recorded ABANDONED with the reason its
canceller gave. Completions are event-driven: nothing polls.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from ._aio import shielded
from ._attempts import with_retries, with_trial_timeout
from ._ax import Parameters
from ._cleanup import Cleanups
from ._context import Context
from ._earlystop import Progressions
from ._exceptions import EventLoopMismatchError, ObjectiveError, TrialError
from ._jobs import FunctionObjective, Job, Objective
from ._outcomes import CANCELLED_BY_USER, Completed, Failed, Outcome, Stopped
from ._record import Recorder
from ._reporting import CallbackReporter, reporting_to
from ._runmetadata import describe_job

logger = logging.getLogger("ax_scheduler")


class Trials:
    """The trials in flight, and the slots they run in.

    Args:
        ctx: The scheduler's shared parts.
        recorder: Records outcomes, on the Ax thread.
        experiment: The experiment's name, which names the jobs.
        output_dir: The absolute ``job_output_dir``.
        progressions: Takes the trials' reports and decides early stops.

    Attributes:
        objective: What every trial runs (set before trials start).
        capacity: How many trials run at once.
        tasks: Trial index -> task, for trials dispatched and not yet recorded.
        jobs: Trial index -> their jobs; runners fill in ``job.info``.
        interrupt_reason: Set by the facade on Ctrl-C: the reason the trials it
            cancels get.
        loop: The event loop the trials run on, once one is bound.
    """

    def __init__(
        self,
        ctx: Context,
        recorder: Recorder,
        experiment: str,
        output_dir: Path,
        progressions: Progressions,
    ) -> None:
        self._ctx = ctx
        self._progressions = progressions
        self._recorder = recorder
        self._experiment = experiment
        self._output_dir = output_dir
        self._cleanups = Cleanups(ctx)
        capacity = ctx.runner.capacity
        self.capacity = min(capacity, ctx.config.max_parallel_trials or capacity)
        self.objective: Objective | None = None
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.jobs: dict[int, Job] = {}
        self.interrupt_reason: str | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._cancel_reasons: dict[int, str] = {}
        self._waiting: set[int] = set()  # trials whose tasks wait for a slot

    # -- the event loop and its slots -------------------------------------------------
    def bind_loop(self) -> asyncio.Semaphore:
        """The slots, on the running loop (the first loop that runs a trial keeps them).

        Raises:
            SchedulerClosedError: The scheduler is closed.
            EventLoopMismatchError: Trials already run on another loop.
        """
        self._ctx.check_open()
        loop = asyncio.get_running_loop()
        if self.loop is None or (self.loop.is_closed() and not self.tasks):
            self.loop, self._slots = loop, asyncio.Semaphore(self.capacity)
        elif self.loop is not loop:
            raise EventLoopMismatchError(
                "this AxScheduler already runs trials on another event loop; use one"
                " scheduler per event loop, and do not mix the sync methods (which run"
                " on the scheduler's own loop thread) with the *_async ones"
            )
        assert self._slots is not None
        return self._slots

    @property
    def running(self) -> list[int]:
        """Indices of trials dispatched and not yet recorded."""
        return sorted(self.tasks)

    def free_slots(self) -> int:
        """Slots no trial holds or waits for."""
        return self.capacity - len(self.tasks)

    # -- starting trials -------------------------------------------------------------
    def job(self, index: int, parameters: Parameters) -> Job:
        """The job of trial ``index``, tracked until the trial is recorded."""
        assert self.objective is not None
        name = f"{self._experiment}-trial-{index}"
        record = functools.partial(self._record_job_info, index) if self._ctx.checkpoint else None
        job = Job(
            index,
            dict(parameters),
            self.objective,
            name,
            workdir=self._output_dir / name,
            on_info=record,
        )
        self.jobs[index] = job  # the runner fills in job.info; recorded with the trial
        return job

    def resume_progress(self, steps: dict[int, float]) -> None:
        """Trials' last steps in Ax, for re-attached trials whose reports are read again."""
        self._progressions.resume_from(steps)

    def jobs_for(self, trials: list[tuple[int, Parameters]]) -> list[Job]:
        """The jobs of ``(trial index, parameters)`` pairs."""
        return [self.job(index, params) for index, params in trials]

    def start(
        self, jobs: list[Job], works: list[Awaitable[Any]] | None = None
    ) -> list[asyncio.Task[None]]:
        """Launch a trial per job; ``works`` are their runs if already submitted."""
        if works is None:
            works = [self.work(job) for job in jobs]
        return [self.launch(job, work) for job, work in zip(jobs, works, strict=True)]

    def launch(self, job: Job, work: Awaitable[Any]) -> asyncio.Task[None]:
        """Start the trial's task: it queues for a slot, then awaits ``work``."""
        index = job.trial_index
        task = asyncio.create_task(self._run(job, work), name=f"ax-scheduler-trial-{index}")
        self.tasks[index] = task
        self._ctx.progress.queued += 1
        logger.info("trial %d queued for %s", index, self._ctx.runner.kind)
        self._ctx.events.emit("trial_queued", index, parameters=dict(job.parameters))
        return task

    def work(self, job: Job) -> Awaitable[Any]:
        """What the trial awaits: an async objective on this loop, else the runner's job."""
        if isinstance(self.objective, FunctionObjective) and self.objective.is_async:
            return _call_async_objective(self.objective.fn, job)
        return self._ctx.runner.run(job)

    async def _record_job_info(self, index: int) -> None:
        """Put the job's handle into its trial and the checkpoint, and wait for both."""
        job = self.jobs.get(index)
        info = job.info if job is not None else {}
        await self._ctx.call_ax(functools.partial(self._ctx.ax.note, index, **info))
        if self._ctx.checkpoint is not None:
            await self._ctx.checkpoint.flush()

    # -- one trial's task ---------------------------------------------------------------
    async def _run(self, job: Job, work: Awaitable[Any]) -> None:
        index = job.trial_index
        try:
            outcome, seconds = await self._execute(job, work)
            # The trial has ended: its real outcome is recorded even if the run is
            # being cancelled now (a queued Ax call must not be dropped).
            await shielded(self._progressions.drain(index))  # its curve goes first
            record = self._recorder.record
            step = self._progressions.last_step.pop(index, None)
            completed = await shielded(
                self._ctx.call_ax(record, index, outcome, seconds, job.info, step, urgent=True)
            )
            change = self._ctx.changed()
            kind, data = self._recorder.outcome_of(index)
            self._ctx.events.emit(kind, index, seconds=seconds, **data)
            if completed and self._ctx.config.cleanup_after_completion:
                self._cleanups.start(job, change)
        finally:
            await _discard_unawaited(work)
            self.tasks.pop(index, None)
            self.jobs.pop(index, None)

    async def _execute(self, job: Job, work: Awaitable[Any]) -> tuple[Outcome, float]:
        """Run one trial's work in a slot; turn every ending into an outcome."""
        ctx = self._ctx
        slots = self.bind_loop()
        started = ctx.clock.now()
        waiting = True
        self._waiting.add(job.trial_index)
        try:
            async with slots:
                started, waiting = ctx.clock.now(), False
                self._waiting.discard(job.trial_index)
                self._note_started(job)
                outcome = await self._attempt(job, work)
        except TrialError as exc:
            reason = job.channel.stop_reason  # e.g. TrialStoppedEarly from report()
            outcome = Failed(exc) if reason is None else Stopped(reason)
        except asyncio.CancelledError:
            self._waiting.discard(job.trial_index)
            await self._abandon(job, waiting, ctx.clock.now() - started)
            raise
        except Exception as exc:  # a runner bug must not take the run down with it
            logger.exception("trial %d: unexpected error from %r", job.trial_index, ctx.runner)
            outcome = Failed(TrialError(f"internal error in {ctx.runner!r}: {exc!r}"))
        # Stamped here, not when Ax records it: a queued Ax call would make the
        # trial look longer than it ran.
        job.info.setdefault("finished_at", time.time())
        self._note_ended(waiting)
        return outcome, ctx.clock.now() - started

    async def _attempt(self, job: Job, work: Awaitable[Any]) -> Outcome:
        """The job's outcome: under ``trial_timeout``, retried, taking reports.

        A trial the early-stopping strategy stops has ``early_stopping_grace``
        seconds to end by itself; then its work is cancelled (the runner kills the
        job) and it counts as stopped, not abandoned.
        """
        ctx = self._ctx
        attempts = with_retries(job, work, ctx.runner, ctx.config, ctx.clock)
        unfollow = self._progressions.follow(job)
        loop = asyncio.get_running_loop()
        grace = ctx.config.early_stopping_grace
        try:
            async with asyncio.timeout(None) as stop_deadline:
                job.channel.on_stop(lambda _: stop_deadline.reschedule(loop.time() + grace))
                value = await with_trial_timeout(
                    job.trial_index, attempts, ctx.config.trial_timeout, ctx.clock
                )
        except TimeoutError:
            if not stop_deadline.expired() or job.channel.stop_reason is None:
                raise
            return Stopped(job.channel.stop_reason)
        finally:
            unfollow()
        return Completed(value)

    async def _abandon(self, job: Job, waiting: bool, seconds: float) -> None:
        """Record the cancelled trial ABANDONED with its canceller's reason."""
        index = job.trial_index
        reason = self._cancel_reasons.pop(index, "cancelled")
        job.info.setdefault("finished_at", time.time())
        self._note_ended(waiting)
        abandon = self._recorder.abandon
        await shielded(self._ctx.call_ax(abandon, index, reason, job.info, urgent=True))
        self._ctx.changed()
        self._ctx.events.emit("trial_abandoned", index, reason=reason)
        logger.warning(
            "trial %d abandoned: %s (%s%s)",
            index,
            reason,
            describe_job(self._ctx.runner.kind, job.info),
            "" if waiting else f", after {seconds:.2f} s",
        )

    def _note_started(self, job: Job) -> None:
        """The trial got a slot and goes to the runner: count it, stamp it, log it."""
        self._ctx.progress.queued -= 1
        self._ctx.progress.running += 1
        job.info.setdefault("started_at", time.time())
        logger.info("trial %d started on %s", job.trial_index, self._ctx.runner.kind)
        self._ctx.events.emit("trial_started", job.trial_index, runner=self._ctx.runner.kind)

    def _note_ended(self, waiting: bool) -> None:
        if waiting:
            self._ctx.progress.queued -= 1
        else:
            self._ctx.progress.running -= 1

    # -- ending trials -------------------------------------------------------------------
    async def cancel(self, tasks: Iterable[asyncio.Task[None]], reason: str) -> None:
        """Cancel trial tasks and wait until each is recorded as abandoned."""
        pending = [task for task in tasks if not task.done()]
        for index, task in list(self.tasks.items()):
            if task in pending:
                self._cancel_reasons[index] = reason
                task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def cancel_waiting(self, tasks: set[asyncio.Task[None]], reason: str) -> None:
        """Cancel those of ``tasks`` still waiting for a slot (recorded ABANDONED)."""
        waiting = {self.tasks[i] for i in self._waiting if i in self.tasks}
        await self.cancel(waiting & tasks, reason)

    async def cancel_on_exit(self, tasks: set[asyncio.Task[None]], reason: str) -> None:
        """Cancel ``tasks`` (recorded ABANDONED with ``reason``), then save the checkpoint."""
        await shielded(self.cancel(tasks, reason))
        await self._ctx.save_checkpoint()

    def interrupted(self, what: str, error: BaseException) -> str:
        """The reason recorded for trials cancelled because ``what`` ended with ``error``."""
        if self.interrupt_reason is not None:
            return self.interrupt_reason
        if isinstance(error, asyncio.CancelledError):
            return f"{CANCELLED_BY_USER}: the task awaiting {what} was cancelled"
        return f"cancelled: {what} stopped on {type(error).__name__}: {error}"

    async def wait_all(self, timeout: float | None) -> list[int]:
        """Wait until every dispatched trial is recorded, then :meth:`settle`.

        Returns:
            The trials that were outstanding when the wait began.

        Raises:
            TimeoutError: ``timeout`` seconds passed first; the trials keep running.
        """
        waited = self.running
        try:
            async with self._ctx.clock.timeout(timeout):
                while self.tasks:
                    await asyncio.wait(list(self.tasks.values()))
        except TimeoutError:
            raise TimeoutError(
                f"{len(self.tasks)} trials still running after {timeout:g} s:"
                f" {self.running}; they keep running"
            ) from None
        await self.settle()
        return waited

    async def settle(self) -> None:
        """Save the checkpoint and wait for the folder removals under way."""
        await self._ctx.save_checkpoint()
        await self._cleanups.finish()

    async def aclose(self, reason: str) -> None:
        """Cancel every trial (recorded ABANDONED with ``reason``) and finish clean-ups."""
        await self.cancel_on_exit(set(self.tasks.values()), reason)
        await self._cleanups.finish()  # before the runner's connections close


async def _call_async_objective(fn: Callable[[Parameters], Awaitable[Any]], job: Job) -> Any:
    reporter = CallbackReporter(job.channel.deliver)
    job.channel.on_stop(lambda reason: setattr(reporter, "reason", reason))
    try:
        with reporting_to(reporter):
            return await fn(dict(job.parameters))
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
