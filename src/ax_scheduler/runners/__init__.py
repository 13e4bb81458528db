"""Runners: where trials run. One module per backend."""

from ._base import Runner
from .docker import DockerRunner
from .local import JobLibRunner
from .slurm import SlurmRunner

__all__ = ["DockerRunner", "JobLibRunner", "Runner", "SlurmRunner"]
