"""The worker process: claim -> run agent -> complete/fail -> next.

A worker holds no transaction while an agent runs. A control thread watches the
running job (cancellation, lease, ownership) and the supervisor (a worker whose
supervisor is gone stops within a few seconds). Interrupts reach the agent as
BaseException subclasses raised from a signal handler in the main thread, and only
while the agent is running.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import threading
import time
import traceback
from typing import Any

import msgspec
import psutil
import structlog

from athenad.config import Config, apply_overrides, load_config
from athenad.errors import AthenaError, DatabaseBusy, InvalidInput, StaleFence
from athenad.fsutil import atomic_write
from athenad.jobs import ClaimedJob, JobQueue
from athenad.paths import Home
from athenad.status import WorkerHeartbeat, child_groups_path, heartbeat_path
from athenad.timefmt import utc_now_text
from athenad.wake import bind_wake_socket, drain
from workers.context import JobContext
from workers.interrupts import Cancelled, JobTimedOut, ShuttingDown, WorkerInterrupt
from workers.registry import AgentLoadError, AgentRegistry, run_agent

EXIT_OK = 0
EXIT_BOOT_ERROR = 3
EXIT_RECYCLE = 4  # done its share of jobs or memory: the supervisor starts a fresh one
IDLE_WAIT_S = 1.0
CONTROL_TICK_S = 0.2
ORPHAN_GRACE_S = 2.0
RENEW_EVERY_S = 5.0

log = structlog.get_logger()


class JobControl:
    """Shared between the main thread and the control thread for the current job."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.job: ClaimedJob | None = None
        self.started = 0.0
        self.cancel_requested = False
        self.cancel_seen_at = 0.0
        self.lost = False

    def begin(self, job: ClaimedJob) -> None:
        with self.lock:
            self.cancel_requested = False
            self.cancel_seen_at = 0.0
            self.lost = False
            self.started = time.monotonic()
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
        self.worker_id = f"{socket.gethostname()}:{self.pid}:{index}"
        self.started_at = utc_now_text()
        self.stopping = False
        self.jobs_done = 0
        self.keep_checkpoints = 3
        self.control = JobControl()
        self.in_agent = False
        self.pending_interrupt: tuple[ClaimedJob | None, WorkerInterrupt] | None = None
        self._checkpoints = None
        self._sessions = None
        self._heartbeat_written: tuple | None = None
        self.child_groups: set[int] = set()
        self._main_thread = threading.main_thread().ident

    # ---- boot -------------------------------------------------------------------------

    def boot(self) -> None:
        if os.getppid() != self.parent_pid:
            raise AthenaError(f"the supervisor (pid {self.parent_pid}) is gone.")
        daemon = self.config.daemon
        self.queue = JobQueue(
            self.home.db_path,
            synchronous=daemon.synchronous,
            run_dir=self.home.run_dir,
            fast_writes=True,
        )
        self.control_queue = JobQueue(self.home.db_path, run_dir=self.home.run_dir)
        self.registry = AgentRegistry(self.home, self.config)
        # The home's own agents are imported now: a typo there is a boot error with a
        # reason, not a failure of every job later.
        self.registry.preload(self.config.agents)
        self.wake_socket = bind_wake_socket(self.home.run_dir, f"worker-{self.pid}")
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

    @property
    def checkpoints(self):
        if self._checkpoints is None:
            from athenad.checkpoints import CheckpointStore

            self._checkpoints = CheckpointStore(self.home.checkpoints_dir)
        return self._checkpoints

    @property
    def sessions(self):
        if self._sessions is None:
            from athenad.sessions import SessionManager

            self._sessions = SessionManager(self.home.sessions_dir)
        return self._sessions

    # ---- signals (handlers only set flags or raise into the running agent) ------------

    def _on_term(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _on_alarm(self, signum: int, frame: Any) -> None:
        if self.in_agent:
            self.in_agent = False
            raise JobTimedOut()

    def _on_interrupt(self, signum: int, frame: Any) -> None:
        pending, self.pending_interrupt = self.pending_interrupt, None
        if pending is None or not self.in_agent:
            return
        job, interrupt = pending
        # Only the job it was meant for: the agent may have finished and the next begun.
        if job is None or job is self.control.job:
            self.in_agent = False
            raise interrupt

    def interrupt_agent(self, interrupt: WorkerInterrupt, job: ClaimedJob | None = None) -> None:
        """Called from the control thread: raise ``interrupt`` in the running agent.

        With ``job``, the interrupt reaches that job only, never one claimed after it.
        """
        self.pending_interrupt = (job, interrupt)
        signal.pthread_kill(self._main_thread, signal.SIGUSR1)

    # ---- the loop ---------------------------------------------------------------------

    def run(self) -> int:
        max_jobs = self.config.daemon.max_jobs_per_worker
        memory_limit = self.config.daemon.memory_limit()
        job: ClaimedJob | None = None
        exit_code = EXIT_OK
        while not self.stopping:
            if job is None:
                try:
                    job = self.queue.claim(
                        self.worker_id, self.pid, lease_s=self.config.daemon.lease
                    )
                except DatabaseBusy as exc:
                    log.warning("database_busy", error=exc.message)
                    continue
                if job is None:
                    self.idle_wait()
                    continue
            outcome = self.execute(job)
            self.end_job_children()
            self.jobs_done += 1
            recycle = (max_jobs and self.jobs_done >= max_jobs) or (
                memory_limit and self.process.memory_info().rss > memory_limit
            )
            job = self.report_until_stored(job, outcome, claim_next=not (recycle or self.stopping))
            if recycle:
                log.info("worker_recycling", jobs_done=self.jobs_done)
                exit_code = EXIT_RECYCLE
                break
        if job is not None:  # claimed while stopping: hand it back untouched
            self.queue.rescue(job.id, job.fence, reason="worker stopping", count_interruption=False)
        self.shutdown()
        return exit_code

    def idle_wait(self) -> None:
        """Sleep until a wake-up byte, a signal, or a second passes."""
        with contextlib.suppress(InterruptedError):
            select.select([self.wake_socket, self.signal_r], [], [], IDLE_WAIT_S)
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
        self.control.begin(job)
        log.debug("job_started", job_id=job.id, agent=job.agent_type, attempt=job.attempt)
        try:
            try:
                if job.timeout_s:
                    signal.setitimer(signal.ITIMER_REAL, job.timeout_s)
                self.in_agent = True
                result = run_agent(agent, ctx)
            finally:
                if os.getpid() != self.pid:
                    os._exit(0)  # a child the agent forked came back here: it is no worker
                self.in_agent = False
                signal.setitimer(signal.ITIMER_REAL, 0)
                self.control.end()
            if self.control.cancel_requested:
                # The agent saw ctx.cancelled and returned early: what was asked is a cancel.
                return "cancelled", None
            return "ok", result
        except JobTimedOut:
            return "timeout", job.timeout_s
        except Cancelled:
            return "cancelled", None
        except ShuttingDown:
            return "interrupted", None
        except StaleFence:
            return "lost", None
        except Exception as exc:
            if self.control.cancel_requested:
                return "cancelled", None
            return "error", (f"{type(exc).__name__}: {exc}", traceback.format_exc())
        except (SystemExit, KeyboardInterrupt) as exc:
            # An agent's sys.exit() ends its job, not the worker that runs it.
            name = type(exc).__name__
            return "error", (f"the agent raised {name}({exc})", traceback.format_exc())

    def report_until_stored(
        self, job: ClaimedJob, outcome: tuple[str, Any], *, claim_next: bool
    ) -> ClaimedJob | None:
        """Report the outcome, waiting out a database that stays locked: work is never dropped."""
        while True:
            try:
                return self.report(job, outcome, claim_next=claim_next)
            except DatabaseBusy as exc:
                log.warning("database_busy", job_id=job.id, error=exc.message)

    def report(
        self, job: ClaimedJob, outcome: tuple[str, Any], *, claim_next: bool
    ) -> ClaimedJob | None:
        """Record the outcome; with ``claim_next`` a completion also claims the next job."""
        kind, detail = outcome
        queue = self.queue
        try:
            if kind == "ok":
                try:
                    if claim_next:
                        _released, nxt = queue.complete_and_claim(
                            job.id,
                            job.fence,
                            detail,
                            self.worker_id,
                            self.pid,
                            lease_s=self.config.daemon.lease,
                        )
                    else:
                        queue.complete(job.id, job.fence, detail)
                        nxt = None
                except InvalidInput as exc:  # the result cannot be stored as JSON
                    queue.fail(job.id, job.fence, exc.message, retryable=False)
                    log.warning("job_failed", job_id=job.id, error=exc.message)
                    return None
                log.info("job_completed", job_id=job.id)
                if job.checkpoint_iteration is not None or self._checkpoints is not None:
                    self.checkpoints.prune(job.id, keep=1)
                return nxt
            if kind == "error":
                message, tb = detail
                status = queue.fail(job.id, job.fence, message, tb)
                log.warning("job_failed", job_id=job.id, error=message, new_status=status)
            elif kind == "unrunnable":
                queue.fail(job.id, job.fence, detail, retryable=False)
                log.error("job_unrunnable", job_id=job.id, error=detail)
            elif kind == "timeout":
                status = queue.fail(job.id, job.fence, f"timed out after {detail:g} s")
                log.warning("job_timed_out", job_id=job.id, timeout_s=detail, new_status=status)
            elif kind == "cancelled":
                queue.finish_cancelled(job.id, job.fence)
                log.info("job_cancelled", job_id=job.id)
            elif kind == "interrupted":
                queue.rescue(job.id, job.fence, reason="worker stopping", count_interruption=False)
                log.info("job_requeued", job_id=job.id, reason="worker stopping")
            elif kind == "lost":
                log.warning("job_lost", job_id=job.id)
        except StaleFence:
            log.warning("job_lost", job_id=job.id, outcome=kind)
        return None

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
        lease = self.config.daemon.lease
        grace = self.config.daemon.cancel_grace
        last_renew = time.monotonic()
        orphaned_at = 0.0
        while True:
            time.sleep(CONTROL_TICK_S)
            now = time.monotonic()
            with contextlib.suppress(Exception):
                if os.getppid() != self.parent_pid:
                    if not orphaned_at:
                        orphaned_at = now
                        log.warning("supervisor_gone", parent_pid=self.parent_pid)
                        self.stopping = True
                        os.write(self.signal_w, b"!")
                    elif self.in_agent and now - orphaned_at > ORPHAN_GRACE_S:
                        self.interrupt_agent(ShuttingDown())
                job = self.control.job
                if job is not None and now - self.control.started > CONTROL_TICK_S:
                    self._watch_job(job, now, grace)
                    # Renewals are also the last sign of life a late rescue counts up to.
                    if now - last_renew > min(lease / 3, RENEW_EVERY_S):
                        self.control_queue.renew_lease(job.id, job.fence, lease_s=lease)
                        last_renew = now
                else:
                    last_renew = now
                self.write_heartbeat()

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
                    self.interrupt_agent(Cancelled(), job)
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
            self.home.run_dir / f"worker-{self.pid}.wake",
        ):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        log.info("worker_stopped", pid=self.pid, jobs_done=self.jobs_done)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m workers --home DIR [--index N]``."""
    import argparse

    from athenad.logs import configure_logging

    parser = argparse.ArgumentParser(prog="athena-worker")
    parser.add_argument("--home", required=True)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--overrides", default="{}", help="JSON of [daemon] settings")
    parser.add_argument("--supervisor-pid", type=int, default=None)
    parser.add_argument("--agent-output", default=None, help="file for what agents print")
    args = parser.parse_args(argv)
    # Log events keep the original stderr; with --agent-output, whatever agents print
    # (on stdout or stderr) goes to its own file, so the log stays JSON lines.
    log_stream = os.fdopen(os.dup(2), "w", buffering=1)
    configure_logging(log_stream)
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
