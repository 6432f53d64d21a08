"""What ``athenad status`` reports: the supervisor, its workers and the queue.

Workers write a small heartbeat file (``.athena/run/worker-<pid>.json``) whenever
they claim or finish a job; process figures come from psutil; the supervisor's account
of its slots (crashes, backoff) comes from ``.athena/run/slots.json``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import TYPE_CHECKING, Any

import msgspec

from athenad.config import load_config
from athenad.daemon.slots import read_slots, slot_report
from athenad.daemon.web_child import read_web_record
from athenad.paths import Home, read_pid
from athenad.store.backend import has_database, open_store
from athenad.store.contract import UNFINISHED

if TYPE_CHECKING:
    import psutil

LEASES_SEEN = 3


def seen_window(lease_s: float) -> float:
    """How recently a daemon must have renewed its record to be listed: a few leases."""
    return LEASES_SEEN * lease_s


class WorkerHeartbeat(msgspec.Struct):
    """A worker's own account of itself, rewritten on every state change."""

    pid: int
    started_at: str
    job: str | None = None
    job_started_at: str | None = None
    jobs_done: int = 0
    state: str = "idle"


def heartbeat_path(home: Home, pid: int):
    return home.run_dir / f"worker-{pid}.json"


def current_job_path(home: Home, pid: int):
    """The id of the job a worker runs now (it may hold others, claimed but not started)."""
    return home.run_dir / f"worker-{pid}.current"


def current_job_of(home: Home, pid: int) -> str | None:
    """The job a worker said it runs (or last ran), or None when it never said."""
    try:
        text = current_job_path(home, pid).read_text(errors="replace")
    except OSError:
        return None
    return text.split("\n", 1)[0] or None


def child_groups_path(home: Home, pid: int):
    """Process groups a worker's jobs started (one per line), killed if the worker dies."""
    return home.run_dir / f"worker-{pid}.pgroups"


def kill_child_groups(home: Home, pid: int) -> list[int]:
    """SIGKILL the process groups a dead worker left behind; returns those signalled."""
    import psutil

    path = child_groups_path(home, pid)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    killed = []
    for line in lines:
        try:
            pgid_text, started_text = line.split()
            pgid, started = int(pgid_text), float(started_text)
            # Only the group we recorded: same leader, same start time, still a group.
            if abs(psutil.Process(pgid).create_time() - started) > 0.01:
                continue
            if os.getpgid(pgid) != pgid:
                continue
            os.killpg(pgid, signal.SIGKILL)
            killed.append(pgid)
        except (ValueError, psutil.Error, ProcessLookupError, PermissionError):
            continue
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return killed


def read_heartbeat(home: Home, pid: int) -> WorkerHeartbeat | None:
    try:
        return msgspec.json.decode(heartbeat_path(home, pid).read_bytes(), type=WorkerHeartbeat)
    except (FileNotFoundError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def worker_processes(supervisor_pid: int) -> list[psutil.Process]:
    """The supervisor's live worker children."""
    import psutil

    try:
        children = psutil.Process(supervisor_pid).children()
    except psutil.Error:
        return []
    return [child for child in children if child.is_running() and not _is_web_child(child)]


def _is_web_child(process: psutil.Process) -> bool:
    """The supervisor's dashboard (``python -m athenad.cli.ctl ... web``), not a worker."""
    import psutil

    try:
        return process.cmdline()[1:3] == ["-m", "athenad.cli.ctl"]
    except psutil.Error:
        return False


def worker_status(home: Home, process: psutil.Process, sample_s: float = 0.0) -> dict[str, Any]:
    """One worker's figures: the keys of ``athenad status --json``'s workers list."""
    import psutil

    beat = read_heartbeat(home, process.pid)
    rss = cpu = 0.0
    with contextlib.suppress(psutil.Error):
        rss = process.memory_info().rss
        cpu = process.cpu_percent(interval=sample_s or None)
    return {
        "pid": process.pid,
        "rss_bytes": int(rss),
        "cpu_percent": float(cpu or 0.0),
        "job": beat.job if beat else None,
        "job_started_at": beat.job_started_at if beat else None,
        "jobs_done": beat.jobs_done if beat else 0,
        "started_at": beat.started_at if beat else None,
        "slot": None,  # from the supervisor's slots.json, in collect_status
    }


def sample_workers(home: Home, pid: int | None, sample_s: float = 0.1) -> list[dict[str, Any]]:
    """The supervisor's workers with their RSS and CPU over ``sample_s`` seconds."""
    if not pid:
        return []  # no daemon: nothing to sample, and psutil stays unloaded
    import psutil

    processes = worker_processes(pid)
    # cpu_percent needs two samples: prime all, wait once, then read all.
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.cpu_percent(None)
    if processes and sample_s:
        psutil.cpu_percent(interval=sample_s)
    return [worker_status(home, process) for process in processes]


def slot_status(home: Home, pid: int | None, workers: list[dict[str, Any]]) -> list[dict]:
    """The running supervisor's slots (see :func:`slot_report`); sets each worker's slot."""
    record = read_slots(home) if pid else None
    if record is None or record.pid != pid:
        return []  # no daemon, or the file is a stopped daemon's
    for worker in workers:
        worker["slot"] = record.workers.get(worker["pid"])
    return slot_report(record, {worker["pid"] for worker in workers}, time.time())


def collect_status(home: Home, *, sample_s: float = 0.1) -> dict[str, Any]:
    """``{"running", "pid", "workers": [...], "slots": [...], "queue": {"blocked",
    "pending", "running"}, "hosts": [...]}``; each slot is ``{"slot",
    "crashes_last_minute", "respawn_backoff_s", "respawn_in_s"}`` (the last null while
    the slot has a worker); hosts are the daemons on the database seen in the last few
    leases (every host's, on PostgreSQL), each ``{"host", "pid", "workers",
    "started_at", "last_seen"}``."""
    pid = read_pid(home)
    workers = sample_workers(home, pid, sample_s)
    slots = slot_status(home, pid, workers)
    queue_counts = dict.fromkeys(UNFINISHED, 0)
    hosts: list[dict[str, Any]] = []
    settings = load_config(home).daemon
    if has_database(home, settings):
        with contextlib.closing(open_store(home, settings)) as queue:
            queue_counts = queue.counts()
            hosts = queue.daemons(seen_window(settings.lease))
            # The database, not the heartbeat file, is the truth about who runs what.
            held = {job["worker_pid"]: job for job in queue.running_jobs()}
        for worker in workers:
            job = held.get(worker["pid"])
            worker["job"] = job["id"] if job else None
            worker["job_started_at"] = job["run_started_at"] if job else None
    status: dict[str, Any] = {
        "running": pid is not None,
        "pid": pid,
        "workers": workers,
        "slots": slots,
        "queue": queue_counts,
        "hosts": hosts,
    }
    web = read_web_record(home) if pid is not None else None
    if web is not None:
        status["web"] = web  # {"pid", "bind", "url"}: the dashboard the daemon serves
    return status
