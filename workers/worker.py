"""The worker process: claim -> run agent -> complete/fail -> next.

A worker holds no transaction while an agent runs. A control thread watches the
running job (cancellation, lease, ownership) and the supervisor (a worker whose
supervisor is gone stops within a few seconds). Interrupts reach the agent as
BaseException subclasses raised from a signal handler in the main thread, and only
while the agent is running.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import sys
import threading
import time
import traceback
from typing import Any

import msgspec
import psutil
import structlog

from athenad.config import Config, apply_overrides, load_config
from athenad.daemon.identity import make_worker_id
from athenad.daemon.status import (
    WorkerHeartbeat,
    child_groups_path,
    current_job_path,
    heartbeat_path,
)
from athenad.errors import (
    ApprovalRejected,
    AthenaError,
    BudgetExceeded,
    DatabaseBusy,
    FinalFailure,
    InvalidInput,
    RateLimited,
    StaleFence,
    StepsChanged,
)
from athenad.paths import Home
from athenad.storage import open_stores
from athenad.storage.contract import CheckpointStore, SessionStore
from athenad.store.backend import POSTGRES, backend_of, open_store
from athenad.store.contract import JobStore
from athenad.store.jobspec import ClaimedJob, Finished, encode_json, timed_out_message
from athenad.store.steps import StepStore
from athenad.store.usage import UsageStore
from athenad.util.fsutil import atomic_write
from athenad.util.redact import Redactor
from athenad.util.timefmt import utc_now_text
from athenad.util.wake import (
    advertise_idle,
    bind_wake_socket,
    drain,
    idle_entry,
    withdraw_idle,
)
from workers.approval import AwaitingApproval
from workers.context import JobContext
from workers.held import HeldJobs
from workers.interrupts import (
    Cancelled,
    JobLost,
    JobTimedOut,
    ShuttingDown,
    WorkerInterrupt,
)
from workers.job_log import JobLogWriter
from workers.registry import AgentLoadError, AgentRegistry, run_agent
from workers.steps import ParkForEvent, ParkUntil

EXIT_OK = 0
EXIT_BOOT_ERROR = 3
EXIT_RECYCLE = 4  # done its share of jobs or memory: the supervisor starts a fresh one
IDLE_WAIT_S = 1.0
SCHEDULE_SLACK_S = 0.005  # wake just after a scheduled job's time, not just before
CONTROL_TICK_S = 0.2
ORPHAN_GRACE_S = 2.0
RENEW_EVERY_S = 5.0
CONTROL_BUSY_MS = 200

log = structlog.get_logger()


def connection_lost(exc: BaseException) -> bool:
    """Whether the error is the database connection failing (PostgreSQL's
    OperationalError: a terminated session, a restart), not the agent's own."""
    psycopg = sys.modules.get("psycopg")  # loaded only on PostgreSQL homes
    return psycopg is not None and isinstance(exc, psycopg.OperationalError)


def _rate_limit_reason(exc: RateLimited) -> str:
    """What ``show`` says of a job waiting out a provider's limit."""
    until = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + exc.retry_after))
    return f"{exc.message} (until {until} UTC)"


def renewal_interval(lease_s: float) -> float:
    """How often a held lease is renewed: three tries fit in one lease."""
    return min(lease_s / 3, RENEW_EVERY_S)


class JobControl:
    """Shared between the main thread and the control thread for the current job."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.job: ClaimedJob | None = None
        self.started = 0.0
        self.cancel_requested = False
        self.cancel_seen_at = 0.0
        self.lost = False
        self.lease_ends = 0.0  # by time.monotonic(): when our claim lapses unless renewed
        self.next_renewal = 0.0

    def begin(self, job: ClaimedJob, lease_s: float) -> None:
        with self.lock:
            self.cancel_requested = False
            self.cancel_seen_at = 0.0
            self.lost = False
            self.started = time.monotonic()
            self.lease_ends = (job.lease_started or self.started) + lease_s
            self.next_renewal = self.started + renewal_interval(lease_s)
            self.job = job

    def end(self) -> None:
        with self.lock:
            self.job = None


class Worker:
    """One worker process. ``run()`` returns the process exit code."""

    def __init__(
        self, home: Home, config: Config, *, index: int = 0, supervisor_pid: int | None = None
    ) -> None:
        self.home = home
        self.config = config
        self.index = index
        self.pid = os.getpid()
        # The supervisor's pid as it told us: getppid() now could already be init's,
        # if the supervisor died while this process was still importing.
        self.parent_pid = supervisor_pid or os.getppid()
        self.worker_id = make_worker_id(self.pid, index, config.daemon.host)
        self.started_at = utc_now_text()
        self.stopping = False
        self.jobs_done = 0
        self.keep_checkpoints = 3
        self.control = JobControl()
        # The job whose agent runs now and may be interrupted; cleared (first) when the
        # agent returns, and by the one interrupt a run can receive.
        self.running: ClaimedJob | None = None
        self.timeout_for: ClaimedJob | None = None  # the job the armed SIGALRM belongs to
        self.pending_interrupt: tuple[ClaimedJob, WorkerInterrupt] | None = None
        self._checkpoints: CheckpointStore | None = None
        self._sessions: SessionStore | None = None
        self._job_log: JobLogWriter | None = None
        self._step_store: StepStore | None = None
        self._usage_store: UsageStore | None = None
        self._heartbeat_written: tuple | None = None
        self.child_groups: set[int] = set()
        self._main_thread = threading.get_ident()  # made in the main thread
        self.orphaned_at = 0.0
        self.idle_wait_s = IDLE_WAIT_S
        self.held = HeldJobs(config.daemon.claim_batch)
        self.redactor = Redactor()  # secrets of the environment never stored in errors
        self.prune_after: list[str] = []  # completed jobs whose checkpoints go
        self.lost_reports: list[ClaimedJob] = []  # completions refused by the fence
        self.current_fd = -1

    # ---- boot -------------------------------------------------------------------------

    def boot(self) -> None:
        if os.getppid() != self.parent_pid:
            raise AthenaError(f"the supervisor (pid {self.parent_pid}) is gone.")
        daemon = self.config.daemon
        self.queue = open_store(self.home, daemon, synchronous=daemon.synchronous, fast_writes=True)
        # Short lock waits: the control thread must not sit out a lease on one statement.
        self.control_queue = open_store(self.home, daemon, busy_timeout_ms=CONTROL_BUSY_MS)
        # How long an idle worker sleeps without a wake-up: on PostgreSQL, the bound on
        # the delay a lost notification causes (poll_interval); locally, a second.
        self.idle_wait_s = daemon.poll_interval if backend_of(daemon) == POSTGRES else IDLE_WAIT_S
        self.registry = AgentRegistry(self.home, self.config)
        # The home's own agents are imported now: a typo there is a boot error with a
        # reason, not a failure of every job later.
        self.registry.preload(self.config.agents)
        self.wake_name = f"worker-{self.pid}"
        self.wake_socket = bind_wake_socket(self.home.run_dir, self.wake_name)
        self.idle_path = idle_entry(self.home.run_dir, self.wake_name)
        self.advertised = False  # an idle entry of ours may exist (a waker may take it)
        self.current_fd = os.open(
            current_job_path(self.home, self.pid), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600
        )
        self.signal_r, self.signal_w = os.pipe()
        os.set_blocking(self.signal_r, False)
        os.set_blocking(self.signal_w, False)
        signal.set_wakeup_fd(self.signal_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor owns Ctrl-C
        signal.signal(signal.SIGALRM, self._on_alarm)
        signal.signal(signal.SIGUSR1, self._on_interrupt)
        self.process = psutil.Process(self.pid)
        self.write_heartbeat(force=True)
        threading.Thread(target=self._control_loop, name="job-control", daemon=True).start()
        log.info("worker_started", pid=self.pid, worker_id=self.worker_id)

    def _open_stores(self) -> None:
        # Files in the home, or tables on the queue's own PostgreSQL pool.
        stores = open_stores(self.home, self.config.daemon, queue=self.queue)
        self._checkpoints, self._sessions = stores.checkpoints, stores.sessions

    @property
    def checkpoints(self) -> CheckpointStore:
        if self._checkpoints is None:
            self._open_stores()
        assert self._checkpoints is not None
        return self._checkpoints

    @property
    def sessions(self) -> SessionStore:
        if self._sessions is None:
            self._open_stores()
        assert self._sessions is not None
        return self._sessions

    @property
    def usage_store(self) -> UsageStore:
        """Tokens and cost of jobs, on the queue's connection."""
        if self._usage_store is None:
            from athenad.store.usage import usage_store

            self._usage_store = usage_store(self.queue)
        return self._usage_store

    @property
    def step_store(self) -> StepStore:
        """Recorded steps, sleeps and events of jobs, on the queue's connection."""
        if self._step_store is None:
            from athenad.store.steps import step_store

            self._step_store = step_store(self.queue)
        return self._step_store

    @property
    def job_log(self) -> JobLogWriter:
        """Each job's log lines and progress, on the worker's own connections."""
        if self._job_log is None:
            control = getattr(self, "control_queue", None)
            self._job_log = JobLogWriter.open(self.queue, control, self.config.daemon, self.pid)
        return self._job_log

    # ---- signals (handlers only set flags or raise into the running agent) ------------

    def _on_term(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _on_alarm(self, signum: int, frame: Any) -> None:
        job = self.running
        # An alarm armed for an earlier job (delivered late) is dropped, never raised here.
        if job is not None and job is self.timeout_for:
            self.running = None
            raise JobTimedOut(job.timeout_s)

    def _on_interrupt(self, signum: int, frame: Any) -> None:
        pending, self.pending_interrupt = self.pending_interrupt, None
        if pending is None:
            return
        job, interrupt = pending
        # Only the job it was meant for: the agent may have finished and the next begun.
        if job is self.running:
            self.running = None
            raise interrupt

    def interrupt_agent(self, interrupt: WorkerInterrupt, job: ClaimedJob | None = None) -> None:
        """Called from the control thread: raise ``interrupt`` in the running agent.

        The interrupt reaches ``job`` only (default: the job running now), never one
        claimed after it.
        """
        target = job or self.running
        if target is None:
            return
        self.pending_interrupt = (target, interrupt)
        signal.pthread_kill(self._main_thread, signal.SIGUSR1)

    def arm(self, job: ClaimedJob) -> None:
        """Let interrupts reach ``job``'s agent, and start its timeout."""
        self.running = job
        if job.timeout_s:
            self.timeout_for = job
            signal.setitimer(signal.ITIMER_REAL, job.timeout_s)

    def disarm(self) -> None:
        """No interrupt reaches the worker after this; the timer is stopped."""
        self.running = None
        self.timeout_for = None
        signal.setitimer(signal.ITIMER_REAL, 0)

    # ---- the loop ---------------------------------------------------------------------

    def run(self) -> int:
        max_jobs = self.config.daemon.max_jobs_per_worker
        memory_limit = self.config.daemon.memory_limit()
        exit_code = EXIT_OK
        while not self.stopping:
            job = self.held.next_job()
            if job is None:
                try:
                    job = self.claim(self.held.batch)
                except DatabaseBusy as exc:
                    log.warning("database_busy", error=exc.message)
                    continue
                if job is None:
                    if not self.advertised or not os.path.lexists(self.idle_path):
                        # Say we are idle, then look once more before sleeping: a job
                        # committed after that look finds the entry and wakes us.
                        self.advertise()
                        continue
                    self.idle_wait()
                    continue
            elif self.held.overdue():
                self.flush_until_stored(claim=0)
            if self.advertised:
                self.withdraw()
            self.mark_current(job)
            started = time.monotonic()
            outcome = self.execute(job)
            ran_s = time.monotonic() - started
            self.end_job_children()
            self.jobs_done += 1
            self.held.ran(ran_s)
            recycle = (max_jobs and self.jobs_done >= max_jobs) or (
                memory_limit and self.process.memory_info().rss > memory_limit
            )
            claim_next = not (recycle or self.stopping)
            self.report_until_stored(job, outcome, claim_next=claim_next, ran_s=ran_s)
            if claim_next and outcome[0] == "ok" and not self.held.queued:
                # Nothing was ready at the claim that came with the completion: say we
                # are idle now, so the loop's next claim is the last look before sleeping.
                self.advertise()
            if recycle:
                log.info("worker_recycling", jobs_done=self.jobs_done)
                exit_code = EXIT_RECYCLE
                break
        self.flush_until_stored(claim=0)
        try:  # claimed but not started: handed back untouched
            self.hand_back_queued(self.queue)
        except AthenaError as exc:  # the supervisor takes them back when we are gone
            log.warning("held_jobs_release_failed", error=exc.message)
        self.shutdown()
        return exit_code

    def claim(self, limit: int) -> ClaimedJob | None:
        """Claim up to ``limit`` jobs (committing finished ones with them); the first
        is returned to run now, the others are queued behind it."""
        claimed = self.flush(self.queue, claim=limit)
        if not claimed:
            return None
        self.held.add(claimed[1:])
        return claimed[0]

    def finish(
        self, job: ClaimedJob, result: Any, ran_s: float, *, claim_next: bool
    ) -> tuple[str, Any]:
        """A job ran to completion: keep it for the next commit, or commit now (and
        claim the next jobs with it). Returns the outcome left to report: ("ok", None)
        when handled here, a failure when the result cannot be stored."""
        try:
            encoded = encode_json(result, f"the result of job {job.id}")
        except InvalidInput as exc:  # the result cannot be stored as JSON
            return "unstorable", exc.message
        self.job_log.finish(job, "ok", result)  # first: a reader seeing the end has the line
        if self.held.defer(job, Finished(job.id, job.fence, encoded), ran_s):
            return "ok", None
        claim = self.held.batch if claim_next and not self.held.queued else 0
        self.flush_until_stored(claim=claim)
        return "ok", None

    def flush_until_stored(self, *, claim: int) -> None:
        """Commit the finished jobs, claiming up to ``claim`` more with them (queued to
        run next), waiting out a database that stays locked: work is never dropped."""
        if claim == 0 and not self.held.finished:
            return
        while True:
            try:
                self.held.add(self.flush(self.queue, claim=claim))
                return
            except DatabaseBusy as exc:
                log.warning("database_busy", error=exc.message)

    def flush(self, queue: JobStore, *, claim: int) -> list[ClaimedJob]:
        """One transaction on ``queue``: commit the finished jobs, claim up to ``claim``."""
        finished = self.held.take_finished()
        try:
            report = queue.complete_batch(
                [done for _job, done in finished],
                self.worker_id,
                self.pid,
                claim=claim,
                lease_s=self.config.daemon.lease,
                key_limit=self.config.limits.key_concurrency,
            )
        except BaseException:
            self.held.restore_finished(finished)
            raise
        stale = set(report.stale)
        completed = []
        for job, _done in finished:
            if job.id in stale:
                log.warning("job_lost", job_id=job.id, outcome="ok")
                self.lost_reports.append(job)
                continue
            completed.append(job.id)
            if job.checkpoint_iteration is not None or self._checkpoints is not None:
                self.prune_after.append(job.id)
        if len(completed) == 1:
            log.info("job_completed", job_id=completed[0])
        elif completed:  # one line per commit, not per job
            log.info("jobs_completed", job_ids=completed, count=len(completed))
        if claim:
            self.held.claimed(claim, len(report.claimed))
        if threading.get_ident() == self._main_thread:
            self.settle_reports()
        return report.claimed

    def settle_reports(self) -> None:
        """What a commit left to do in the main thread: checkpoints of completed jobs
        pruned, jobs found lost noted in their logs."""
        while self.prune_after:
            self.checkpoints.prune(self.prune_after.pop(), keep=1)
        while self.lost_reports:
            self.job_log.lost(self.lost_reports.pop())

    def hand_back_queued(self, queue: JobStore) -> None:
        """Give the queued (never started) jobs back for any worker to run."""
        queued = self.held.take_queued()
        if not queued:
            return
        try:
            returned = queue.hand_back([(job.id, job.fence) for job in queued])
        except BaseException:
            self.held.restore_queued(queued)
            raise
        log.info("jobs_handed_back", count=len(queued), returned=returned)

    def mark_current(self, job: ClaimedJob) -> None:
        """Say which held job runs now, where the supervisor looks if this worker dies:
        only that job counts the interruption (queued ones never started)."""
        with contextlib.suppress(OSError):
            os.pwrite(self.current_fd, f"{job.id}\n".encode(), 0)

    def advertise(self) -> None:
        advertise_idle(self.home.run_dir, self.wake_name)
        self.advertised = True

    def withdraw(self) -> None:
        withdraw_idle(self.home.run_dir, self.wake_name)
        self.advertised = False

    def idle_wait(self) -> None:
        """Sleep until a wake-up byte, a signal, the next scheduled job's time, or the
        idle wait (a second; PostgreSQL's poll_interval) passes."""
        wait = self.idle_wait_s
        try:
            start = self.queue.next_start()
        except DatabaseBusy:
            start = None
        if start is not None:
            wait = min(wait, max(0.0, start - time.time()) + SCHEDULE_SLACK_S)
        with contextlib.suppress(InterruptedError):
            select.select([self.wake_socket.fileno(), self.signal_r], [], [], wait)
        drain(self.wake_socket)
        with contextlib.suppress(BlockingIOError):
            os.read(self.signal_r, 512)

    def execute(self, job: ClaimedJob) -> tuple[str, Any]:
        """Run the job's agent; returns (outcome, detail) without raising."""
        try:
            agent = self.registry.get(job.agent_type)
            ctx = JobContext(job, self, self.load_checkpoint(job))
        except AgentLoadError as exc:
            return "unrunnable", exc.message
        except DatabaseBusy as exc:
            log.warning("database_busy", job_id=job.id, error=exc.message)
            return "interrupted", None
        except AthenaError as exc:
            return "error", (exc.message, traceback.format_exc())
        self.control.begin(job, self.config.daemon.lease)
        self.job_log.begin(job)
        log.debug("job_started", job_id=job.id, agent=job.agent_type, attempt=job.attempt)
        try:
            try:
                self.arm(job)
                result = run_agent(agent, ctx)
            finally:
                if os.getpid() != self.pid:
                    os._exit(0)  # a child the agent forked came back here: it is no worker
                # An interrupt landing in here (before disarm cleared `running`) is this
                # job's own and is caught below; after disarm none can be raised.
                self.disarm()
            if self.control.cancel_requested:
                # The agent saw ctx.cancelled and returned early: what was asked is a cancel.
                return "cancelled", None
            return "ok", result
        except JobTimedOut as exc:
            return "timeout", exc.seconds
        except RateLimited as exc:
            return "rate_limited", (exc.retry_after, _rate_limit_reason(exc))
        except AwaitingApproval as exc:
            return "awaiting_approval", exc
        except ParkUntil as exc:
            return "sleeping", exc.wake_at
        except ParkForEvent as exc:
            return "waiting", exc
        except StepsChanged as exc:
            return "unrunnable", exc.message
        except (ApprovalRejected, BudgetExceeded, FinalFailure) as exc:
            # Final: a retry would meet the same answer (or the same spent budget).
            return "rejected", exc.message
        except Cancelled:
            return "cancelled", None
        except ShuttingDown:
            return "interrupted", None
        except JobLost as exc:
            return "lost", exc.reason
        except StaleFence:
            return "lost", "another worker holds the job now"
        except Exception as exc:
            if self.control.cancel_requested:
                return "cancelled", None
            if connection_lost(exc):
                # The database went away under the agent (a restart, a terminated
                # session): the job is given back, not failed, and spends no attempt.
                log.warning("database_connection_lost", job_id=job.id, error=str(exc))
                return "interrupted", None
            return "error", (f"{type(exc).__name__}: {exc}", traceback.format_exc())
        except (SystemExit, KeyboardInterrupt) as exc:
            # An agent's sys.exit() ends its job, not the worker that runs it.
            name = type(exc).__name__
            return "error", (f"the agent raised {name}({exc})", traceback.format_exc())
        finally:
            self.disarm()
            self.control.end()

    def report_until_stored(
        self,
        job: ClaimedJob,
        outcome: tuple[str, Any],
        *,
        claim_next: bool = False,
        ran_s: float = math.inf,
    ) -> None:
        """Report the outcome, waiting out a database that stays locked: work is never dropped."""
        while True:
            try:
                return self.report(job, outcome, claim_next=claim_next, ran_s=ran_s)
            except DatabaseBusy as exc:
                log.warning("database_busy", job_id=job.id, error=exc.message)

    def report(
        self,
        job: ClaimedJob,
        outcome: tuple[str, Any],
        *,
        claim_next: bool = False,
        ran_s: float = math.inf,
    ) -> None:
        """Record how a run ended. A completion may wait for the next commit (see
        ``finish``) and, with ``claim_next``, claims the next jobs with its own."""
        if outcome[0] == "ok":
            outcome = self.finish(job, outcome[1], ran_s, claim_next=claim_next)
            if outcome[0] == "ok":
                return
        self.flush_until_stored(claim=0)  # earlier completions first
        kind, detail = outcome[0], self.redactor.detail(outcome[1])
        self.job_log.finish(job, kind, detail)  # first: a reader seeing the end has the line
        queue = self.queue
        try:
            if kind == "unstorable":
                queue.fail(job.id, job.fence, detail, retryable=False)
                log.warning("job_failed", job_id=job.id, error=detail)
            elif kind == "error":
                message, tb = detail
                status = queue.fail(job.id, job.fence, message, tb)
                log.warning("job_failed", job_id=job.id, error=message, new_status=status)
            elif kind == "unrunnable":
                queue.fail(job.id, job.fence, detail, retryable=False)
                log.error("job_unrunnable", job_id=job.id, error=detail)
            elif kind == "timeout":
                status = queue.fail(job.id, job.fence, timed_out_message(detail))
                log.warning("job_timed_out", job_id=job.id, timeout_s=detail, new_status=status)
            elif kind == "awaiting_approval":
                queue.park_for_approval(
                    job.id, job.fence, detail.question, detail.data, detail.timeout_s
                )
                log.info("job_awaiting_approval", job_id=job.id, question=detail.question)
            elif kind == "sleeping":
                self.step_store.park_until(job.id, job.fence, detail)
                log.info("job_sleeping", job_id=job.id, until=detail)
            elif kind == "waiting":
                parked = self.step_store.park_for_event(
                    job.id, job.fence, detail.key, detail.deadline
                )
                log.info("job_waiting", job_id=job.id, key=detail.key, parked=parked)
            elif kind == "rejected":
                queue.fail(job.id, job.fence, detail, retryable=False)
                log.warning("job_failed", job_id=job.id, error=detail)
            elif kind == "rate_limited":
                seconds, message = detail
                queue_name = queue.rate_limited(job.id, job.fence, seconds, message)
                log.warning(
                    "job_rate_limited", job_id=job.id, queue=queue_name, retry_after_s=seconds
                )
            elif kind == "cancelled":
                queue.finish_cancelled(job.id, job.fence)
                log.info("job_cancelled", job_id=job.id)
            elif kind == "interrupted":
                queue.rescue(job.id, job.fence, reason="worker stopping", count_interruption=False)
                log.info("job_requeued", job_id=job.id, reason="worker stopping")
            elif kind == "lost":
                # Hand the job back at once if it is still ours (a lease we could not
                # renew); when another worker holds it, the fence makes this a no-op.
                status = queue.rescue(job.id, job.fence, reason=detail, count_interruption=False)
                log.warning("job_lost", job_id=job.id, reason=detail, new_status=status or None)
        except StaleFence:
            log.warning("job_lost", job_id=job.id, outcome=kind)
            self.job_log.lost(job)

    def load_checkpoint(self, job: ClaimedJob) -> Any:
        if job.checkpoint_iteration is None:
            return None
        recorded = job.checkpoint_iteration
        checkpoint = self.checkpoints.load_latest(job.id, at_most=recorded)
        note = None
        if checkpoint is None:
            note = f"no valid checkpoint (iteration {recorded} was recorded); started from scratch"
            log.warning("checkpoint_none_valid", job_id=job.id, recorded=recorded)
        else:
            if checkpoint.iteration != recorded:
                note = (
                    f"checkpoint of iteration {recorded} was not valid; "
                    f"resumed from iteration {checkpoint.iteration}"
                )
            log.info("job_resumed", job_id=job.id, iteration=checkpoint.iteration)
        resumed_from = checkpoint.iteration if checkpoint else 0
        self.queue.record_resume(job.id, job.fence, resumed_from, note)
        return checkpoint

    # ---- the control thread -----------------------------------------------------------

    def _control_loop(self) -> None:
        while True:
            time.sleep(CONTROL_TICK_S)
            try:
                self.control_tick(time.monotonic())
            except Exception:
                # Never silent: a failure here is logged with its traceback, and the
                # next tick tries again.
                log.exception("control_tick_failed", pid=self.pid)

    def control_tick(self, now: float) -> None:
        """One pass of the control thread: supervisor, current job, lease, heartbeat."""
        self._check_supervisor(now)
        job = self.control.job
        if job is not None and now - self.control.started > CONTROL_TICK_S:
            self.release_held()
            try:
                self._watch_job(job, now, self.config.daemon.cancel_grace)
            except Exception as exc:
                log.warning("job_control_read_failed", job_id=job.id, error=str(exc))
            self.keep_lease(job, now)
            self.job_log.flush_started(job)
        try:
            self.write_heartbeat()
        except OSError as exc:
            log.warning("heartbeat_write_failed", error=str(exc))

    def release_held(self) -> None:
        """From the control thread, once the job running now outlasts a tick: commit the
        finished jobs waiting for it, and hand the queued ones back to other workers."""
        if not self.held.finished and not self.held.queued:
            return
        try:
            if self.held.finished:
                self.flush(self.control_queue, claim=0)
            self.hand_back_queued(self.control_queue)
        except Exception as exc:  # the next tick tries again
            log.warning("held_jobs_release_failed", error=str(exc))

    def _check_supervisor(self, now: float) -> None:
        if os.getppid() == self.parent_pid:
            return
        if not self.orphaned_at:
            self.orphaned_at = now
            log.warning("supervisor_gone", parent_pid=self.parent_pid)
            self.stopping = True
            with contextlib.suppress(BlockingIOError):
                os.write(self.signal_w, b"!")
        elif self.running is not None and now - self.orphaned_at > ORPHAN_GRACE_S:
            self.interrupt_agent(ShuttingDown())

    def keep_lease(self, job: ClaimedJob, now: float) -> None:
        """Renew the job's lease in time; give the job up before a lapsed lease lets
        another worker take it, so it never runs in two places at once.

        Renewals are also the last sign of life a late rescue counts up to.
        """
        control = self.control
        lease = self.config.daemon.lease
        if control.lost:
            return
        if now >= control.lease_ends - CONTROL_TICK_S:
            self._give_up(job, f"its lease of {lease:g} s could not be renewed in time")
            return
        if now < control.next_renewal:
            return
        interval = renewal_interval(lease)
        try:
            # Never wait on the lock past the moment the job must be given up.
            timeout = max(control.lease_ends - now - CONTROL_TICK_S, 0.05)
            self.control_queue.renew_lease(job.id, job.fence, lease_s=lease, timeout_s=timeout)
        except StaleFence:
            self._give_up(job, "another worker holds the job now")
            return
        except Exception as exc:
            left = round(control.lease_ends - now, 2)
            log.warning("lease_renewal_failed", job_id=job.id, error=str(exc), lease_left_s=left)
            renewed, next_try = control.lease_ends - lease, now + min(interval, 1.0)
        else:
            renewed, next_try = now, now + interval
        with control.lock:
            if control.job is job:
                control.lease_ends = renewed + lease
                control.next_renewal = next_try

    def _give_up(self, job: ClaimedJob, reason: str) -> None:
        with self.control.lock:
            if self.control.job is not job or self.control.lost:
                return
            self.control.lost = True
        log.warning("job_given_up", job_id=job.id, reason=reason)
        self.interrupt_agent(JobLost(reason), job)

    def _watch_job(self, job: ClaimedJob, now: float, grace: float) -> None:
        state = self.control_queue.job_control(job.id)
        control = self.control
        with control.lock:
            if control.job is not job:
                return  # the agent finished while we read; this state is not about the job now
            if state is None or state[0] != job.fence or state[1] != "running":
                if not control.lost:
                    control.lost = True
                    log.warning("job_taken_over", job_id=job.id)
                    self.interrupt_agent(JobLost("another worker holds the job now"), job)
                return
            if state[2] and not control.cancel_requested:
                control.cancel_requested = True
                control.cancel_seen_at = now
                log.info("job_cancel_requested", job_id=job.id)
            elif control.cancel_requested and now - control.cancel_seen_at > grace:
                control.cancel_seen_at = now  # once per grace period
                self.interrupt_agent(Cancelled(), job)

    def end_job_children(self) -> None:
        """Kill processes the job's agent left running (forked helpers, daemons it started).

        A cheap check first: waitpid says whether this worker has any child at all.
        """
        try:
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        for child in self.process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()
                log.info("job_child_killed", pid=child.pid)

    def track_process_group(self, pgid: int) -> None:
        """Record a job's child process group where the supervisor finds it if we die."""
        self.child_groups.add(pgid)
        self._write_child_groups()

    def untrack_process_group(self, pgid: int) -> None:
        self.child_groups.discard(pgid)
        self._write_child_groups()

    def _write_child_groups(self) -> None:
        lines = []
        for pgid in sorted(self.child_groups):
            try:  # the leader's start time tells a reused pgid from ours
                started = psutil.Process(pgid).create_time()
            except psutil.Error:
                continue
            lines.append(f"{pgid} {started!r}\n")
        atomic_write(child_groups_path(self.home, self.pid), "".join(lines).encode(), durable=False)

    def write_heartbeat(self, *, force: bool = False) -> None:
        """Rewrite the heartbeat file when something changed (atomically)."""
        job = self.control.job
        snapshot = (job.id if job else None, self.jobs_done)
        if snapshot == self._heartbeat_written and not force:
            return
        beat = WorkerHeartbeat(
            pid=self.pid,
            started_at=self.started_at,
            job=snapshot[0],
            jobs_done=self.jobs_done,
            state="busy" if job else "idle",
        )
        atomic_write(heartbeat_path(self.home, self.pid), msgspec.json.encode(beat), durable=False)
        self._heartbeat_written = snapshot

    def shutdown(self) -> None:
        for path in (
            heartbeat_path(self.home, self.pid),
            child_groups_path(self.home, self.pid),
            current_job_path(self.home, self.pid),
            idle_entry(self.home.run_dir, f"worker-{self.pid}"),
            self.home.run_dir / f"worker-{self.pid}.wake",
        ):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        log.info("worker_stopped", pid=self.pid, jobs_done=self.jobs_done)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m workers --home DIR [--index N]``."""
    import argparse

    from athenad.util.logfile import worker_log_stream
    from athenad.util.logs import configure_logging

    parser = argparse.ArgumentParser(prog="athena-worker")
    parser.add_argument("--home", required=True)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--overrides", default="{}", help="JSON of [daemon] settings")
    parser.add_argument("--supervisor-pid", type=int, default=None)
    parser.add_argument("--agent-output", default=None, help="file for what agents print")
    parser.add_argument("--log-file", default=None, help="the daemon's log file (rotated)")
    args = parser.parse_args(argv)
    # Log events keep the original stderr, or go to the daemon's log file, rotated by
    # size; with --agent-output, whatever agents print (on stdout or stderr) goes to
    # its own file, so the log stays JSON lines.
    configure_logging(worker_log_stream(args.log_file, args.home, args.overrides))
    if args.agent_output:
        output = os.open(args.agent_output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
    home = Home.resolve(args.home)
    try:
        config = apply_overrides(load_config(home), msgspec.json.decode(args.overrides))
        worker = Worker(home, config, index=args.index, supervisor_pid=args.supervisor_pid)
        worker.boot()
    except Exception as exc:
        message = exc.message if isinstance(exc, AthenaError) else f"{type(exc).__name__}: {exc}"
        log.error("worker_boot_failed", error=message)
        with contextlib.suppress(OSError):
            home.run_dir.mkdir(parents=True, exist_ok=True)
            (home.run_dir / f"worker-{os.getpid()}.boot-error").write_text(message)
        return EXIT_BOOT_ERROR
    try:
        return worker.run()
    except Exception:
        log.exception("worker_crashed")
        raise
