"""The local Slurm cluster and its SSH "login node", as the tests reach them.

`ci/start-slurm.sh` (run by the README's test command) starts munge, slurmdbd with
MariaDB, slurmctld, slurmd and an OpenSSH server on 127.0.0.1:2222 and :2223, and
writes their coordinates to /tmp/localslurm/env.sh. Tests read them from the
environment (nox exports them) or from that file.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ax_scheduler._clock import Clock

ENV_FILE = Path(os.environ.get("LOCALSLURM_ROOT", "/tmp/localslurm")) / "env.sh"
TESTS = Path(__file__).parent


def cluster_env() -> dict[str, str]:
    """LOCALSLURM_* and SLURM_CONF, from the environment or env.sh; fails with help."""
    env = {k: v for k, v in os.environ.items() if k.startswith("LOCALSLURM_") or k == "SLURM_CONF"}
    if "LOCALSLURM_SSH_PORT" not in env and ENV_FILE.exists():
        for line in ENV_FILE.read_text().splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value
    if "LOCALSLURM_SSH_PORT" not in env:
        pytest.fail(
            "no local Slurm cluster: run `bash ci/start-slurm.sh` as root first"
            " (the README's test command does), or deselect with -m 'not slurm'"
        )
    return env


def ssh_options(port_key: str = "LOCALSLURM_SSH_PORT", **overrides: Any) -> dict[str, Any]:
    """The ``ssh={...}`` of the local login node, host keys verified."""
    env = cluster_env()
    options: dict[str, Any] = {
        "host": env["LOCALSLURM_SSH_HOST"],
        "port": int(env[port_key]),
        "username": env["LOCALSLURM_SSH_USER"],
        "client_keys": [env["LOCALSLURM_SSH_KEY"]],
        "known_hosts": env["LOCALSLURM_SSH_KNOWN_HOSTS"],
    }
    options.update(overrides)
    return options


def job_config(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """A SlurmRunner config whose jobs run this venv's Python and import tests/*.py."""
    config: dict[str, Any] = {
        "python": sys.executable,
        "job_dir": str(tmp_path / "cluster jobs"),  # a space: paths must stay quoted
        "setup": [f"export PYTHONPATH={TESTS}"],
        "min_poll_interval": 0.5,
        "monitoring_interval": 2,
    }
    config.update(overrides)
    return config


def slurm(*argv: str) -> str:
    """Run a Slurm command here (same cluster, same SLURM_CONF) and return stdout."""
    env = {**os.environ, **cluster_env()}
    return subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stdout


def queue() -> list[str]:
    """Job ids still in the queue (pending, running or completing)."""
    return slurm("squeue", "-h", "-o", "%i").split()


def sacct_rows(job_id: str) -> list[list[str]]:
    out = slurm("sacct", "-n", "-P", "-X", "-j", job_id, "-o", "JobID,JobName,State,ExitCode")
    return [line.split("|") for line in out.splitlines() if line.strip()]


def sshd_sessions() -> list[int]:
    """PIDs of the sshd processes serving connections (children of the listener)."""
    listener = int((Path(cluster_env()["LOCALSLURM_ROOT"]) / "run" / "sshd.pid").read_text())
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(listener)], capture_output=True, text=True
    ).stdout
    return [int(pid) for pid in out.split()]


class PollCounter(Clock):
    """The real clock, counting the waits of the runner's status watcher."""

    def __init__(self) -> None:
        self.ticks: list[float] = []

    async def sleep(self, seconds: float) -> None:
        task = asyncio.current_task()
        if task is not None and task.get_name() == "ax-scheduler-sacct":
            self.ticks.append(seconds)
        await super().sleep(seconds)
