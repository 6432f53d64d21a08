"""The context an agent receives: its job, checkpoints, a logger, and control flags."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from athenad.errors import StaleFence
from workers.approval import Approval, answer_or_park, given_answer
from workers.interrupts import Cancelled, JobLost, ShuttingDown

if TYPE_CHECKING:
    from athenad.config import Config
    from athenad.paths import Home
    from athenad.storage.contract import CheckpointStore, SessionStore
    from athenad.store.jobspec import ClaimedJob
    from athenad.store.steps import StepStore
    from athenad.store.usage import UsageStore
    from workers.job_log import JobLogger, JobLogWriter
    from workers.steps import DurableSteps


class JobHost(Protocol):
    """What a context needs of the worker that runs its job (the worker process is one)."""

    home: Home
    pid: int
    stopping: bool
    keep_checkpoints: int

    @property
    def queue(self) -> Any: ...

    @property
    def control(self) -> Any: ...

    @property
    def checkpoints(self) -> CheckpointStore: ...

    @property
    def sessions(self) -> SessionStore: ...

    @property
    def job_log(self) -> JobLogWriter: ...

    @property
    def step_store(self) -> StepStore: ...

    @property
    def usage_store(self) -> UsageStore: ...

    @property
    def config(self) -> Config: ...

    def track_process_group(self, pgid: int) -> None: ...

    def untrack_process_group(self, pgid: int) -> None: ...


class JobContext:
    """What an agent sees of its job.

    ``job_id``, ``payload``, ``attempt``, ``checkpoint`` (the latest valid one or
    None, with ``.iteration``, ``.state`` and ``.messages``), ``save_checkpoint``,
    ``log`` (``ctx.log(message, level="info", **fields)`` adds a line to the job's log;
    it is also a structlog logger bound to the job), ``progress(fraction, message)``,
    ``cancelled`` (cancellation was asked for) and ``stopping`` (the worker is shutting
    down: save and return soon).
    """

    def __init__(self, job: ClaimedJob, worker: JobHost, checkpoint: Any = None) -> None:
        self.job_id = job.id
        self.type = job.type
        self.agent_type = job.agent_type
        self.payload = job.payload
        self.attempt = job.attempt
        self.session_id = job.session_id
        self.home = worker.home
        self.checkpoint = checkpoint
        self._log: JobLogger | None = None
        self._job = job
        self._worker = worker
        self._steps: DurableSteps | None = None

    @property
    def log(self) -> JobLogger:
        """The job's logger (made on first use: most agents never log). Its lines are
        stored with the job (``athenactl logs``) and go to the daemon's log too."""
        if self._log is None:
            from workers.job_log import JobLogger

            job = self._job
            bound = structlog.get_logger().bind(
                job_id=job.id,
                agent=job.agent_type,
                attempt=job.attempt,
                worker_pid=self._worker.pid,
            )
            self._log = JobLogger(self._worker.job_log, job, bound, {})
        return self._log

    def progress(self, fraction: float | None = None, message: str | None = None) -> None:
        """Report progress: ``fraction`` from 0 to 1 and/or a short message (a part left
        out keeps its last value). ``athenactl show`` and ``top`` display the latest.
        Each call is one short write: report a few times a second at most."""
        self._worker.job_log.progress(self._job, fraction, message)

    @property
    def config(self) -> Config:
        """The home's configuration (athena.toml) as this worker read it."""
        return self._worker.config

    @property
    def sessions(self) -> SessionStore:
        """The home's conversation sessions (files, or PostgreSQL tables)."""
        return self._worker.sessions

    @property
    def cancelled(self) -> bool:
        """True once cancellation of this job was asked for."""
        return self._worker.control.cancel_requested

    @property
    def stopping(self) -> bool:
        """True when the worker is shutting down; a checkpointing agent should save and stop."""
        return self._worker.stopping

    # ---- model usage ------------------------------------------------------------------

    def record_usage(
        self, model: str, tokens_in: int, tokens_out: int, cost_usd: float | None = None
    ) -> float:
        """Add a model call's tokens (and cost) to the job; returns the cost recorded.

        Without ``cost_usd`` the cost comes from ``[llm.prices."MODEL"]`` in athena.toml
        (0 for a model with no price there). Shown by ``athenactl show`` and ``stats``.
        """
        if cost_usd is None:
            cost_usd = self._worker.config.llm.cost(model, tokens_in, tokens_out) or 0.0
        self._worker.usage_store.record(self.job_id, model, tokens_in, tokens_out, cost_usd)
        return cost_usd

    def check_budget(self) -> None:
        """Raise :class:`~athenad.BudgetExceeded` when the job's ``--budget-usd`` or the
        home's ``[budgets] daily_usd`` is spent; call it before each paid call."""
        from athenad.store.usage import check_budget

        daily = self._worker.config.budgets.daily_usd
        check_budget(self._worker.usage_store, self.job_id, daily, time.time())

    # ---- durable steps ----------------------------------------------------------------

    @property
    def _durable(self) -> DurableSteps:
        if self._steps is None:
            from workers.steps import DurableSteps

            self._steps = DurableSteps(self._worker.step_store, self._job)
        return self._steps

    def step(
        self,
        name: str,
        fn: Callable[..., Any],
        *args: Any,
        retries: int = 0,
        retry_backoff: float = 1.0,
        **kwargs: Any,
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` as a durable step and return its result.

        The first time, the result (or the error) is recorded before this returns; when
        the job runs again after a crash, a sleep or a wait, the same call in the same
        order returns the recorded result (or raises the recorded error as
        :class:`~athenad.StepFailed`) without calling ``fn``. Steps are numbered in the
        order they are asked for, so a name may repeat in a loop. ``retries`` tries
        ``fn`` again that many times, after ``retry_backoff`` seconds doubling. For a
        coroutine function this returns an awaitable: ``await ctx.step("fetch", get)``.
        """
        from workers.steps import is_async

        if is_async(fn):
            return self._durable.run_async(name, fn, args, kwargs, retries, retry_backoff)
        return self._durable.run(name, fn, args, kwargs, retries, retry_backoff)

    def sleep(self, seconds: float) -> None:
        """Sleep durably: the job is parked as ``scheduled`` and its worker freed; it runs
        again after ``seconds`` (replaying its steps) and goes on after this call."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ValueError(f"sleep needs a number of seconds, not {seconds!r}.")
        self._durable.sleep_until(time.time() + seconds)

    def sleep_until(self, when: float | str | dt.datetime) -> None:
        """Sleep durably until ``when`` (Unix time, an aware datetime, or ISO 8601)."""
        from workers.steps import moment

        self._durable.sleep_until(moment(when))

    def wait_for_event(self, key: str, timeout: float | None = None) -> Any:
        """The payload of the next event ``key`` sent to this job (``athenactl send``),
        or None after ``timeout`` seconds. Until it comes the job is parked as
        ``waiting`` and holds no worker; an event sent earlier is already there."""
        return self._durable.wait_for_event(key, timeout)

    @property
    def approval(self) -> Approval | None:
        """The answer a person gave to this job's last request for approval, if any:
        ``.decision`` ('approved' or 'rejected'), ``.note``, ``.question``."""
        job = self._job
        return given_answer(job.approval_decision, job.approval_note, job.approval_question)

    def request_approval(
        self,
        question: str,
        data: Any = None,
        *,
        state: Any = None,
        timeout: float | None = None,
    ) -> Approval:
        """Ask a person before going on; returns their approval.

        The first time, the job checkpoints ``state`` (when given) and parks as
        ``awaiting_approval``: the agent stops here and its worker is freed. After
        ``athenactl approve``, the agent runs again from its start with its latest
        checkpoint, and the same call returns the approval at once. After ``reject``
        it raises :class:`~athenad.ApprovalRejected` (uncaught: the job fails with the
        note). ``timeout`` seconds (else the job's ``--approval-timeout``) without a
        decision count as a rejection.
        """
        answer = self.approval
        if (answer is None or answer.question != question) and state is not None:
            latest = self.checkpoint.iteration if self.checkpoint is not None else 0
            self.save_checkpoint(latest + 1, state)
        return answer_or_park(answer, question, data, timeout)

    def raise_if_cancelled(self) -> None:
        """Raise the matching interrupt when cancellation or shutdown was asked for."""
        if self.cancelled:
            raise Cancelled()
        if self.stopping:
            raise ShuttingDown()

    def save_checkpoint(self, iteration: int, state: Any = None, messages: Any = None) -> bool:
        """Save a checkpoint; returns False (with a warning) when the disk refused it.

        When this worker no longer holds the job (its lease lapsed and another worker
        took it), the checkpoint is discarded and :class:`JobLost` stops the agent: the
        new holder's work is never overwritten.
        """
        from athenad.storage.checkpoints import CheckpointWriteError

        store = self._worker.checkpoints
        try:
            store.save(self.job_id, iteration, state, messages)
        except CheckpointWriteError as exc:
            self.log.warning("checkpoint_write_failed", iteration=iteration, error=str(exc))
            return False
        try:
            self._worker.queue.record_checkpoint(self.job_id, self._job.fence, iteration)
        except StaleFence:
            store.discard(self.job_id, iteration)
            self.log.warning("checkpoint_refused_stale", iteration=iteration)
            raise JobLost("another worker holds the job now") from None
        store.prune(self.job_id, keep=self._worker.keep_checkpoints)
        self.log.debug("checkpoint_saved", iteration=iteration)
        return True

    # ---- child processes -------------------------------------------------------------

    def track_process_group(self, pgid: int) -> None:
        """Note a process group this job started, so it is killed if the worker dies."""
        self._worker.track_process_group(pgid)

    def untrack_process_group(self, pgid: int) -> None:
        self._worker.untrack_process_group(pgid)

    # ---- sessions (when the job was submitted with one) ---------------------------------

    def _sessions(self):
        if self.session_id is None:
            raise AttributeError("this job was not submitted with a session")
        return self._worker.sessions

    def session_messages(self) -> list[Any]:
        """The attached session's conversation so far."""
        return self._sessions().get_messages(self.session_id)

    def add_message(self, role: Any, content: str) -> Any:
        """Append a message to the attached session."""
        return self._sessions().add_message(self.session_id, role, content)
