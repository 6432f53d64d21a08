"""Athena: a multi-process worker daemon that runs AI-agent jobs.

The job queue lives in SQLite (``athena.db``); conversations and checkpoints live as
plain files under ``.athena/``.
"""

from athenad.errors import (
    AthenaError,
    InvalidInput,
    JobFailed,
    JobNotFound,
    StaleFence,
    UnknownParent,
    WaitTimeout,
)
from athenad.jobs import ClaimedJob, JobQueue, JobSpec

__all__ = [
    "AthenaError",
    "ClaimedJob",
    "InvalidInput",
    "JobFailed",
    "JobNotFound",
    "JobQueue",
    "JobSpec",
    "StaleFence",
    "UnknownParent",
    "WaitTimeout",
]
__version__ = "0.1.0"

from athenad.orchestrator import TaskOrchestrator  # noqa: E402
from athenad.sessions import Role, SessionManager  # noqa: E402

__all__ += ["Role", "SessionManager", "TaskOrchestrator"]
