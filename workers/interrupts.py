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
