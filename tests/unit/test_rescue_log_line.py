"""A job taken back from a dead worker says so in its log."""

from __future__ import annotations

import subprocess
import sys

from athenad.daemon.identity import make_worker_id
from athenad.daemon.rescue import rescue_if_abandoned
from athenad.storage.job_logs import open_job_logs


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_rescued_job_has_a_requeued_line(home, queue):
    job_id = queue.submit("echo", max_attempts=1)
    pid = dead_pid()
    assert queue.claim(make_worker_id(pid, 0), pid, lease_s=60) is not None
    status = rescue_if_abandoned(queue, home, queue.get(job_id), 60.0)
    assert status == "pending"
    logs = open_job_logs(queue)
    assert logs is not None
    [line] = logs.read(job_id)
    assert (line.level, line.message) == ("warning", f"job requeued: worker {pid} is gone")
