"""Typed views of the queue's rows: :class:`JobStatus` and :class:`Job`."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import msgspec


class JobStatus(StrEnum):
    """Where a job is in its life; each compares equal to its name in athena.db."""

    SCHEDULED = "scheduled"  # waiting for its time (a delay, --at, a durable sleep)
    BLOCKED = "blocked"  # waiting for its parents
    PENDING = "pending"  # ready for a worker
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"  # parked until a person approves or rejects
    WAITING = "waiting"  # parked until an event is sent to it (ctx.wait_for_event)
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True for the statuses a job never leaves on its own."""
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """One job as :meth:`TaskOrchestrator.job` returns it.

    Timestamps are UTC text in SQLite's format (``YYYY-MM-DD HH:MM:SS.fff``), as in
    athena.db; ``payload`` and ``result`` are decoded JSON.
    """

    id: str
    type: str
    agent_type: str
    status: JobStatus
    priority: int
    payload: Any
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    parents: tuple[str, ...] = ()
    attempts: int
    max_attempts: int
    interruptions: int = 0
    created_at: str
    started_at: str | None = None
    completed_at: str | None = None
    duration_ms: int | None = None
    timeout_s: float | None = None
    session_id: str | None = None
    cancelled_by: str | None = None
    worker_pid: int | None = None
    checkpoint_iteration: int | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Job:
        """A Job from a row of ``get_job``; columns it does not name are left out."""
        return msgspec.convert(row, cls)
