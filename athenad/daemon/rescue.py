"""Taking back jobs whose worker is gone or whose lease lapsed, whoever held them.

The rule is the lease: once it lapsed (plus a grace), any daemon on the database requeues
the job, and the fence refuses whatever its old worker still writes. A pid means
something only on its own host, so pids are looked at only for local workers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import psutil

from athenad.daemon.identity import HOSTNAME, is_local
from athenad.daemon.status import current_job_of, kill_child_groups
from athenad.paths import Home
from athenad.storage.job_logs import note_rescue
from athenad.store.contract import JobStore
from athenad.util.logs import LibraryLogger
from athenad.util.timefmt import format_epoch, parse_ts

TIMEOUT_GRACE_S = 5.0

log = LibraryLogger("athenad.daemon.rescue")


def last_sign_of_life(job: dict, lease_s: float) -> str | None:
    """When the worker holding ``job`` last renewed its lease (or claimed the job)."""
    if not job.get("lease_expires_at"):
        return None
    return format_epoch(parse_ts(job["lease_expires_at"]).timestamp() - lease_s)


def lease_grace(lease_s: float) -> float:
    """How long past a lease's end a job is left alone: its holder gives the job up
    at the end of its lease, and renews three times per lease before that."""
    return min(TIMEOUT_GRACE_S, lease_s / 4)


def lease_lapsed(job: dict, lease_s: float, now: float) -> bool:
    """Whether the job's lease ended (plus the grace) by ``now``, whoever holds it."""
    if not job.get("lease_expires_at"):
        return True
    return now > parse_ts(job["lease_expires_at"]).timestamp() + lease_grace(lease_s)


def is_worker_alive(pid: int | None) -> bool:
    """Whether pid is a live worker process here (not a reused pid of something else)."""
    if pid is None:
        return False
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and "workers" in process.cmdline()
    except psutil.Error:
        return False


def is_worker_of(home: Home, pid: int) -> bool:
    """Whether pid is a live worker process of this home (started with its --home)."""
    try:
        command = psutil.Process(pid).cmdline()
    except psutil.Error:
        return False
    if "workers" not in command or "--home" not in command:
        return False
    at = command.index("--home") + 1
    return at < len(command) and command[at] == str(home.root)


def ran_when_lost(current: str | None, job: dict) -> bool:
    """Whether a held job was running when its worker was lost, by ``current``, the job
    the worker said it ran (:func:`current_job_of`): a worker also holds jobs claimed in
    its batch but never started, which must not count an interruption. Without a word
    from the worker, every job it held counts."""
    return current is None or current == job["id"]


def rescue_if_abandoned(
    queue: JobStore,
    home: Home,
    job: dict,
    lease_s: float,
    *,
    now: float | None = None,
    reason: str | None = None,
    count_interruption: bool = True,
    host: str = HOSTNAME,
) -> str:
    """Take back a running job that no live worker holds any more, whoever started it.

    The rule is the lease: once it lapsed, any daemon on this database requeues the job
    (the fence refuses whatever its old worker still writes). A worker on this host
    (``host``, the daemon's setting) whose process is gone is not waited for; one of
    this home that is still there but stopped renewing (stopped, hung) is killed first,
    so the job never runs twice at once. Returns the job's new status, or '' when the
    job was left alone.
    """
    now = time.time() if now is None else now
    pid = job["worker_pid"]
    local = is_local(job["worker_id"], host)
    if local and not is_worker_alive(pid):
        why = reason or f"worker {pid} is gone"
    elif lease_lapsed(job, lease_s, now):
        why = reason or f"lease expired: worker {job['worker_id']} stopped renewing it"
        if local and pid is not None and is_worker_of(home, pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            log.warning("stale_worker_killed", pid=pid, job_id=job["id"])
    else:
        return ""
    if local and pid is not None:
        kill_child_groups(home, pid)
        count_interruption = count_interruption and ran_when_lost(current_job_of(home, pid), job)
    status = queue.rescue(
        job["id"],
        job["fence"],
        reason=why,
        count_interruption=count_interruption,
        ran_until=last_sign_of_life(job, lease_s),
    )
    log.info(
        "job_rescued", job_id=job["id"], worker_id=job["worker_id"], new_status=status, reason=why
    )
    note_rescue(queue, job["id"], status, why)
    return status
