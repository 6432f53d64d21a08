"""How often a claiming process moves due jobs to pending.

Scheduled jobs whose time came, waits past their deadline and approvals past theirs
become 'pending' by a claim's own statements. Running those on every claim would cost
each job three statements; a process runs them when it last did so half a second ago,
and always before it reports that nothing is ready. A due job therefore starts within
half a second even while every worker is busy, and at once on an idle worker (idle
workers wake at the earliest due time).
"""

from __future__ import annotations

import time

PROMOTE_EVERY_S = 0.5


class DueJobs:
    """When this process last promoted due jobs."""

    def __init__(self) -> None:
        self.promoted_at = float("-inf")

    def due(self) -> bool:
        return time.monotonic() - self.promoted_at >= PROMOTE_EVERY_S

    def promoted(self) -> None:
        self.promoted_at = time.monotonic()
