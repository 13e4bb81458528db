"""The ``JOB_*`` environment of script and container trials: where the trial's files are.

One rule, wherever a trial runs (a local script, a script on an SSH host or in a
Slurm job, a Docker or Apptainer container): the ``JOB_*`` names are
ax-scheduler's. They tell the program where its parameters are and where its
result goes, so a user's ``env``/``env_vars`` may not set them
(:func:`check_user_env`, run when the objective is set), and they are put last
(:func:`trial_environment`), after the user's variables.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: The prefix of the variables ax-scheduler sets; a user's variables may not use it.
JOB_PREFIX = "JOB_"

#: Each variable and the trial path (a script placeholder) it holds.
JOB_VARIABLES = {
    "JOB_PARAMS_FILE": "params_file",
    "JOB_OUTPUT_FILE": "output_file",
    "JOB_TRIAL_INDEX": "trial_index",
    "JOB_WORKDIR": "workdir",
}


#: Where a trial appends its progress lines (``ax_scheduler.report``'s file form).
PROGRESS_VARIABLE = "JOB_PROGRESS_FILE"


def job_environment(paths: Mapping[str, str]) -> dict[str, str]:
    """The ``JOB_*`` variables of one trial.

    ``JOB_PROGRESS_FILE`` is ``progress.jsonl`` in the trial's folder: JSON lines
    ``{"step": 10, "loss": 0.31}`` appended there are the trial's reports.

    Args:
        paths: The trial's placeholder values as the program sees them
            (``params_file``, ``output_file``, ``trial_index``, ``workdir``): on
            this machine, on the cluster, or inside the container.
    """
    env = {name: paths[placeholder] for name, placeholder in JOB_VARIABLES.items()}
    env[PROGRESS_VARIABLE] = f"{paths['workdir'].rstrip('/')}/progress.jsonl"
    return env


def trial_environment(
    user_env: Iterable[tuple[str, str]], paths: Mapping[str, str]
) -> dict[str, str]:
    """The user's variables, then the ``JOB_*`` ones (which they may not name).

    Args:
        user_env: The objective's ``env`` pairs (a container's ``env_vars``).
        paths: The trial's placeholder values, as for :func:`job_environment`.
    """
    return {**dict(user_env), **job_environment(paths)}


def check_user_env(env: Mapping[str, str]) -> Mapping[str, str]:
    """Refuse a user's variable named ``JOB_*``.

    Raises:
        ValueError: A name starts with ``JOB_``; the message names it and why.
    """
    for name in env:
        if name.startswith(JOB_PREFIX):
            raise ValueError(
                f"{name!r} cannot be set: {JOB_PREFIX}* variables are ax-scheduler's, they"
                f" tell the trial where its files are ({', '.join(JOB_VARIABLES)}); pick"
                " another name"
            )
    return env
