"""Athena: a multi-process worker daemon that runs AI-agent jobs.

The job queue lives in SQLite (``athena.db``); conversations and checkpoints live as
plain files under ``.athena/``. The public names are imported on first use, so that
command-line tools importing one module stay quick to start.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "AthenaError": "athenad.errors",
    "InvalidInput": "athenad.errors",
    "JobFailed": "athenad.errors",
    "JobNotFound": "athenad.errors",
    "StaleFence": "athenad.errors",
    "UnknownParent": "athenad.errors",
    "WaitTimeout": "athenad.errors",
    "ClaimedJob": "athenad.jobs",
    "JobQueue": "athenad.jobs",
    "JobSpec": "athenad.jobs",
    "TaskOrchestrator": "athenad.orchestrator",
    "Role": "athenad.sessions",
    "SessionManager": "athenad.sessions",
    "CheckpointStore": "athenad.checkpoints",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'athenad' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
