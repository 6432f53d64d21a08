"""Athena: a multi-process worker daemon that runs AI-agent jobs.

The job queue lives in SQLite (``athena.db``); conversations and checkpoints live as
plain files under ``.athena/``. Importing athenad configures nothing (logging is the
program's to set up) and loads only this file: each public name is imported on first
use, so command-line tools start quickly. Type checkers see every name with its type.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from athenad.api import TaskOrchestrator
    from athenad.errors import (
        ApprovalRejected,
        AthenaError,
        BudgetExceeded,
        ConfigError,
        DaemonError,
        DatabaseBusy,
        DatabaseUnusable,
        DiskFull,
        FinalFailure,
        InvalidInput,
        InvalidTransition,
        JobFailed,
        JobNotFound,
        ModelRefused,
        RateLimited,
        StaleFence,
        StepFailed,
        StepsChanged,
        UnknownParent,
        WaitTimeout,
        WriteFailed,
    )
    from athenad.model import Job, JobStatus
    from athenad.storage.checkpoints import CheckpointStore
    from athenad.storage.sessions import Role, SessionManager
    from athenad.store.sqlite.queue import ClaimedJob, JobQueue, JobSpec
    from workers.base_agent import BaseAgent
    from workers.context import JobContext

_EXPORTS = {
    "ApprovalRejected": "athenad.errors",
    "AthenaError": "athenad.errors",
    "BudgetExceeded": "athenad.errors",
    "ConfigError": "athenad.errors",
    "DaemonError": "athenad.errors",
    "DatabaseBusy": "athenad.errors",
    "DatabaseUnusable": "athenad.errors",
    "DiskFull": "athenad.errors",
    "FinalFailure": "athenad.errors",
    "InvalidInput": "athenad.errors",
    "InvalidTransition": "athenad.errors",
    "JobFailed": "athenad.errors",
    "JobNotFound": "athenad.errors",
    "ModelRefused": "athenad.errors",
    "RateLimited": "athenad.errors",
    "StaleFence": "athenad.errors",
    "StepFailed": "athenad.errors",
    "StepsChanged": "athenad.errors",
    "UnknownParent": "athenad.errors",
    "WaitTimeout": "athenad.errors",
    "WriteFailed": "athenad.errors",
    "ClaimedJob": "athenad.store.sqlite.queue",
    "JobQueue": "athenad.store.sqlite.queue",
    "JobSpec": "athenad.store.sqlite.queue",
    "Job": "athenad.model",
    "JobStatus": "athenad.model",
    "TaskOrchestrator": "athenad.api",
    "Role": "athenad.storage.sessions",
    "SessionManager": "athenad.storage.sessions",
    "CheckpointStore": "athenad.storage.checkpoints",
    "BaseAgent": "workers.base_agent",
    "JobContext": "workers.context",
}

# A literal list, as type checkers need it to know what `from athenad import *` gives.
__all__ = [
    "ApprovalRejected",
    "AthenaError",
    "BudgetExceeded",
    "BaseAgent",
    "CheckpointStore",
    "ClaimedJob",
    "ConfigError",
    "DaemonError",
    "DatabaseBusy",
    "DatabaseUnusable",
    "DiskFull",
    "FinalFailure",
    "InvalidInput",
    "InvalidTransition",
    "Job",
    "JobContext",
    "JobFailed",
    "JobNotFound",
    "JobQueue",
    "JobSpec",
    "JobStatus",
    "ModelRefused",
    "RateLimited",
    "Role",
    "SessionManager",
    "StaleFence",
    "StepFailed",
    "StepsChanged",
    "TaskOrchestrator",
    "UnknownParent",
    "WaitTimeout",
    "WriteFailed",
]

if not TYPE_CHECKING:  # hidden from type checkers, which would otherwise type any name as Any

    def __getattr__(name: str) -> Any:
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module 'athenad' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
