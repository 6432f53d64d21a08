"""The jobs a worker holds besides the one it runs, while it drains short jobs.

A worker that meets a backlog of short jobs claims several in one transaction
(``queued``: claimed, not started, run in claim order) and records several
completions in one (``finished``: ran to completion, not yet committed), so a
commit is paid per batch, not per job. Bounds keep the guarantees: a batch grows only
while each job runs in under ``QUICK_JOB_S``; a finished job waits at most
``FLUSH_AFTER_S`` for its commit while the worker runs more; and once the job
running now outlasts a control tick, the control thread commits what waits and hands
the queued jobs back for other workers. A worker killed with finished jobs not yet
committed leaves them to be run again (each took under ``QUICK_JOB_S``), never twice
at once: they are still held under their fences until the rescue.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from athenad.store.jobspec import ClaimedJob, Finished

QUICK_JOB_S = 0.005  # a job this short lets the batch grow
FLUSH_AFTER_S = 0.005  # a finished job waits no longer than this for its commit


class HeldJobs:
    """Queued and finished jobs of one worker, shared with its control thread."""

    def __init__(self, max_batch: int) -> None:
        self.lock = threading.Lock()
        self.max_batch = max(1, max_batch)
        self.batch = 1  # jobs to claim at the next claim
        self.queued: deque[ClaimedJob] = deque()
        self.finished: list[tuple[ClaimedJob, Finished]] = []
        self.first_finished_at = 0.0

    def next_job(self) -> ClaimedJob | None:
        """The next queued job to run, if any."""
        with self.lock:
            return self.queued.popleft() if self.queued else None

    def add(self, jobs: list[ClaimedJob]) -> None:
        with self.lock:
            self.queued.extend(jobs)

    def ran(self, seconds: float) -> None:
        """A job ran for ``seconds``: a long one ends the batch (short ones keep it)."""
        if seconds >= QUICK_JOB_S:
            self.batch = 1

    def claimed(self, limit: int, count: int) -> None:
        """A claim of up to ``limit`` jobs took ``count``: a full one doubles the next
        (there is a backlog), a partial one sizes it to what was there."""
        if count >= limit:
            self.batch = min(limit * 2, self.max_batch)
        else:
            self.batch = max(count, 1)

    def defer(self, job: ClaimedJob, done: Finished, ran_s: float) -> bool:
        """Keep a finished job for a later commit if that is allowed now (a short job,
        another queued to run, room in the batch, the oldest not waiting too long);
        False when it must be committed now (it is then kept too, for the flush)."""
        now = time.monotonic()
        with self.lock:
            if not self.finished:
                self.first_finished_at = now
            self.finished.append((job, done))
            return (
                ran_s < QUICK_JOB_S
                and bool(self.queued)
                and len(self.finished) < self.batch
                and now - self.first_finished_at < FLUSH_AFTER_S
            )

    def overdue(self) -> bool:
        """Whether finished jobs wait too long for their commit to start another."""
        with self.lock:
            waiting = bool(self.finished)
            return waiting and time.monotonic() - self.first_finished_at >= FLUSH_AFTER_S

    def take_finished(self) -> list[tuple[ClaimedJob, Finished]]:
        with self.lock:
            finished, self.finished = self.finished, []
            return finished

    def restore_finished(self, finished: list[tuple[ClaimedJob, Finished]]) -> None:
        """Put back completions whose commit failed, ahead of any newer ones."""
        with self.lock:
            self.finished[:0] = finished

    def take_queued(self) -> list[ClaimedJob]:
        with self.lock:
            queued = list(self.queued)
            self.queued.clear()
            return queued

    def restore_queued(self, jobs: list[ClaimedJob]) -> None:
        with self.lock:
            self.queued.extendleft(reversed(jobs))
