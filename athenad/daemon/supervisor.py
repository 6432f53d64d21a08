"""The supervisor: spawns worker processes, watches them, requeues the jobs of the dead.

Signal handlers only enqueue; the main loop does the work, about four times a
second, at once when a signal arrives, or when a slot's respawn falls due: handle the
signal -> reap dead workers (their jobs go back to pending) -> sweep running jobs
(timeouts, ignored cancellations, owners that are gone) -> give each empty worker slot
a worker once its backoff allows (see respawn.py).

A worker that dies unasked once it was ready (or is killed by a signal while starting,
once the daemon serves) is a crash: its slot backs off and the daemon carries on. Only
workers that cannot start, exiting before they were ever ready, stop the daemon.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue as queue_mod
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import msgspec
import structlog

from athenad.config import (
    Config,
    apply_overrides,
    load_config,
)
from athenad.daemon.checkpointer import Checkpointer, start_checkpointer
from athenad.daemon.identity import is_local
from athenad.daemon.notify import SystemdNotifier
from athenad.daemon.presence import DaemonPresence, beat_interval
from athenad.daemon.rescue import (
    TIMEOUT_GRACE_S,
    lease_lapsed,
    ran_when_lost,
    rescue_if_abandoned,
)
from athenad.daemon.respawn import SlotBackoff, crash_reason, is_crash
from athenad.daemon.retention import RetentionThread, start_retention
from athenad.daemon.scheduler import SchedulerThread, start_scheduler
from athenad.daemon.slots import SlotsRecord, read_slots, write_slots
from athenad.daemon.start_settings import write_start_settings
from athenad.daemon.status import (
    current_job_of,
    current_job_path,
    heartbeat_path,
    kill_child_groups,
)
from athenad.daemon.web_child import WebChild, start_web_child
from athenad.errors import AthenaError, DaemonError, DatabaseBusy
from athenad.paths import Home
from athenad.store.backend import POSTGRES, backend_of, open_store
from athenad.store.queues import apply_queue_config
from athenad.util.fsutil import atomic_write
from athenad.util.logfile import log_to_file, reopen_log
from athenad.util.timefmt import parse_ts
from athenad.util.wake import idle_entry, wake_workers

TICK_S = 0.25
KILL_WAIT_S = 2.0  # how long a worker killed over its lapsed lease is waited for
MIN_WAIT_S = 0.01  # the shortest wait of the main loop, so a due respawn never spins it
BOOT_TIMEOUT_S = 60.0
MAX_BOOT_FAILURES = 5
EXIT_BOOT_ERROR = 3
EXIT_RECYCLE = 4  # a worker's own choice after --max-jobs/--max-memory: replace it
STOP_TIMEOUT_FILE = "stop-timeout"
RELOAD_STATE_FILE = "reload.json"

log = structlog.get_logger()


@dataclass
class WorkerProcess:
    proc: subprocess.Popen
    index: int
    slot: int  # which of the wanted workers this is; its crashes back off that slot
    spawned_at: float = field(default_factory=time.monotonic)
    up: bool = False
    retiring: bool = False
    killed_by_drain: bool = False
    enforced: bool = False  # killed by us over its job (timeout, cancel, lease): no crash

    @property
    def pid(self) -> int:
        return self.proc.pid


def boot_error_path(home: Home, pid: int):
    return home.run_dir / f"worker-{pid}.boot-error"


class Supervisor:
    """Runs in the foreground until stopped; ``run()`` returns the exit code."""

    def __init__(
        self,
        home: Home,
        config: Config,
        *,
        workers: int | None = None,
        ready_fd: int | None = None,
        watch: bool = False,
        overrides: dict[str, object] | None = None,
    ) -> None:
        self.home = home.ensure()
        self.overrides = overrides or {}
        self.config = config
        self.workers_wanted = workers or config.daemon.worker_count()
        self.ready_fd = ready_fd
        self.detached = ready_fd is not None
        self.watch = watch
        self.notifier = SystemdNotifier()
        self.signals: queue_mod.SimpleQueue[int | str] = queue_mod.SimpleQueue()
        self.workers: dict[int, WorkerProcess] = {}
        self.next_index = 0
        self.ready = False
        self.stopping = False
        self.stop_deadline = 0.0
        self.exit_code = 0
        self.boot_failures = 0
        self.slots: dict[int, SlotBackoff] = {}
        previous = read_slots(self.home)
        self.crashes_total = dict(previous.crashes_total) if previous else {}
        self.slots_changed = True
        self.to_replace: list[int] = []
        self.reloading = False
        self.replacement: int | None = None
        self.last_watchdog = 0.0
        self.pid_fd: int | None = None
        self.presence: DaemonPresence | None = None
        self.scheduler: SchedulerThread | None = None
        self.retention: RetentionThread | None = None
        self.checkpointer: Checkpointer | None = None
        self.web: WebChild | None = None

    # ---- life cycle -------------------------------------------------------------------

    def run(self) -> int:
        if self.detached:  # the log file is ours (and the workers'): rotate it by size
            log_to_file(self.home, self.config.daemon)
        self.acquire_pid_file()
        try:
            self.queue = open_store(self.home, self.config.daemon)
            apply_queue_config(self.queue, self.config.queues)
            self.start_job_listener()
            self.start_presence()
            self.scheduler = start_scheduler(self.home, lambda: self.config)
            self.retention = start_retention(self.home, lambda: self.config)
            if backend_of(self.config.daemon) != POSTGRES:
                self.checkpointer = start_checkpointer(self.home, self.config.daemon.synchronous)
            daemon = self.config.daemon
            self.web = start_web_child(self.home, daemon.http, daemon.http_allow_actions)
            write_start_settings(self.home, self.overrides)
            self.install_signal_handlers()
            if self.watch:
                self.start_source_watcher()
            log.info(
                "daemon_starting",
                pid=os.getpid(),
                workers=self.workers_wanted,
                home=str(self.home.root),
            )
            self.boot_started = time.monotonic()
            while True:
                try:
                    self.step()
                except DatabaseBusy as exc:
                    # Someone holds athena.db's write lock (a long backup, say): wait it out.
                    log.warning("database_busy", error=exc.message)
                if self.stopping and not self.workers:
                    break
        except AthenaError as exc:
            self.fail_boot(exc.message)
            self.exit_code = self.exit_code or 1
        finally:
            self.kill_all()
            if self.web is not None:
                self.web.stop()
            if self.scheduler is not None:
                self.scheduler.stop()
            if self.retention is not None:
                self.retention.stop()
            if self.checkpointer is not None:
                self.checkpointer.stop()
            if self.presence is not None:
                self.presence.stop()
            self.release_pid_file()
        log.info("daemon_stopped", exit_code=self.exit_code)
        return self.exit_code

    def step(self) -> None:
        """One pass of the main loop."""
        try:
            sig = self.signals.get(timeout=self.wait_s())
        except queue_mod.Empty:
            sig = None
        while sig is not None:
            self.handle_signal(sig)
            try:
                sig = self.signals.get_nowait()
            except queue_mod.Empty:
                sig = None
        self.reap_workers()
        if self.stopping:
            self.drain_step()
            self.record_slots()
            return
        self.sweep_jobs()
        if self.web is not None:
            self.web.check()
        self.manage_workers()
        self.replace_step()
        self.check_ready()
        self.ping_watchdog()
        self.record_slots()

    def wait_s(self) -> float:
        """How long the loop may wait for a signal: a tick, or less if a respawn is due."""
        if self.stopping:
            return TICK_S
        now = time.monotonic()
        waits = [self.slot(slot).wait_s(now) for slot in self.empty_slots()]
        return max(MIN_WAIT_S, min([TICK_S, *waits]))

    # ---- pid file ---------------------------------------------------------------------

    def acquire_pid_file(self) -> None:
        fd = os.open(self.home.pid_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            other = self.home.pid_file.read_text().strip() or "?"
            raise DaemonError(
                f"athenad is already running in {self.home.root} (pid {other}); stop it first."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.pid_fd = fd

    def release_pid_file(self) -> None:
        """Empty the pid file and drop the lock. The file stays: unlinking it could let a
        starting daemon lock the doomed inode while a third locks a new file."""
        if self.pid_fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self.pid_fd, 0)
        os.close(self.pid_fd)
        self.pid_fd = None

    # ---- signals ----------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        for signum in (
            signal.SIGTERM,
            signal.SIGINT,
            signal.SIGHUP,
            signal.SIGCHLD,
            signal.SIGQUIT,
            signal.SIGUSR1,
        ):
            signal.signal(signum, self._enqueue_signal)

    def _enqueue_signal(self, signum: int, frame: object) -> None:
        self.signals.put_nowait(signum)

    def handle_signal(self, sig: int | str) -> None:
        if sig in (signal.SIGTERM, signal.SIGINT):
            if self.stopping:
                log.warning("daemon_stop_forced")
                self.stop_deadline = 0.0
            else:
                self.begin_stop()
        elif sig == signal.SIGQUIT:
            self.begin_stop(timeout=0.0)
        elif sig in (signal.SIGHUP, "reload"):
            self.begin_reload()
        elif sig == signal.SIGUSR1:
            reopen_log()  # logrotate renamed the file; workers notice within a second

    # ---- workers ----------------------------------------------------------------------

    def spawn_worker(self, slot: int) -> WorkerProcess:
        index = self.next_index
        self.next_index += 1
        command = [
            sys.executable,
            "-m",
            "workers",
            "--home",
            str(self.home.root),
            "--index",
            str(index),
            "--supervisor-pid",
            str(os.getpid()),
        ]
        if self.overrides:
            command += ["--overrides", msgspec.json.encode(self.overrides).decode()]
        if self.detached:
            # Detached, the log file is JSON lines: agents' prints go to their own file.
            command += ["--agent-output", str(self.home.agent_output_file)]
            command += ["--log-file", str(self.home.log_file)]
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            # Its own process group: whatever a worker's jobs fork can be killed with it.
            process_group=0,
            close_fds=True,
        )
        worker = WorkerProcess(proc, index, slot)
        self.workers[proc.pid] = worker
        self.slots_changed = True
        log.info("worker_spawned", pid=proc.pid, index=index, slot=slot)
        return worker

    def reap_workers(self) -> None:
        for pid, worker in list(self.workers.items()):
            code = worker.proc.poll()
            if code is None:
                if not worker.up and heartbeat_path(self.home, pid).exists():
                    worker.up = True
                    self.boot_failures = 0
                    self.slot(worker.slot).came_up(time.monotonic())
                    self.slots_changed = True
                continue
            del self.workers[pid]
            self.on_worker_exit(worker, code)

    def on_worker_exit(self, worker: WorkerProcess, code: int) -> None:
        expected = self.stopping or worker.retiring or worker.enforced or code == EXIT_RECYCLE
        # Its heartbeat file tells a worker that was ready before the loop noticed.
        up = worker.up or heartbeat_path(self.home, worker.pid).exists()
        if up:
            self.boot_failures = 0
        failed_reload = not up and worker.pid == self.replacement
        crashed = (
            not expected and not failed_reload and is_crash(up=up, code=code, serving=self.ready)
        )
        reason = f"worker {worker.pid} exited with code {code}"
        if code < 0:
            reason = f"worker {worker.pid} was killed by {crash_reason(code)}"
        if not crashed:
            (log.info if expected and code == 0 else log.warning)(
                "worker_exited", pid=worker.pid, code=code
            )
        self.slots_changed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(worker.pid, signal.SIGKILL)  # processes its jobs forked and left
        left = kill_child_groups(self.home, worker.pid)
        if left:
            log.info("worker_children_killed", pid=worker.pid, process_groups=left)
        self.rescue_jobs_of(worker.pid, reason, count=not (expected or worker.killed_by_drain))
        for path in (
            heartbeat_path(self.home, worker.pid),
            current_job_path(self.home, worker.pid),
            idle_entry(self.home.run_dir, f"worker-{worker.pid}"),
            self.home.run_dir / f"worker-{worker.pid}.wake",
        ):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if expected:
            return
        if failed_reload:
            # A reload whose new code cannot start: keep the workers we have.
            self.end_reload(
                error=f"a new worker could not start: {self.read_boot_error(worker.pid) or reason}"
            )
            return
        if crashed:
            self.on_crash(worker, code)
            return
        self.boot_failures += 1
        message = self.read_boot_error(worker.pid) or reason
        log.error("worker_boot_failed", pid=worker.pid, error=message, failures=self.boot_failures)
        if (code == EXIT_BOOT_ERROR and not self.ready) or self.boot_failures >= MAX_BOOT_FAILURES:
            self.fail_boot(f"a worker could not start: {message}")

    def on_crash(self, worker: WorkerProcess, code: int) -> None:
        """Count the crash and back its slot off; the daemon carries on."""
        now = time.monotonic()
        backoff = self.slot(worker.slot)
        delay = backoff.crashed(now)
        reason = crash_reason(code)
        self.crashes_total[reason] = self.crashes_total.get(reason, 0) + 1
        how = {"signal": reason} if code < 0 else {"exit_code": code}
        log.warning(
            "worker_died",
            slot=worker.slot,
            pid=worker.pid,
            **how,
            respawn_in_s=round(delay, 3),
            crashes_last_minute=len(backoff.recent_crashes(now)),
        )

    def read_boot_error(self, pid: int) -> str | None:
        path = boot_error_path(self.home, pid)
        try:
            return path.read_text().strip() or None
        except FileNotFoundError:
            return None
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def fail_boot(self, message: str) -> None:
        """Stop the daemon with a non-zero exit instead of respawning forever."""
        log.error("daemon_failed", error=message)
        self.exit_code = EXIT_BOOT_ERROR
        self.report_ready(f"FAILED {message}")
        if not self.stopping:
            self.begin_stop(timeout=5.0)

    def manage_workers(self) -> None:
        """Give each empty slot a worker once its backoff allows; retire surplus slots."""
        now = time.monotonic()
        for slot in self.empty_slots():
            if self.slot(slot).wait_s(now) == 0:
                self.spawn_worker(slot)
        for worker in list(self.workers.values()):
            if not worker.retiring and worker.slot >= self.workers_wanted:
                self.retire(worker)

    def empty_slots(self) -> list[int]:
        """Wanted slots with no worker that is staying (a retiring one is leaving)."""
        held = {w.slot for w in self.workers.values() if not w.retiring}
        return [slot for slot in range(self.workers_wanted) if slot not in held]

    def slot(self, index: int) -> SlotBackoff:
        return self.slots.setdefault(index, SlotBackoff())

    def record_slots(self) -> None:
        """Rewrite slots.json (``athenad status``, ``metrics``) when something changed."""
        if not self.slots_changed:
            return
        self.slots_changed = False
        to_wall_clock = time.time() - time.monotonic()
        shown = set(range(self.workers_wanted)) | {w.slot for w in self.workers.values()}
        record = SlotsRecord(
            pid=os.getpid(),
            slots={slot: self.slot(slot).shifted(to_wall_clock) for slot in sorted(shown)},
            workers={pid: worker.slot for pid, worker in self.workers.items()},
            crashes_total=dict(self.crashes_total),
        )
        try:
            write_slots(self.home, record)
        except OSError as exc:
            log.warning("slots_write_failed", error=str(exc))

    def retire(self, worker: WorkerProcess) -> None:
        worker.retiring = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGTERM)

    def check_ready(self) -> None:
        if self.ready:
            return
        up = [w for w in self.workers.values() if w.up and not w.retiring]
        if len(up) >= self.workers_wanted:
            self.ready = True
            status = f"{len(up)} workers ready"
            log.info("daemon_ready", pid=os.getpid(), workers=len(up))
            self.report_ready(f"READY {os.getpid()}")
            self.notifier.ready(status)
            if self.presence is not None:
                self.presence.renew_soon()
        elif time.monotonic() - self.boot_started > BOOT_TIMEOUT_S:
            self.fail_boot(f"workers did not start within {BOOT_TIMEOUT_S:g} s")

    def report_ready(self, line: str) -> None:
        """Tell the `athenad start` that launched us how boot went (once)."""
        if self.ready_fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self.ready_fd, (line + "\n").encode())
            os.close(self.ready_fd)
        self.ready_fd = None

    def ping_watchdog(self) -> None:
        interval = self.notifier.watchdog_interval
        now = time.monotonic()
        if interval and now - self.last_watchdog >= interval:
            self.notifier.watchdog()
            self.last_watchdog = now

    # ---- jobs of dead or stuck workers ------------------------------------------------

    def rescue_jobs_of(self, pid: int, reason: str, *, count: bool) -> None:
        # A worker may hold jobs it claimed but never started: only the one it said it
        # runs counts the interruption (a poison pill must not fail the jobs beside it).
        current = current_job_of(self.home, pid)
        for job in self.queue.running_jobs():
            if job["worker_pid"] == pid and is_local(job["worker_id"], self.config.daemon.host):
                counted = count and ran_when_lost(current, job)
                status = self.queue.rescue(
                    job["id"], job["fence"], reason=reason, count_interruption=counted
                )
                log.info(
                    "job_rescued",
                    job_id=job["id"],
                    worker_pid=pid,
                    new_status=status,
                    reason=reason,
                )

    def sweep_jobs(self) -> None:
        """Timeouts, ignored cancellations, and jobs held by processes that are gone."""
        now = time.time()
        lease = self.config.daemon.lease
        host = self.config.daemon.host
        for job in self.queue.running_jobs():
            pid = job["worker_pid"]
            ours = self.workers.get(pid) if is_local(job["worker_id"], host) else None
            if ours is None:
                # Another daemon's (a dead one's, another host's): the lease decides.
                rescue_if_abandoned(self.queue, self.home, job, lease, now=now, host=host)
                continue
            # Each case first changes the job under its fence, and kills the worker only
            # if that worked: the worker may have moved on to another job meanwhile.
            started = parse_ts(job["run_started_at"]).timestamp()
            if job["timeout_s"] and now > started + job["timeout_s"] + TIMEOUT_GRACE_S:
                status = self.queue.expire_timed_out(job["id"], job["fence"], job["timeout_s"])
                if status:
                    log.warning(
                        "job_timeout_enforced", job_id=job["id"], worker_pid=pid, new_status=status
                    )
                    self.enforce(ours)
            elif job["cancel_requested_at"]:
                asked = parse_ts(job["cancel_requested_at"]).timestamp()
                overdue = now > asked + 2 * self.config.daemon.cancel_grace + TIMEOUT_GRACE_S
                if overdue and self.queue.rescue(
                    job["id"], job["fence"], reason="cancellation enforced"
                ):
                    log.warning("job_cancel_enforced", job_id=job["id"], worker_pid=pid)
                    self.enforce(ours)
            elif lease_lapsed(job, lease, now):
                # The worker stopped renewing its claim (stopped, or stuck holding the GIL).
                # It dies before the job is given back: a stopped worker let go on between
                # the two would otherwise run beside the job's next holder.
                self.enforce(ours)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    ours.proc.wait(timeout=KILL_WAIT_S)
                status = self.queue.rescue(job["id"], job["fence"], reason="lease expired")
                if status:
                    log.warning("job_lease_expired", job_id=job["id"], worker_pid=pid)

    def enforce(self, worker: WorkerProcess) -> None:
        """Kill a worker over its job; it is replaced at once, not counted as a crash."""
        worker.enforced = True
        self.kill_worker(worker)

    def kill_worker(self, worker: WorkerProcess) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGKILL)

    # ---- reload -----------------------------------------------------------------------

    def begin_reload(self) -> None:
        try:
            config = apply_overrides(load_config(self.home), self.overrides)
        except AthenaError as exc:
            self.end_reload(error=exc.message)
            return
        self.config = config
        # A --workers flag is among the overrides, so it still holds after a reload.
        self.workers_wanted = config.daemon.worker_count()
        self.slots_changed = True
        self.to_replace = [pid for pid, w in self.workers.items() if not w.retiring]
        self.reloading = True
        self.write_reload_state("running")
        self.notifier.reloading()
        log.info("daemon_reloading", workers=len(self.to_replace))

    def end_reload(self, error: str | None = None) -> None:
        """Finish a reload: report it to `athenad reload` through a small state file."""
        self.reloading = False
        self.replacement = None
        self.to_replace = []
        if error is None:
            log.info("daemon_reloaded", workers=len(self.workers))
            self.write_reload_state("done")
        else:
            log.error("reload_failed", error=error)
            self.write_reload_state("failed", error)
        self.notifier.send("READY=1", f"STATUS={len(self.workers)} workers")

    def write_reload_state(self, state: str, error: str | None = None) -> None:
        state_json = msgspec.json.encode({"state": state, "error": error})
        atomic_write(self.home.run_dir / RELOAD_STATE_FILE, state_json, durable=False)

    def replace_step(self) -> None:
        """Replace workers one at a time: start a new one, retire an old one once it is up."""
        if self.replacement is not None:
            new = self.workers.get(self.replacement)
            if new is None:
                self.replacement = None
            elif new.up:
                self.replacement = None
                while self.to_replace:
                    old = self.workers.get(self.to_replace.pop(0))
                    if old is not None and not old.retiring:
                        self.retire(old)
                        break
            return
        self.to_replace = [pid for pid in self.to_replace if pid in self.workers]
        if self.to_replace:
            # The new worker takes the slot of the old one it replaces first.
            old = self.workers[self.to_replace[0]]
            self.replacement = self.spawn_worker(old.slot).pid
        elif self.reloading:
            self.end_reload()

    def start_job_listener(self) -> None:
        """On PostgreSQL, one LISTEN connection wakes this host's idle workers when any
        host makes jobs ready (SQLite's writers wake them directly)."""
        settings = self.config.daemon
        if backend_of(settings) != POSTGRES:
            return
        from athenad.store.postgres.listen import start_listener

        run_dir = self.home.run_dir
        start_listener(
            settings.database_url, settings.database_schema, lambda: wake_workers(run_dir)
        )

    def start_presence(self) -> None:
        """Record this daemon on the database every few seconds (``athenad status``)."""
        settings = self.config.daemon
        self.presence = DaemonPresence(
            lambda: open_store(self.home, settings),
            host=settings.host,
            pid=os.getpid(),
            workers=lambda: len(self.workers),
            interval=beat_interval(settings.lease),
        )
        self.presence.start()

    def start_source_watcher(self) -> None:
        """--reload: replace workers when agent sources or athena.toml change."""
        import watchfiles

        def is_source(change: watchfiles.Change, path: str) -> bool:
            return (
                path.endswith(".py") or path.endswith("athena.toml")
            ) and "/.athena/" not in path

        def watch() -> None:
            for _changes in watchfiles.watch(self.home.root, watch_filter=is_source, debounce=300):
                log.info("sources_changed")
                self.signals.put_nowait("reload")

        threading.Thread(target=watch, name="source-watcher", daemon=True).start()

    # ---- stopping ---------------------------------------------------------------------

    def begin_stop(self, timeout: float | None = None) -> None:
        if timeout is None:
            timeout = self.read_stop_timeout()
        self.stopping = True
        self.stop_deadline = time.monotonic() + timeout
        self.notifier.stopping()
        log.info("daemon_stopping", drain_timeout_s=timeout, workers=len(self.workers))
        for worker in self.workers.values():
            self.retire(worker)

    def read_stop_timeout(self) -> float:
        path = self.home.run_dir / STOP_TIMEOUT_FILE
        try:
            return max(0.0, float(path.read_text()))
        except (FileNotFoundError, ValueError):
            return self.config.daemon.drain_timeout
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def drain_step(self) -> None:
        if self.workers and time.monotonic() >= self.stop_deadline:
            for worker in self.workers.values():
                if not worker.killed_by_drain:
                    log.warning("worker_drain_timeout", pid=worker.pid)
                    worker.killed_by_drain = True
                    self.kill_worker(worker)

    def kill_all(self) -> None:
        """Last resort on the way out: no worker outlives the supervisor."""
        for worker in list(self.workers.values()):
            worker.killed_by_drain = True
            self.kill_worker(worker)
            with contextlib.suppress(Exception):
                worker.proc.wait(timeout=5)
            with contextlib.suppress(Exception):
                self.rescue_jobs_of(worker.pid, "daemon stopped", count=False)
        self.workers.clear()


def run_supervisor(
    home: Home,
    *,
    workers: int | None,
    ready_fd: int | None,
    watch: bool,
    overrides: dict[str, object] | None = None,
) -> int:
    """Load the config and run a supervisor in this process until it stops."""
    try:
        config = apply_overrides(load_config(home), overrides or {})
        supervisor = Supervisor(
            home, config, workers=workers, ready_fd=ready_fd, watch=watch, overrides=overrides
        )
        return supervisor.run()
    except AthenaError as exc:
        if ready_fd is not None:
            with contextlib.suppress(OSError):
                os.write(ready_fd, f"FAILED {exc.message}\n".encode())
        raise
