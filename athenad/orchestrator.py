"""The seed's TaskOrchestrator: the job queue, sessions and checkpoints together.

orchestrator = TaskOrchestrator(db_path="athena.db", session_dir=".athena")
job_ids = await orchestrator.run_parallel_tasks(tasks, then={...})
results = await orchestrator.wait_for_jobs(job_ids)

The async calls run their SQLite work on the orchestrator's own background thread
(with its own connection), so the event loop keeps running; the plain calls run on
the caller's thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from athenad.checkpoints import CheckpointStore
from athenad.jobs import JobQueue
from athenad.model import Job
from athenad.orchestrator_checkpoints import CheckpointsMixin
from athenad.orchestrator_sessions import SessionsMixin
from athenad.queue_thread import QueueThread
from athenad.sessions import SessionManager
from athenad.timefmt import parse_since
from athenad.waiting import run_parallel_tasks, wait_for_jobs


class TaskOrchestrator(SessionsMixin, CheckpointsMixin):
    """Jobs in SQLite (``db_path``), sessions and checkpoints as files (``session_dir``)."""

    def __init__(
        self,
        db_path: str | Path = "athena.db",
        session_dir: str | Path = ".athena",
        *,
        synchronous: str = "NORMAL",
    ) -> None:
        state_dir = Path(session_dir)
        if state_dir.name == "sessions":
            state_dir = state_dir.parent
        self.state_dir = state_dir
        run_dir = state_dir / "run"
        self.queue = JobQueue(db_path, synchronous=synchronous, run_dir=run_dir)
        self.queue_thread = QueueThread(
            lambda: JobQueue(db_path, synchronous=synchronous, run_dir=run_dir)
        )
        self.sessions = SessionManager(state_dir / "sessions")
        self.checkpoints = CheckpointStore(state_dir / "checkpoints")

    def close(self) -> None:
        """Close both connections (after async work already asked for has finished)."""
        self.queue_thread.close()
        self.queue.close()

    def __enter__(self) -> TaskOrchestrator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- jobs -------------------------------------------------------------------------

    def submit(self, task_type: str, payload: Any = None, **options: Any) -> str:
        """Submit one job; options are those of :meth:`JobQueue.submit`."""
        return self.queue.submit(task_type, payload, **options)

    async def run_parallel_tasks(
        self, tasks: Sequence[Mapping[str, Any]], then: Mapping[str, Any] | None = None
    ) -> list[str]:
        """Submit tasks to run in parallel; ``then`` runs after all of them (its id last)."""
        return await run_parallel_tasks(self.queue_thread, tasks, then)

    async def wait_for_jobs(
        self, job_ids: Sequence[str], timeout: float | None = None
    ) -> list[Any]:
        """Wait for every job; their results in order, or JobFailed naming the failures."""
        return await wait_for_jobs(self.queue_thread, job_ids, timeout)

    def get_job(self, job_id: str) -> dict[str, Any]:
        """Every column of one job as a dict (payload and result decoded, parents listed)."""
        return self.queue.get(job_id)

    def job(self, job_id: str) -> Job:
        """One job as a typed, read-only :class:`~athenad.model.Job`; JobNotFound if none."""
        return Job.from_row(self.queue.get(job_id))

    def cancel_job(self, job_id: str) -> str:
        return self.queue.cancel(job_id)

    def retry_job(self, job_id: str) -> str:
        return self.queue.retry(job_id)

    # ---- the seed's analytics ---------------------------------------------------------

    def agent_performance(self, since: str = "1d") -> list[dict[str, Any]]:
        """Which agents are slow: jobs, average, min and max duration per agent type."""
        return self.queue.named_rows("agent_performance", {"since": parse_since(since)})

    def recent_failures(self, limit: int = 10, since: str = "all") -> list[dict[str, Any]]:
        """The newest failed jobs, with their errors."""
        return self.queue.named_rows(
            "recent_failures", {"since": parse_since(since), "type": None, "limit": limit}
        )

    def counts_by_type_and_status(self, start: str, end: str) -> list[dict[str, Any]]:
        """Jobs by type and status created between two timestamps (inclusive)."""
        return self.queue.named_rows("counts_by_type_and_status", {"start": start, "end": end})
