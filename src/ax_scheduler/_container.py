"""Container objectives: checking them when set, and the ``docker run`` line."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from ._config import ContainerOptions
from ._exceptions import ConfigError
from ._jobenv import trial_environment
from ._jobs import CONTAINER_WORKDIR, ContainerObjective, Job
from ._script import check_placeholders


def make_container_objective(
    image: str,
    command: str | list[str] | None,
    options: ContainerOptions,
    *,
    check_volumes: bool = True,
) -> ContainerObjective:
    """Validate an image name, a command template and options now.

    Args:
        image: The image.
        command: The command template, split like a shell would.
        options: Validated container options.
        check_volumes: Check volumes' host paths on this machine (the engine runs
            here). False keeps them as given, absolute, for a runner that checks
            them where its jobs run.

    Raises:
        ValueError: Empty image, an unparsable command, an unknown placeholder, a
            relative host path that is not checked here.
        FileNotFoundError: A volume's host path does not exist.
    """
    if not isinstance(image, str) or not image.strip():
        raise ConfigError(f"container_image must be an image name like 'sim:latest', got {image!r}")
    argv = _split_command(command)
    for arg in argv:
        check_placeholders(arg)
    return ContainerObjective(
        image=image,
        command=tuple(argv),
        engine=options.engine,
        volumes=tuple(
            _check_volume(host, inside, here=check_volumes)
            for host, inside in options.volumes.items()
        ),
        env=tuple(options.env_vars.items()),
        cpus=options.cpus,
        memory=options.memory,
        gpus=None if options.gpus is None else str(options.gpus),
        network=options.network,
        timeout=options.timeout,
    )


def _split_command(command: str | list[str] | None) -> list[str]:
    if command is None:
        return []
    if isinstance(command, str):
        try:
            return shlex.split(command)
        except ValueError as exc:
            raise ConfigError(f"container_command {command!r} cannot be split: {exc}") from None
    return [str(arg) for arg in command]


def _check_volume(host: str, inside: str, *, here: bool) -> tuple[str, str]:
    if here:
        path = Path(host).expanduser().absolute()
        if not path.exists():
            raise FileNotFoundError(f"volume host path {host!r} ({path}) does not exist")
        host = str(path)
    elif not host.startswith("/"):
        raise ConfigError(
            f"volume host path {host!r} must be absolute: it is a path on the machine"
            " where the jobs run, which is not this one"
        )
    if not inside.startswith("/") or inside.split(":")[0] == CONTAINER_WORKDIR:
        raise ConfigError(
            f"volume container path for {host!r} must be absolute and not"
            f" {CONTAINER_WORKDIR} (the trial directory), got {inside!r}"
        )
    return host, inside


def container_name(job: Job, suffix: str) -> str:
    """A name Docker accepts: ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``, unique per run."""
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", f"axs-{job.name}-{suffix}")


def docker_run_argv(
    engine: str,
    objective: ContainerObjective,
    job: Job,
    name: str,
    user: str,
    *,
    init: bool = False,
) -> list[str]:
    """The complete ``docker run`` command line of one trial (no shell involved).

    Args:
        engine: The engine's client command.
        objective: What the container runs.
        job: The trial (its folder is mounted at ``/job``).
        name: The container's name.
        user: ``uid:gid`` it runs as.
        init: Run the command under the engine's init (``--init``), which passes
            signals on: as PID 1 the command itself would ignore a SIGTERM it set
            no handler for (an early stop, ``docker stop``).
    """
    assert job.workdir is not None
    env = trial_environment(objective.env, objective.placeholders(job.trial_index))
    # No --rm: the runner removes the container once it has read the result, so a
    # driver that dies in between finds it (and its exit code) when it resumes.
    argv = [engine, "run", "--name", name, "--user", user]
    argv += ["--volume", f"{job.workdir}:{CONTAINER_WORKDIR}", "--workdir", CONTAINER_WORKDIR]
    for host, target in objective.volumes:
        argv += ["--volume", f"{host}:{target}"]
    if init:
        argv.append("--init")
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    argv += _limits(objective)
    return [*argv, objective.image, *objective.argv(job.trial_index)]


def _limits(objective: ContainerObjective) -> list[str]:
    flags = {
        "--cpus": objective.cpus,
        "--memory": objective.memory,
        "--gpus": objective.gpus,
        "--network": objective.network,
    }
    return [
        part for flag, value in flags.items() if value is not None for part in (flag, str(value))
    ]


#: Cluster container engines and the flag that passes GPUs through.
APPTAINER_ENGINES = {"apptainer": "--nv", "singularity": "--nv"}


def apptainer_exec_argv(objective: ContainerObjective, workdir: str, trial_index: int) -> list[str]:
    """The ``apptainer exec`` (or ``singularity exec``) line of one trial in a cluster job.

    The trial directory is bound at ``/job`` as with Docker; the environment is
    cleaned (``--cleanenv``) so the host's variables do not leak in, and the
    ``env_vars`` and ``JOB_*`` variables are passed explicitly. CPU and memory
    limits come from the Slurm job itself; ``gpus`` turns on ``--nv``.
    """
    argv = [objective.engine, "exec", "--cleanenv", "--pwd", CONTAINER_WORKDIR]
    argv += ["--bind", f"{workdir}:{CONTAINER_WORKDIR}"]
    for host, target in objective.volumes:
        argv += ["--bind", f"{host}:{target}"]
    env = trial_environment(objective.env, objective.placeholders(trial_index))
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    if objective.gpus is not None:
        argv.append(APPTAINER_ENGINES[objective.engine])
    return [*argv, objective.image, *objective.argv(trial_index)]
