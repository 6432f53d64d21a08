"""A dead worker's batch: only the job it was running counts the interruption."""

from __future__ import annotations

import subprocess
import sys

from athenad.daemon.identity import make_worker_id
from athenad.daemon.rescue import rescue_if_abandoned
from athenad.daemon.status import current_job_path


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_the_job_the_worker_named_as_running_counts_its_death(home, queue):
    ids = queue.submit_many([{"type": "echo"} for _ in range(3)])
    pid = dead_pid()
    batch = queue.claim_batch(make_worker_id(pid, 0), pid, limit=3, lease_s=60)
    assert [job.id for job in batch] == ids
    home.run_dir.mkdir(parents=True, exist_ok=True)
    current_job_path(home, pid).write_text(f"{ids[1]}\n")
    for job_id in ids:
        assert rescue_if_abandoned(queue, home, queue.get(job_id), 60.0) == "pending"
    counted = [queue.get(job_id)["interruptions"] for job_id in ids]
    assert counted == [0, 1, 0]
    assert {queue.get(job_id)["attempts"] for job_id in ids} == {0}


def test_without_the_worker_s_word_every_held_job_counts(home, queue):
    ids = queue.submit_many([{"type": "echo"} for _ in range(2)])
    pid = dead_pid()
    queue.claim_batch(make_worker_id(pid, 0), pid, limit=2, lease_s=60)
    for job_id in ids:
        rescue_if_abandoned(queue, home, queue.get(job_id), 60.0)
    assert [queue.get(job_id)["interruptions"] for job_id in ids] == [1, 1]
