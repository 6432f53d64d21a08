"""The backend contract: every operation the queue needs, whatever the database.

The SQLite backend (``store/sqlite``) implements it today; every other backend must
give the same results for the same calls, which the conformance suite checks. The
semantics that must match exactly:

- statuses: ``scheduled`` (waiting for its time), ``blocked`` (waiting on parents),
  ``pending``, ``running``, ``awaiting_approval`` (parked until a person decides),
  ``waiting`` (parked until an event is sent to it, or its timeout),
  ``completed``, ``failed``, ``cancelled``;
- a claim hands out a *fence* that grows on every claim, and a *lease* that the holder
  renews; any write carrying an old fence changes nothing (StaleFence, or '' from
  ``rescue``), and any daemon may take back a job whose lease lapsed;
- attempts: a failure with attempts left goes back to ``pending`` after a backoff; an
  interruption (``rescue``) spends no attempt but counts toward the poison-pill cap,
  past which the job fails;
- a completion releases dependents in the same transaction; a final failure or a
  cancel cancels every unfinished descendant, naming the cause in ``cancelled_by``;
- ``retry`` brings a failed or cancelled job back, with the descendants it cancelled.

Rows are dicts of column name to value (``get``, ``list_jobs``, ``running_jobs``), with
the columns of the ``jobs`` table.

Daemons using the database record themselves (``record_daemon``) every few seconds, so
any of them can list the others (``daemons``); the lease, not this list, decides when a
job is taken back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, Self

from athenad.store.jobspec import BatchReport, ClaimedJob, Finished, JobSpec, Submitted

if TYPE_CHECKING:
    from athenad.store.queues import QueueLimits

STATUSES = (
    "scheduled",
    "blocked",
    "pending",
    "running",
    "awaiting_approval",
    "waiting",
    "completed",
    "failed",
    "cancelled",
)
# Statuses of jobs that have not ended (a unique key is held while a job is in one).
UNFINISHED = ("scheduled", "blocked", "pending", "running", "awaiting_approval", "waiting")
# A daemon unseen this long died without a clean stop; its record is dropped.
FORGET_DAEMONS_AFTER_S = 86400.0

# (status, result, error, cancelled_by) of each job, by id.
States = dict[str, tuple[str, Any, str | None, str | None]]


class JobStore(Protocol):
    """A job queue on one database, for one process and thread."""

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...

    # ---- submitting -------------------------------------------------------------------

    def submit(self, type: str, payload: Any = None, **options: Any) -> str:
        """Submit one job (options are JobSpec fields); returns its id."""
        ...

    def submit_many(self, tasks: Iterable[JobSpec | Mapping[str, Any]]) -> list[str]:
        """Submit jobs in one transaction; ``after`` may name earlier ones by index."""
        ...

    def enqueue(self, tasks: Iterable[JobSpec | Mapping[str, Any]]) -> list[Submitted]:
        """Like submit_many; a job whose unique key a live job holds is that job."""
        ...

    # ---- the worker's side ------------------------------------------------------------

    def claim(
        self,
        worker_id: str,
        worker_pid: int | None = None,
        *,
        lease_s: float = ...,
        key_limit: int = ...,
    ) -> ClaimedJob | None:
        """Take the next ready job (priority, then age) of an open queue, or None."""
        ...

    def complete(self, job_id: str, fence: int, result: Any = None) -> list[str]:
        """Store the result and release dependents; returns the ids made ready."""
        ...

    def complete_and_claim(
        self,
        job_id: str,
        fence: int,
        result: Any,
        worker_id: str,
        worker_pid: int | None = None,
        *,
        lease_s: float = ...,
        key_limit: int = ...,
    ) -> tuple[list[str], ClaimedJob | None]:
        """Complete a job and claim the next in one transaction."""
        ...

    def claim_batch(
        self,
        worker_id: str,
        worker_pid: int | None = None,
        *,
        limit: int,
        lease_s: float = ...,
        key_limit: int = ...,
    ) -> list[ClaimedJob]:
        """Take up to ``limit`` ready jobs in claim order; jobs of limited queues and
        jobs with a concurrency key one at a time (the batch stops before them)."""
        ...

    def complete_batch(
        self,
        done: Sequence[Finished],
        worker_id: str,
        worker_pid: int | None = None,
        *,
        claim: int = ...,
        lease_s: float = ...,
        key_limit: int = ...,
    ) -> BatchReport:
        """Complete jobs (results encoded) and claim up to ``claim`` more, in one
        transaction; completions whose fence no longer holds are reported, not raised."""
        ...

    def hand_back(self, jobs: Sequence[tuple[str, int]]) -> int:
        """Give back claimed jobs (id, fence) that never started, as if never claimed."""
        ...

    def fail(
        self,
        job_id: str,
        fence: int,
        error: str,
        traceback: str | None = None,
        *,
        retryable: bool = True,
    ) -> str:
        """A failed attempt: 'pending' (retried after a backoff) or 'failed'."""
        ...

    def finish_cancelled(
        self, job_id: str, fence: int, reason: str = "cancelled by request"
    ) -> None: ...

    def renew_lease(
        self, job_id: str, fence: int, *, lease_s: float = ..., timeout_s: float = ...
    ) -> bool:
        """Extend the lease; returns whether cancellation was asked for."""
        ...

    def job_control(self, job_id: str) -> tuple[int, str, bool] | None:
        """(fence, status, cancel asked) of a job, without taking a write lock."""
        ...

    def record_checkpoint(self, job_id: str, fence: int, iteration: int) -> None: ...

    def record_checkpoint_unheld(self, job_id: str, iteration: int) -> bool: ...

    def record_resume(
        self, job_id: str, fence: int, resumed_from: int, note: str | None
    ) -> None: ...

    # ---- the user's side --------------------------------------------------------------

    def cancel(self, job_id: str) -> str:
        """'cancelled' for a waiting job, 'cancelling' for a running one (asked)."""
        ...

    def retry(self, job_id: str) -> str:
        """A failed or cancelled job waits again: 'pending' or 'blocked'."""
        ...

    # ---- the supervisor's side --------------------------------------------------------

    def running_jobs(self) -> list[dict[str, Any]]: ...

    def rescue(
        self,
        job_id: str,
        fence: int,
        *,
        reason: str,
        count_interruption: bool = True,
        ran_until: str | None = None,
    ) -> str:
        """Requeue a running job whose worker is gone; '' when the fence moved."""
        ...

    def expire_timed_out(self, job_id: str, fence: int, timeout_s: float) -> str: ...

    # ---- daemons ----------------------------------------------------------------------

    def record_daemon(self, host: str, pid: int, workers: int) -> None:
        """A daemon's heartbeat: daemon ``pid`` on ``host`` is alive with ``workers``
        workers. The first one sets ``started_at``; records unseen for
        FORGET_DAEMONS_AFTER_S are dropped."""
        ...

    def forget_daemon(self, host: str, pid: int) -> None:
        """Drop a daemon's record: it stopped cleanly."""
        ...

    def daemons(self, seen_within_s: float) -> list[dict[str, Any]]:
        """Daemons seen in the last ``seen_within_s`` seconds, by host then pid: dicts of
        ``host``, ``pid``, ``workers``, ``started_at``, ``last_seen`` (UTC text)."""
        ...

    # ---- reading ----------------------------------------------------------------------

    def get(self, job_id: str) -> dict[str, Any]: ...

    def list_jobs(
        self, *, status: str | None = None, type: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]: ...

    def counts(self) -> dict[str, int]: ...

    # ---- flow control -----------------------------------------------------------------

    def rate_limited(self, job_id: str, fence: int, retry_after_s: float, reason: str) -> str:
        """Requeue without spending the attempt and hold the job's queue; its name."""
        ...

    def next_start(self) -> float | None:
        """Unix time of the earliest scheduled job, if any."""
        ...

    def park_for_approval(
        self,
        job_id: str,
        fence: int,
        question: str,
        data: Any = None,
        timeout_s: float | None = None,
    ) -> None:
        """Wait for a person as 'awaiting_approval', holding no worker and no attempt."""
        ...

    def decide_approval(self, job_id: str, approved: bool, note: str | None = None) -> str:
        """Send a job awaiting approval back to a worker with the decision."""
        ...

    def pause_queue(self, queue: str, paused: bool = True) -> None: ...

    def set_queue_limits(self, queue: str, limits: QueueLimits) -> None: ...

    def queues(self) -> list[dict[str, Any]]:
        """Each queue's state, limits and counts of unfinished jobs."""
        ...

    def states(self, job_ids: Sequence[str]) -> States: ...
