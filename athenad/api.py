"""The seed's TaskOrchestrator: a job queue, a checkpoint store and a session store,
composed behind the seed's method names.

orchestrator = TaskOrchestrator(db_path="athena.db", session_dir=".athena")
job_ids = await orchestrator.run_parallel_tasks(tasks, then={...})
results = await orchestrator.wait_for_jobs(job_ids)
job_id = await orchestrator.create_task_with_checkpoints("plan", {...}, checkpoint_interval=5)
checkpoint = await orchestrator.resume_task_from_checkpoint(job_id)
session_id = orchestrator.create_conversation_session(name="PR #123 Review")

TaskOrchestrator(database_url="postgresql://...") keeps all of it on PostgreSQL.

The async calls run their database work on the orchestrator's own background thread
(with its own connection), so the event loop keeps running; the plain calls run on
the caller's thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from athenad.errors import InvalidInput, InvalidTransition, JobNotFound, StaleFence
from athenad.model import Job
from athenad.queue_thread import QueueThread
from athenad.storage import file_stores, postgres_stores
from athenad.storage.checkpoints import ANY_ITERATION, DEFAULT_KEEP, CheckpointInfo
from athenad.storage.contract import CheckpointStore, SessionStore
from athenad.storage.sessions import Message, Role, SessionInfo
from athenad.store.backend import open_postgres_queue
from athenad.store.contract import JobStore
from athenad.store.jobspec import check_int
from athenad.store.sqlite.queue import JobQueue
from athenad.store.waiting import parallel_batch, run_parallel_tasks, wait_for_jobs
from athenad.util.timefmt import parse_duration, parse_since

INTERVAL_KEY = "checkpoint_interval"


def _job_id(job_id: Any) -> str:
    """A job id as the queue can look it up; anything else names no job."""
    if isinstance(job_id, str) and len(job_id) <= 200:
        try:
            job_id.encode()
            return job_id
        except UnicodeEncodeError:
            pass
    raise JobNotFound(f"job {job_id!r} does not exist.")


def _parent_list(after: Any) -> list[Any]:
    """``after`` as a list of parents: one id, ids, or None for none."""
    if after is None:
        return []
    if isinstance(after, str):
        return [after]
    if isinstance(after, Mapping) or not isinstance(after, Iterable):
        raise InvalidInput(f"after {after!r} is not a list of job ids.")
    return list(after)


class TaskOrchestrator:
    """Jobs in SQLite (``db_path``), sessions and checkpoints as files (``session_dir``);
    or, with ``database_url`` (``postgresql://...``), all three in that database's
    ``database_schema``, shared with every daemon and host using it."""

    def __init__(
        self,
        db_path: str | Path = "athena.db",
        session_dir: str | Path = ".athena",
        *,
        synchronous: str = "NORMAL",
        database_url: str | None = None,
        database_schema: str = "athena",
    ) -> None:
        state_dir = Path(session_dir)
        if state_dir.name == "sessions":
            state_dir = state_dir.parent
        self.state_dir = state_dir
        run_dir = state_dir / "run"
        open_queue: Callable[[], JobStore]
        if database_url:
            url, schema = database_url, database_schema
            open_queue = partial(open_postgres_queue, url, schema)
            self.queue = open_queue()
            # The stores borrow the queue's pool: one pool for this thread's work.
            self.stores = postgres_stores(url, schema, pool=getattr(self.queue, "pool", None))
        else:
            open_queue = partial(JobQueue, db_path, synchronous=synchronous, run_dir=run_dir)
            self.queue = open_queue()
            self.stores = file_stores(state_dir)
        self.queue_thread = QueueThread(open_queue)
        self.sessions: SessionStore = self.stores.sessions
        self.checkpoints: CheckpointStore = self.stores.checkpoints

    def close(self) -> None:
        """Close both connections (after async work already asked for has finished)."""
        self.queue_thread.close()
        self.stores.close()
        self.queue.close()

    def __enter__(self) -> TaskOrchestrator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- jobs -------------------------------------------------------------------------

    def submit(self, task_type: str, payload: Any = None, **options: Any) -> str:
        """Submit one job; options are those of :meth:`JobQueue.submit`."""
        return self.queue.submit(task_type, payload, **options)

    def submit_job(
        self,
        task_type: str,
        payload: Any = None,
        *,
        queue: str = "default",
        priority: int | None = None,
        after: Sequence[str] = (),
        delay: float | str | None = None,
        run_at: str | None = None,
        unique_key: str | None = None,
        concurrency_key: str | None = None,
        approval_timeout: float | str | None = None,
        budget_usd: float | None = None,
        max_attempts: int = 1,
        timeout: float | None = None,
        session_id: str | None = None,
    ) -> str:
        """Submit one job and return its id (a live job's id when ``unique_key`` is held).

        ``delay`` is seconds or text like ``"5m"``; ``run_at`` an ISO 8601 moment. A
        job with either is ``scheduled`` until then.
        """
        delay_s = 0.0 if delay is None else parse_duration(delay, "delay")
        (outcome,) = self.queue.enqueue(
            [
                {
                    "type": task_type,
                    "payload": payload,
                    "queue": queue,
                    "priority": priority,
                    "after": _parent_list(after),
                    "delay_s": delay_s,
                    "run_at": run_at,
                    "unique_key": unique_key,
                    "concurrency_key": concurrency_key,
                    "approval_timeout_s": None
                    if approval_timeout is None
                    else parse_duration(approval_timeout, "approval_timeout"),
                    "budget_usd": budget_usd,
                    "max_attempts": max_attempts,
                    "timeout_s": timeout,
                    "session_id": session_id,
                }
            ]
        )
        return outcome.id

    def send(self, job_id: str, key: str, payload: Any = None) -> str:
        """Send event ``key`` to a job: one waiting for it (``ctx.wait_for_event``)
        resumes; otherwise the event is kept for its next wait. Returns 'delivered' or
        'kept'; unknown or finished jobs raise JobNotFound / InvalidTransition."""
        from athenad.store.steps import step_store

        return step_store(self.queue).send_event(_job_id(job_id), key, payload)

    def approve_job(self, job_id: str, note: str | None = None) -> str:
        """Approve a job awaiting approval; it resumes with ``ctx.approval`` set."""
        return self.queue.decide_approval(_job_id(job_id), True, note)

    def reject_job(self, job_id: str, note: str | None = None) -> str:
        """Reject a job awaiting approval; its agent decides (by default it fails)."""
        return self.queue.decide_approval(_job_id(job_id), False, note)

    def create_workflow(self, tasks: Sequence[Mapping[str, Any]]) -> list[str]:
        """Submit tasks in one transaction; a task's ``after`` may name earlier tasks by
        index. Each task takes the keywords of :meth:`submit_job` (``type`` for the
        task type, ``delay_s`` for a delay in seconds)."""
        return self.queue.submit_many(parallel_batch(tasks))

    async def run_parallel_tasks(
        self, tasks: Sequence[Mapping[str, Any]], then: Mapping[str, Any] | None = None
    ) -> list[str]:
        """Submit tasks to run in parallel; ``then`` runs after all of them (its id last)."""
        return await run_parallel_tasks(self.queue_thread, tasks, then)

    async def wait_for_jobs(
        self, job_ids: Sequence[str], timeout: float | None = None
    ) -> list[Any]:
        """Wait for every job; their results in order, or JobFailed naming the failures."""
        if isinstance(job_ids, str) or not isinstance(job_ids, Iterable):
            raise InvalidInput(f"job_ids {job_ids!r} is not a list of job ids.")
        ids = [_job_id(job_id) for job_id in job_ids]
        return await wait_for_jobs(self.queue_thread, ids, timeout)

    def get_job(self, job_id: str) -> dict[str, Any]:
        """Every column of one job as a dict (payload and result decoded, parents listed)."""
        return self.queue.get(_job_id(job_id))

    def job(self, job_id: str) -> Job:
        """One job as a typed, read-only :class:`~athenad.model.Job`; JobNotFound if none."""
        return Job.from_row(self.queue.get(_job_id(job_id)))

    def cancel_job(self, job_id: str) -> str:
        return self.queue.cancel(_job_id(job_id))

    def retry_job(self, job_id: str) -> str:
        return self.queue.retry(_job_id(job_id))

    # ---- the seed's analytics ---------------------------------------------------------

    def _named_rows(self, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        named_rows = getattr(self.queue, "named_rows", None)
        if named_rows is not None:  # SQLite
            rows: list[dict[str, Any]] = named_rows(name, params)
            return rows
        from athenad.analytics.postgres_reader import PostgresReader

        with self.queue.pool.connection() as conn:  # type: ignore[attr-defined]
            return PostgresReader(conn).rows(name, params)

    def agent_performance(self, since: str = "1d") -> list[dict[str, Any]]:
        """Which agents are slow: jobs, average, min and max duration per agent type."""
        return self._named_rows("agent_performance", {"since": parse_since(since)})

    def recent_failures(self, limit: int = 10, since: str = "all") -> list[dict[str, Any]]:
        """The newest failed jobs, with their errors."""
        check_int("limit", limit, 1)
        return self._named_rows(
            "recent_failures", {"since": parse_since(since), "type": None, "limit": limit}
        )

    def counts_by_type_and_status(self, start: str, end: str) -> list[dict[str, Any]]:
        """Jobs by type and status created between two timestamps (inclusive)."""
        return self._named_rows("counts_by_type_and_status", {"start": start, "end": end})

    # ---- checkpoints (the seed's Example 2) ---------------------------------------------

    async def create_task_with_checkpoints(
        self,
        task_type: str,
        payload: Any = None,
        checkpoint_interval: int = 5,
        **options: Any,
    ) -> str:
        """Submit a job whose agent checkpoints every ``checkpoint_interval`` iterations.

        The interval travels in the payload as ``"checkpoint_interval"`` (a ``None``
        payload becomes a dict holding only it); BaseAgent honours it. A payload that
        is not a dict is submitted unchanged and the agent's own interval applies.
        ``options`` are the queue's submit options (priority, after, session_id, ...).
        """
        if (
            isinstance(checkpoint_interval, bool)
            or not isinstance(checkpoint_interval, int)
            or checkpoint_interval < 1
        ):
            raise InvalidInput(
                f"checkpoint_interval {checkpoint_interval!r} must be an integer of at least 1."
            )
        if payload is None:
            payload = {}
        if isinstance(payload, dict):
            payload = {**payload, INTERVAL_KEY: checkpoint_interval}
        return await self.queue_thread.run(
            lambda queue: queue.submit(task_type, payload, **options)
        )

    def save_task_checkpoint(
        self, job_id: str, iteration: int, messages: Any, state: Any = None
    ) -> CheckpointInfo:
        """Write a checkpoint of a job; while it runs, record it on the job's row.

        For code that runs a job itself or holds it in a worker. A running job's row
        is updated under the fence read before the write, so a job reclaimed in
        between refuses it: the file is removed and StaleFence raised. Older
        checkpoints beyond the newest three are pruned.
        """
        control = self.queue.job_control(_job_id(job_id))
        if control is None:
            raise JobNotFound(f"job {job_id!r} does not exist.")
        fence, status, _cancel_asked = control
        if status == "completed":
            raise InvalidTransition(
                f"job {job_id} is completed; its final checkpoint is kept as it is."
            )
        info = self.checkpoints.save(job_id, iteration, state, messages)
        # A job no worker holds takes the iteration as it is, so a later resume trusts it.
        if status == "running" or not self.queue.record_checkpoint_unheld(job_id, iteration):
            try:
                self.queue.record_checkpoint(job_id, fence, iteration)
            except StaleFence:
                self.checkpoints.discard(job_id, iteration)
                raise
        self.checkpoints.prune(job_id, keep=DEFAULT_KEEP)
        return info

    async def resume_task_from_checkpoint(self, job_id: str) -> dict[str, Any]:
        """The job's latest valid checkpoint and its metadata from athena.db.

        Returns ``{"job_id", "iteration", "messages", "state", "created_at", "job"}``;
        iteration 0, no messages and no state when no valid checkpoint exists. When
        the row records a checkpoint iteration, newer files are strays and ignored;
        a job that never ran in a worker records none, and its newest file counts.
        """
        job_id = _job_id(job_id)
        return await self.queue_thread.run(lambda queue: self._latest_checkpoint(queue, job_id))

    def _latest_checkpoint(self, queue: JobStore, job_id: str) -> dict[str, Any]:
        job = queue.get(job_id)
        recorded = job.get("checkpoint_iteration")
        checkpoint = self.checkpoints.load_latest(
            job_id, at_most=ANY_ITERATION if recorded is None else recorded
        )
        if checkpoint is None:
            return {
                "job_id": job_id,
                "iteration": 0,
                "messages": [],
                "state": None,
                "created_at": None,
                "job": job,
            }
        return {
            "job_id": job_id,
            "iteration": checkpoint.iteration,
            "messages": checkpoint.messages,
            "state": checkpoint.state,
            "created_at": checkpoint.created_at,
            "job": job,
        }

    # ---- sessions ------------------------------------------------------------------------

    def create_conversation_session(
        self, name: str | None = None, tags: Iterable[str] = (), git_branch: str | None = None
    ) -> str:
        """Create a session (on the current git branch unless told) and return its id."""
        return self.sessions.create_session(name=name, tags=tags, git_branch=git_branch)

    def add_message_to_session(
        self,
        session_id: str,
        role: Role | str,
        content: str,
        metadata: dict[str, Any] | None = None,
    ) -> Message:
        """Append one message to a session; returns it with its sequence number."""
        return self.sessions.add_message(session_id, role, content, metadata)

    def get_conversation_history(self, session_id: str) -> list[Message]:
        """Every message of a session, in order."""
        return self.sessions.get_messages(session_id)

    def resume_most_recent_session(self, git_branch: str | None = None) -> str | None:
        """The id of the most recently active session (of one branch), or None."""
        return self.sessions.resume_most_recent_session(git_branch)

    def list_sessions(self, git_branch: str | None = None) -> list[SessionInfo]:
        """Sessions, most recently active first, optionally of one git branch."""
        return self.sessions.list_sessions(git_branch)
