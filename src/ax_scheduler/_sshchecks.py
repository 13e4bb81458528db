"""What SSHRunner checks on each host before any trial runs there.

Each check runs on the host, with the host's ``env``, as the worker will run: a
function objective's pickle is loaded once by the host's Python (cloudpickle and
the objective's imports must be there), a script's interpreter must be found.
A host that fails a check is left out of the pool with the reason, not failed
trial by trial; :meth:`~ax_scheduler._hostpool.HostPool.check` turns "no host
left" into a :class:`~ax_scheduler.RunnerError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ._exceptions import TrialError
from ._hostpool import Host, HostPool, _Lost
from ._jobs import Objective, ScriptObjective
from ._remote import Completed
from ._remotejob import Uploadable
from ._slurm import program_check_argv

#: Loads the uploaded objective once: checks Python, cloudpickle and the imports.
LOAD_CHECK = "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))"


class HostChecks:
    """The objective checks of one SSH runner's hosts.

    Args:
        pool: The runner's hosts (calls go through it, so a lost host is seen).
        upload: Puts the objective's file on a host, once; its path there.
    """

    def __init__(
        self, pool: HostPool, upload: Callable[[Host, Uploadable], Awaitable[str]]
    ) -> None:
        self._pool = pool
        self.upload = upload

    async def objective(self, host: Host, objective: Objective) -> None:
        """Upload ``objective`` to ``host`` and check it there; leave the host out if not."""
        if isinstance(objective, ScriptObjective):
            await self._check_script_on(host, objective)
        else:
            await self._check_on(host, objective)

    async def _check_script_on(self, host: Host, objective: ScriptObjective) -> None:
        try:
            await self.upload(host, objective)
        except (_Lost, TrialError) as exc:
            host.down = host.down or f"cannot upload the script to {host.address}: {exc}"
            return
        program = objective.interpreter
        if program is not None:
            # It must be found where the worker runs it: with the host's env.
            await self._leave_out_unless(
                host,
                [*host.env(), *program_check_argv(program)],
                lambda result: (
                    f"the script's interpreter {program!r} is not found on {host.address}"
                    f" (with the host's env): {result.describe()}; give its full path there,"
                    " or set PATH in the host's env"
                ),
            )

    async def _check_on(self, host: Host, objective: Any) -> None:
        try:
            path = await self.upload(host, objective)
        except (_Lost, TrialError) as exc:
            host.down = host.down or str(exc)
            return
        await self._leave_out_unless(
            host,
            [*host.python(), "-c", LOAD_CHECK, path],
            lambda result: (
                f"{host.options.python} on {host.address} cannot load the objective:"
                f" {result.describe()}"
            ),
        )

    async def _leave_out_unless(
        self, host: Host, argv: list[str], problem: Callable[[Completed], str]
    ) -> None:
        """Run a check on ``host``; if it fails (or the host is lost), leave the host out."""
        try:
            result = await self._pool.call(host, lambda: host.transport.run(argv))
        except (_Lost, TrialError) as exc:
            host.down = host.down or str(exc)
            return
        if not result.ok:
            host.down = problem(result)
