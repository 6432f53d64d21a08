"""The worker's side of job logs: ``ctx.log`` and ``ctx.progress``, and the worker's
own lines about each run (started, completed, failed, requeued).

The worker's lines cost a write only when someone may read them. "job started" waits
in memory: it is stored with the agent's first line, by the control thread once the
run has gone on for a moment, or with the line that ends the run. "job completed" is
stored only for a run whose log already has lines; a run that failed, timed out, was
cancelled or requeued always says so. A no-op job therefore writes nothing more than
it did before logs existed. The lines saying how a run began and ended are kept past
the job's cap, so a capped log still tells how it ended.

A line the database will not take is dropped with a warning in the daemon's log: a
log line never fails a job.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import structlog

from athenad.config import parse_size
from athenad.storage.job_logs import NewLine, check_progress, new_line, open_job_logs
from athenad.util.timefmt import format_epoch

if TYPE_CHECKING:
    from athenad.config import DaemonConfig
    from athenad.storage.job_logs import JobLogStore
    from athenad.store.jobspec import ClaimedJob

CONTROL_WRITE_TIMEOUT_S = 0.1  # the control thread must never wait long on the lock

log = structlog.get_logger()


class JobLogWriter:
    """Writes the lines and progress of the job a worker runs (one job at a time)."""

    def __init__(
        self,
        store: JobLogStore | None,
        control_store: JobLogStore | None,
        *,
        max_bytes: int,
        worker_pid: int,
    ) -> None:
        self.store = store
        self.control_store = control_store  # on the control thread's own connection
        self.max_bytes = max_bytes
        self.worker_pid = worker_pid
        # One writer at a time, so lines keep their order (agent threads may log too).
        self.lock = threading.Lock()
        self.job: ClaimedJob | None = None
        self.start_at: float | None = None  # when a "job started" not stored yet was due
        self.wrote = False  # this run's log has lines stored
        self.started = 0.0
        self.finished: tuple[str, int] | None = None

    @classmethod
    def open(cls, queue: Any, control_queue: Any, settings: DaemonConfig, pid: int) -> JobLogWriter:
        """The writer on a worker's connections (its queue's and its control thread's)."""
        return cls(
            open_job_logs(queue),
            open_job_logs(control_queue),
            max_bytes=parse_size(settings.job_log_max_bytes),
            worker_pid=pid,
        )

    # ---- a run ------------------------------------------------------------------------

    def begin(self, job: ClaimedJob) -> None:
        """A run starts: its "job started" line waits until something else is stored."""
        at = time.time()  # the line itself is made only if it is stored
        with self.lock:
            self.job, self.start_at, self.wrote = job, at, False
            self.started = time.monotonic()
            self.finished = None

    def flush_started(self, job: ClaimedJob) -> None:
        """From the control thread once the run has gone on a while: store "job started"
        so ``athenactl logs --follow`` shows the run. Busy now? The next tick tries again."""
        if not self.lock.acquire(blocking=False):
            return  # the main thread is writing, and takes the pending line along
        try:
            if self.job is job and self.start_at is not None:
                self._store(
                    self.control_store, job, [], timeout_s=CONTROL_WRITE_TIMEOUT_S, quiet=True
                )
        finally:
            self.lock.release()

    def finish(self, job: ClaimedJob, kind: str, detail: Any) -> None:
        """Store the line saying how the run ended, before the outcome is recorded (so a
        reader that sees the job finished has every line). Once per run."""
        with self.lock:
            if self.finished == (job.id, job.fence):
                return
            self.finished = (job.id, job.fence)
            ours = self.job is job
            try:
                if kind != "ok" or (ours and self.wrote):  # else: quick, quiet, nobody reads
                    ran = time.monotonic() - self.started if ours else None
                    self._store(self.store, job, [_end_line(job, kind, detail, ran)])
            except Exception as exc:  # a log line never stops the outcome being recorded
                log.warning("job_log_write_failed", job_id=job.id, error=str(exc))
            finally:
                self._forget(job)

    def lost(self, job: ClaimedJob) -> None:
        """The run's outcome was refused: another worker holds the job now."""
        line = new_line(
            "job lost: another worker holds it now; this run's outcome was not recorded",
            "warning",
            capped=False,
        )
        with self.lock:
            self._store(self.store, job, [line], pending=False)

    # ---- what the agent calls ---------------------------------------------------------

    def append(self, job: ClaimedJob, line: NewLine) -> None:
        with self.lock:
            self._store(self.store, job, [line])

    def progress(self, job: ClaimedJob, fraction: Any, message: Any) -> None:
        fraction, message = check_progress(fraction, message)
        if self.store is None:
            return
        with self.lock:
            try:
                self.store.set_progress(job.id, fraction, message)
            except Exception as exc:  # never fail the job over its progress
                log.warning("job_progress_write_failed", job_id=job.id, error=str(exc))

    # ---- inside -----------------------------------------------------------------------

    def _store(
        self,
        store: JobLogStore | None,
        job: ClaimedJob,
        lines: list[NewLine],
        *,
        timeout_s: float = 30.0,
        quiet: bool = False,
        pending: bool = True,
    ) -> None:
        """Append ``lines`` after this run's waiting "job started", in one transaction."""
        waiting = self._started_line(job) if pending else []
        if store is None or not (waiting or lines):
            return
        try:
            store.append(job.id, [*waiting, *lines], max_bytes=self.max_bytes, timeout_s=timeout_s)
        except Exception as exc:
            if quiet:
                return  # the control thread's early write; the line is still waiting
            log.warning("job_log_write_failed", job_id=job.id, error=str(exc))
        if waiting:
            self.start_at = None
        if self.job is job:
            self.wrote = True

    def _started_line(self, job: ClaimedJob) -> list[NewLine]:
        if self.job is not job or self.start_at is None:
            return []
        fields = {"attempt": job.attempt, "max_attempts": job.max_attempts}
        fields["worker_pid"] = self.worker_pid
        at = format_epoch(self.start_at)
        return [new_line("job started", fields=fields, at=at, capped=False)]

    def _forget(self, job: ClaimedJob) -> None:
        if self.job is job:
            self.job, self.start_at = None, None


def _end_line(job: ClaimedJob, kind: str, detail: Any, ran: float | None) -> NewLine:
    """The worker's line for one way a run can end (``Worker.execute``'s outcomes)."""
    took: dict[str, Any] = {} if ran is None else {"run_s": round(ran, 3)}
    attempt = {"attempt": job.attempt, "max_attempts": job.max_attempts, **took}
    level, message, fields = "warning", f"job ended: {kind}", took
    if kind == "ok":
        level, message = "info", "job completed"
    elif kind == "error":
        text = str(detail[0] if isinstance(detail, tuple) else detail)
        first = text.splitlines()[0] if text.strip() else "error"
        level, message, fields = "error", f"job failed: {first}", attempt
    elif kind == "unrunnable":
        level, message, fields = "error", f"job cannot run: {detail}", attempt
    elif kind == "timeout":
        after = f" after {detail:g} s" if isinstance(detail, int | float) else ""
        level, message, fields = "error", f"job timed out{after}", attempt
    elif kind == "cancelled":
        message = "job cancelled"
    elif kind == "interrupted":
        message = "job requeued: the worker is stopping"
    elif kind == "lost":
        message = f"job given up: {detail}"
    elif kind == "rate_limited" and isinstance(detail, tuple) and len(detail) == 2:
        message = f"job requeued: {detail[1]}"
    elif kind == "awaiting_approval":
        level, message = "info", f"job waiting for approval: {getattr(detail, 'question', '')}"
    elif kind in ("rejected", "unstorable"):
        level, message, fields = "error", f"job failed: {detail}", attempt
    return new_line(message, level, fields, capped=False)


class JobLogger:
    """``ctx.log``: call it to add a line to the job's log, or use it as the structlog
    logger it always was (``ctx.log.info("event", key=value)``), whose events are now
    stored as lines too. Either way the event also goes to the daemon's log.

    ``ctx.log(message, level="info", **fields)`` refuses fields that are not JSON
    (a clear :class:`~athenad.storage.job_logs.JobLogError`); the structlog-style
    methods, which never refused a value, store such a value's repr.
    """

    def __init__(
        self, writer: JobLogWriter, job: ClaimedJob, daemon_log: Any, bound: dict[str, Any]
    ) -> None:
        self._writer = writer
        self._job = job
        self._daemon_log = daemon_log
        self._bound = bound

    def __call__(self, message: str, level: str = "info", **fields: Any) -> None:
        line = new_line(message, level, {**self._bound, **fields} or None)
        self._writer.append(self._job, line)
        self._forward(line.level, message, fields)

    def _event(self, level: str, event: Any, args: tuple[Any, ...], fields: dict[str, Any]) -> None:
        message = str(event) % args if args else str(event)
        stored = {**self._bound, **fields}
        self._writer.append(self._job, new_line(message, level, stored or None, lenient=True))
        self._forward(level, message, fields)

    def _forward(self, level: str, message: str, fields: dict[str, Any]) -> None:
        # "event" is structlog's own argument: a field of that name keeps its value apart.
        extra = {("event_field" if key == "event" else key): value for key, value in fields.items()}
        getattr(self._daemon_log, level)(message, **extra)

    def debug(self, event: Any, *args: Any, **fields: Any) -> None:
        self._event("debug", event, args, fields)

    def info(self, event: Any, *args: Any, **fields: Any) -> None:
        self._event("info", event, args, fields)

    def warning(self, event: Any, *args: Any, **fields: Any) -> None:
        self._event("warning", event, args, fields)

    warn = warning

    def error(self, event: Any, *args: Any, **fields: Any) -> None:
        self._event("error", event, args, fields)

    def critical(self, event: Any, *args: Any, **fields: Any) -> None:
        self._event("critical", event, args, fields)

    def exception(self, event: Any, *args: Any, **fields: Any) -> None:
        import traceback

        if sys.exc_info()[0] is not None:
            fields = {**fields, "exception": traceback.format_exc()}
        self._event("error", event, args, fields)

    def bind(self, **fields: Any) -> JobLogger:
        """A logger whose lines carry ``fields`` too (as structlog's bind does)."""
        return JobLogger(
            self._writer, self._job, self._daemon_log.bind(**fields), {**self._bound, **fields}
        )

    def __getattr__(self, name: str) -> Any:
        # Whatever else a structlog logger offers (new, unbind, ...), unstored.
        return getattr(self._daemon_log, name)
