"""The one place that knows Ax's two client APIs.

``ax.service.ax_client.AxClient`` (legacy, the tutorial's) and ``ax.api.client.Client``
(modern) differ in how they generate, complete and serialize; everything else in
ax-scheduler talks to :class:`AxAdapter`. Adapter methods are blocking and must be
called from the scheduler's single Ax thread (see ``_axthread``), never from the loop.
"""

from .adapter import DATA_FREE_GENERATORS, AxAdapter, Generated
from .clients import LegacyAdapter, ModernAdapter
from .parameters import Parameters, validate_parameters
from .snapshot import client_from_snapshot

__all__ = [
    "DATA_FREE_GENERATORS",
    "AxAdapter",
    "Generated",
    "LegacyAdapter",
    "ModernAdapter",
    "Parameters",
    "client_from_snapshot",
    "validate_parameters",
]
