"""Interruptions raised inside a running agent.

They subclass BaseException so an agent's ``except Exception`` cannot swallow them.
"""

from __future__ import annotations


class WorkerInterrupt(BaseException):
    """The agent was interrupted."""


class Cancelled(WorkerInterrupt):
    """The job's cancellation was asked for."""


class ShuttingDown(WorkerInterrupt):
    """The worker is stopping; the job goes back to the queue to resume elsewhere."""


class JobTimedOut(WorkerInterrupt):
    """The job ran past its timeout."""

    def __init__(self, seconds: float | None = None) -> None:
        super().__init__(seconds)
        self.seconds = seconds


class JobLost(WorkerInterrupt):
    """This worker no longer holds the job: its lease lapsed or another worker took it.

    Whatever the agent would still write is refused by the job's fence, so it stops.
    """

    def __init__(self, reason: str = "the job was taken back") -> None:
        super().__init__(reason)
        self.reason = reason
