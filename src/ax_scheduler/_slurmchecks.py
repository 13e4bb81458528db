"""What SlurmRunner checks on the cluster before any trial exists.

Each check runs where the jobs will run, as they will run: ``sbatch --test-only``
with the job options, and a script's interpreter or a container's engine looked
up by bash after the job script's ``module load`` and ``setup`` lines. A problem
is a :class:`~ax_scheduler.RunnerError` at the start, not a failure per trial.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._container import APPTAINER_ENGINES
from ._exceptions import RunnerError
from ._jobs import ContainerObjective, Objective, ScriptObjective
from ._remote import Transport
from ._slurm import parse_max_array_size, program_check_argv

#: Prints each of its arguments that is not an existing path (paths are data: "$p").
_LIST_MISSING = 'for p; do [ -e "$p" ] || printf "%s\\n" "$p"; done'


class SlurmChecks:
    """The start-up checks of one Slurm runner.

    Args:
        transport: Where cluster commands run.
        prelude: The job script's lines before the trial (``module load``, setup).
    """

    def __init__(self, transport: Transport, prelude: Sequence[str]) -> None:
        self.transport = transport
        self.prelude = list(prelude)

    async def job_options(self, resources: Sequence[str]) -> None:
        """sbatch must accept the job options.

        Raises:
            RunnerError: sbatch is not installed, or refuses them (an unknown
                partition, account or option).
        """
        result = await self.transport.run(["sbatch", "--test-only", *resources, "--wrap=true"])
        if result.returncode == 127:
            raise RunnerError(f"sbatch is not installed on {self.transport.description}")
        if not result.ok:
            raise RunnerError(
                f"sbatch refused the job options {list(resources)}: {result.describe()}"
            )

    async def max_array_size(self) -> int | None:
        """The cluster's ``MaxArraySize`` (None if it does not say)."""
        found = await self.transport.run(["scontrol", "show", "config"])
        return parse_max_array_size(found.stdout)

    async def objective(self, objective: Objective, runner: str) -> None:
        """A script's interpreter, a container's engine and volumes, where the jobs run.

        Args:
            objective: The objective.
            runner: The runner, for messages.

        Raises:
            RunnerError: A container engine Slurm cannot use, or an interpreter,
                engine or volume the cluster does not have.
        """
        if isinstance(objective, ScriptObjective) and objective.interpreter is not None:
            await self._program(objective.interpreter, "the script's interpreter")
        elif isinstance(objective, ContainerObjective):
            if objective.engine not in APPTAINER_ENGINES:
                raise RunnerError(
                    f"{runner} runs containers with apptainer or singularity, not"
                    f" {objective.engine!r}: pass container_options={{'engine': 'apptainer'}}"
                    " (or 'singularity')"
                )
            await self._program(objective.engine, "container engine")
            await self._volumes(objective)

    async def _program(self, program: str, what: str) -> None:
        """``program`` must be found by the job's own shell, after modules and setup."""
        found = await self.transport.run(program_check_argv(program, self.prelude, shell="bash"))
        if not found.ok:
            raise RunnerError(
                f"{what} {program!r} is not found on {self.transport.description} in the"
                " jobs' environment (bash, after the job script's `module load` and setup"
                f" lines): {found.describe()}. Make it available with config={{'modules':"
                " [...]} or config={'setup': [...]}, or give its full path on the cluster"
            )

    async def _volumes(self, objective: ContainerObjective) -> None:
        """Every volume's host path must exist on the cluster, where it is bound."""
        paths = [host for host, _ in objective.volumes]
        if not paths:
            return
        listed = await self.transport.run(["sh", "-c", _LIST_MISSING, "sh", *paths])
        missing = listed.stdout.splitlines()
        if missing or not listed.ok:
            raise RunnerError(
                f"container volume host paths do not exist on {self.transport.description}:"
                f" {missing or listed.describe()}; the jobs bind them there"
            )
