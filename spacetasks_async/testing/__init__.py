"""A local, Unpod-compatible server for tests and benchmarks.

``async with UnpodServer(seed=1, spaces=[100, 5000]) as server:`` serves seeded, realistic
spaces on an ephemeral 127.0.0.1 port, behaving like the real Unpod server (206 business
errors, default page size 50, ``page_size=0`` = everything, newest first), with knobs for
latency, faults, drift, hooks and request observation. ``python -m spacetasks_async.testing``
runs it standalone.
"""

from __future__ import annotations

from ._config import DriftPlan, Endpoint, FaultKind, FaultPlan, ServerConfig
from ._data import SpaceData, SpaceInfo
from ._server import Hook, RequestRecord, ServerStats, TaskRequest, UnpodServer

__all__ = [
    "DriftPlan",
    "Endpoint",
    "FaultKind",
    "FaultPlan",
    "Hook",
    "RequestRecord",
    "ServerConfig",
    "ServerStats",
    "SpaceData",
    "SpaceInfo",
    "TaskRequest",
    "UnpodServer",
]
