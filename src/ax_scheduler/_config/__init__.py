"""User-facing options, validated by pydantic with messages that name the key.

One module per group of options; every model turns pydantic's errors into a
:class:`~ax_scheduler.ConfigError` that names the argument, the key and the value.
"""

from ._base import describe_validation_error
from .objectives import ContainerOptions, ScriptOptions
from .scheduler import EarlyStoppingConfig, GlobalStoppingConfig, SchedulerConfig
from .slurm import MANAGED_SBATCH_OPTIONS, SlurmConfig
from .ssh import ENV_NAME, SSHConfig, SSHHost, SSHOptions

__all__ = [
    "ENV_NAME",
    "MANAGED_SBATCH_OPTIONS",
    "ContainerOptions",
    "EarlyStoppingConfig",
    "GlobalStoppingConfig",
    "SSHConfig",
    "SSHHost",
    "SSHOptions",
    "SchedulerConfig",
    "ScriptOptions",
    "SlurmConfig",
    "describe_validation_error",
]
