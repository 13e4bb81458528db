"""ax-scheduler: run Ax optimization trials on real compute, asyncio-native.

Names are imported lazily: worker processes import ``ax_scheduler._worker`` and
must not pay for importing Ax and torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._batch import Batch as Batch
    from ._config import ContainerOptions as ContainerOptions
    from ._config import EarlyStoppingConfig as EarlyStoppingConfig
    from ._config import GlobalStoppingConfig as GlobalStoppingConfig
    from ._config import SchedulerConfig as SchedulerConfig
    from ._config import ScriptOptions as ScriptOptions
    from ._config import SlurmConfig as SlurmConfig
    from ._config import SSHConfig as SSHConfig
    from ._config import SSHHost as SSHHost
    from ._config import SSHOptions as SSHOptions
    from ._events import Event as Event
    from ._exceptions import AxSchedulerError as AxSchedulerError
    from ._exceptions import CheckpointError as CheckpointError
    from ._exceptions import CommandTimeout as CommandTimeout
    from ._exceptions import ConfigError as ConfigError
    from ._exceptions import EventLoopMismatchError as EventLoopMismatchError
    from ._exceptions import FailureRateExceededError as FailureRateExceededError
    from ._exceptions import InfrastructureError as InfrastructureError
    from ._exceptions import InvalidParametersError as InvalidParametersError
    from ._exceptions import ObjectiveError as ObjectiveError
    from ._exceptions import ObjectiveNotSetError as ObjectiveNotSetError
    from ._exceptions import OptimizationStalledError as OptimizationStalledError
    from ._exceptions import ResultError as ResultError
    from ._exceptions import RunnerError as RunnerError
    from ._exceptions import SchedulerClosedError as SchedulerClosedError
    from ._exceptions import SpecError as SpecError
    from ._exceptions import TrialError as TrialError
    from ._exceptions import TrialStoppedEarly as TrialStoppedEarly
    from ._exceptions import TrialTimeoutError as TrialTimeoutError
    from ._exceptions import UsageError as UsageError
    from ._exceptions import WorkerDiedError as WorkerDiedError
    from ._facade import AxScheduler as AxScheduler
    from ._facade import Progress as Progress
    from ._facade import RunSummary as RunSummary
    from ._jobs import ContainerObjective as ContainerObjective
    from ._jobs import FunctionObjective as FunctionObjective
    from ._jobs import Job as Job
    from ._jobs import ScriptObjective as ScriptObjective
    from ._reporting import report as report
    from .runners import DockerRunner as DockerRunner
    from .runners import JobLibRunner as JobLibRunner
    from .runners import Runner as Runner
    from .runners import SlurmRunner as SlurmRunner
    from .runners import SSHRunner as SSHRunner

_EXPORTS = {
    "AxScheduler": "._facade",
    "ContainerObjective": "._jobs",
    "ContainerOptions": "._config",
    "DockerRunner": ".runners",
    "EarlyStoppingConfig": "._config",
    "Event": "._events",
    "GlobalStoppingConfig": "._config",
    "AxSchedulerError": "._exceptions",
    "Batch": "._batch",
    "CheckpointError": "._exceptions",
    "CommandTimeout": "._exceptions",
    "ConfigError": "._exceptions",
    "EventLoopMismatchError": "._exceptions",
    "FailureRateExceededError": "._exceptions",
    "FunctionObjective": "._jobs",
    "InfrastructureError": "._exceptions",
    "InvalidParametersError": "._exceptions",
    "Job": "._jobs",
    "JobLibRunner": ".runners",
    "ObjectiveError": "._exceptions",
    "ObjectiveNotSetError": "._exceptions",
    "OptimizationStalledError": "._exceptions",
    "ResultError": "._exceptions",
    "Runner": ".runners",
    "RunnerError": "._exceptions",
    "report": "._reporting",
    "Progress": "._facade",
    "RunSummary": "._facade",
    "SchedulerClosedError": "._exceptions",
    "SchedulerConfig": "._config",
    "ScriptObjective": "._jobs",
    "ScriptOptions": "._config",
    "SlurmConfig": "._config",
    "SlurmRunner": ".runners",
    "SpecError": "._exceptions",
    "SSHConfig": "._config",
    "SSHHost": "._config",
    "SSHOptions": "._config",
    "SSHRunner": ".runners",
    "TrialError": "._exceptions",
    "TrialStoppedEarly": "._exceptions",
    "TrialTimeoutError": "._exceptions",
    "UsageError": "._exceptions",
    "WorkerDiedError": "._exceptions",
}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ax_scheduler' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
