"""Runners: where trials run. One module per backend."""

from ._base import Runner
from .docker import DockerRunner
from .local import JobLibRunner
from .slurm import SlurmRunner
from .ssh import SSHRunner

__all__ = ["DockerRunner", "JobLibRunner", "Runner", "SSHRunner", "SlurmRunner"]
