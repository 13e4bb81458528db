"""Submitting one Slurm job array: its files on the cluster, then ONE ``sbatch``.

``sbatch`` is retried (1, 2, 4 s apart, on the injected clock) when it fails, but
never blindly after a connection dropped mid-command: the submission may have
gone through, so the array is looked up by its unique name first.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Awaitable, Callable, Sequence

from ._clock import REAL_CLOCK, Clock
from ._config import SlurmConfig
from ._exceptions import InfrastructureError, TrialError
from ._jobs import Job
from ._remote import Transport, _ConnectionDropped
from ._remotejob import RemoteSession, Uploadable, manifest
from ._retry import Backoff
from ._slurm import job_script, sbatch_argv
from ._slurmtask import Phase, SlurmTask, record_info, settle

logger = logging.getLogger("ax_scheduler")

#: sbatch attempts: the first, and three more 1, 2 and 4 s later.
SBATCH_RETRIES = Backoff(3)


class ArraySubmitter:
    """Writes an array's manifest and job script, and submits it.

    Args:
        transport: Where cluster commands run.
        session: The runner's session directory on the cluster.
        config: The runner's job options (``python``, ``modules``, ``setup``,
            ``array_parallelism``).
        resources: The sbatch options of every job (partition, time, memory ...),
            asked for at each submission.
        clock: Where the waits between attempts go.
    """

    def __init__(
        self,
        transport: Transport,
        session: RemoteSession,
        config: SlurmConfig,
        resources: Callable[[], Sequence[str]],
        *,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self.transport = transport
        self.session = session
        self.config = config
        self.resources = resources
        self._clock = clock
        #: ``sbatch`` calls made, for tests and benches.
        self.sbatches = 0
        self._arrays = itertools.count()

    async def submit_tasks(
        self, tasks: list[SlurmTask], place: Callable[[Uploadable], Awaitable[str]]
    ) -> str | None:
        """Submit ``tasks`` as the session's next array.

        Each task gets its trial directory and the array's name (recorded before
        sbatch), then its array task id and the ``SUBMITTED`` phase (for the caller
        to record); a failure to submit settles them all with the reason instead.

        Returns:
            The array's job id, or None if it was not submitted.
        """
        number = next(self._arrays)
        directory = f"{self.session.directory}/a{number}"
        name = f"axs-{self.session.name}-a{number}"
        for index, task in enumerate(tasks):
            task.workdir, task.phase = f"{directory}/{index}", Phase.SUBMITTING
            task.job.info.pop("slurm_job_id", None)
            task.job.info.update(slurm_job_name=name, slurm_array_task=index, job_dir=task.workdir)
        try:
            # In the checkpoint before sbatch: a driver killed right after it can
            # still find the array by its name instead of leaving it orphaned.
            await record_info(tasks)
            job_id = await self.submit(name, directory, [(t.job, t.workdir) for t in tasks], place)
        except Exception as exc:  # noqa: BLE001 - any failure to submit fails these trials
            error = exc if isinstance(exc, TrialError) else InfrastructureError(str(exc))
            for task in tasks:
                settle(task, error=error)
                task.submitted.set()
            return None
        for index, task in enumerate(tasks):
            task.slurm_id, task.phase = f"{job_id}_{index}", Phase.SUBMITTED
            task.job.info.update(
                slurm_job_id=task.slurm_id,
                stdout=f"{task.workdir}/stdout.log",
                stderr=f"{task.workdir}/stderr.log",
            )
        return job_id

    async def submit(
        self,
        name: str,
        directory: str,
        tasks: Sequence[tuple[Job, str]],
        place: Callable[[Uploadable], Awaitable[str]],
    ) -> str:
        """Submit ``tasks`` (each job and its trial directory) as array ``name``.

        Args:
            name: The array's job name, unique on the cluster.
            directory: Where its manifest, job script and logs go.
            tasks: Its tasks, in array order; they share one objective.
            place: Puts the objective's file on the cluster; its path there.

        Returns:
            The array's job id.

        Raises:
            InfrastructureError: The files cannot be written, or sbatch keeps failing.
            RunnerError: The cluster cannot be reached.
        """
        jobs = await manifest(tasks[0][0].objective, tasks, place)
        trials = ", ".join(str(job.trial_index) for job, _ in tasks)
        script = job_script(
            python=self.config.python,
            worker=self.session.worker,
            manifest=f"{directory}/manifest.json",
            modules=self.config.modules,
            setup=self.config.setup,
            header=f"ax-scheduler job array {name}: trials {trials}",
        )
        mkdir = await self.transport.run(["mkdir", "-p", "--", *(workdir for _, workdir in tasks)])
        if not mkdir.ok:
            raise InfrastructureError(f"cannot create the trial directories: {mkdir.describe()}")
        data = json.dumps(jobs).encode()
        await self.transport.write_file(f"{directory}/manifest.json", data)
        await self.transport.write_file(f"{directory}/job.sh", script.encode(), mode=0o755)
        argv = sbatch_argv(
            script=f"{directory}/job.sh",
            job_name=name,
            tasks=len(tasks),
            array_parallelism=self.config.array_parallelism,
            log_dir=directory,
            resources=self.resources(),
        )
        return await self._sbatch(argv, name)

    async def _sbatch(self, argv: list[str], name: str) -> str:
        async for attempt in SBATCH_RETRIES.attempts(self._clock):
            if attempt.number > 0:
                # The last sbatch may have gone through though it seemed not to (the
                # connection dropped, or the controller restarted before it answered):
                # find the array by its unique name first, or it would run twice.
                found = await self._submitted_as(name)
                if found is not None:
                    logger.info("sbatch of %s had gone through, as job %s", name, found)
                    return found
            self.sbatches += 1
            try:
                result = await self.transport.run(argv, idempotent=False)
            except _ConnectionDropped:
                continue
            if result.ok:
                return result.stdout.strip().split(";")[0]
            if attempt.is_last:
                raise InfrastructureError(f"sbatch failed: {result.describe()}")
            delay = SBATCH_RETRIES.delay(attempt.number + 1)
            logger.warning("sbatch failed (%s); retrying in %g s", result.describe(), delay)
        found = await self._submitted_as(name)  # the last attempt's connection dropped
        if found is not None:
            return found
        raise InfrastructureError(f"sbatch of {name} did not go through")

    async def _submitted_as(self, name: str) -> str | None:
        """The id of array ``name`` if the cluster has it: queued or running
        (``squeue``), or already finished (``sacct``: its tasks may be that quick)."""
        return await self._job_named(name) or await self.array_named(name)

    async def _job_named(self, name: str) -> str | None:
        """The id of the queued or running job named ``name``, if any."""
        result = await self.transport.run(["squeue", "-h", f"--name={name}", "-o", "%F"])
        ids = result.stdout.split()
        return ids[0] if result.ok and ids else None

    async def array_named(self, name: str) -> str | None:
        """The id of the job array named ``name``, running or finished, if any."""
        result = await self.transport.run(
            ["sacct", "-n", "-P", "-X", f"--name={name}", "--starttime=now-30days", "-o", "JobID"]
        )
        ids = [line.split("_")[0] for line in result.stdout.split() if line.strip()]
        return ids[0] if result.ok and ids else None
