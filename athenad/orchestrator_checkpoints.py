"""The orchestrator's checkpoint calls (the seed's Example 2).

``TaskOrchestrator`` inherits :class:`CheckpointsMixin` and sets ``self.queue`` (a
:class:`~athenad.jobs.JobQueue`), ``self.queue_thread`` (a
:class:`~athenad.queue_thread.QueueThread`, where the async calls do their SQLite
work) and ``self.checkpoints`` (a :class:`~athenad.checkpoints.CheckpointStore`)::

    job_id = await orchestrator.create_task_with_checkpoints(
        task_type="plan", payload={"prompt": "..."}, checkpoint_interval=5
    )
    orchestrator.save_task_checkpoint(job_id, iteration, messages)
    checkpoint = await orchestrator.resume_task_from_checkpoint(job_id)
    agent.messages = checkpoint["messages"]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from athenad.checkpoints import ANY_ITERATION, DEFAULT_KEEP, CheckpointInfo
from athenad.errors import InvalidInput, InvalidTransition, JobNotFound, StaleFence

if TYPE_CHECKING:
    from athenad.checkpoints import CheckpointStore
    from athenad.jobs import JobQueue
    from athenad.queue_thread import QueueThread

INTERVAL_KEY = "checkpoint_interval"


class CheckpointsMixin:
    """Create checkpointed tasks, save their checkpoints, and resume them."""

    queue: JobQueue
    queue_thread: QueueThread
    checkpoints: CheckpointStore

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
        control = self.queue.job_control(job_id)
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
        return await self.queue_thread.run(lambda queue: self._latest_checkpoint(queue, job_id))

    def _latest_checkpoint(self, queue: JobQueue, job_id: str) -> dict[str, Any]:
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
