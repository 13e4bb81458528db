"""Runners: where trials run. One module per backend."""

from ._base import Runner
from .local import JobLibRunner

__all__ = ["JobLibRunner", "Runner"]
