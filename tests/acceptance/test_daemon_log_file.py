"""athenad's own log file: rotated by size with several processes writing, and opened
anew on SIGUSR1 after logrotate renamed it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time

import psutil
import pytest

from athenad.store.sqlite.queue import JobQueue
from tests.conftest import cli, submit, wait_status, wait_until

pytestmark = pytest.mark.timeout(120)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_the_daemon_log_rotates_by_size_and_reopens_on_sigusr1(home):
    # claim_batch = 1: a line per completion (batched completions share one line).
    (home.root / "athena.toml").write_text(
        '[daemon]\nlog_max_bytes = "8KB"\nlog_backups = 2\nclaim_batch = 1\n'
    )
    started = cli("athenad", "start", "--workers", "2", home=home)
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout.strip())
    log = home.log_file
    try:
        # Each completion is a line in the log (about 120 bytes): enough for many rotations.
        with JobQueue(home.db_path) as queue:
            ids = queue.submit_many([{"type": "echo"} for _ in range(600)])
            wait_until(lambda: queue.get(ids[-1])["status"] == "completed", what="the jobs")
            for job_id in ids:
                assert queue.get(job_id)["status"] == "completed"
        wait_until(lambda: os.path.exists(f"{log}.2"), what="a second backup")
        assert not os.path.exists(f"{log}.3")  # log_backups = 2
        for path in (log, f"{log}.1", f"{log}.2"):
            assert os.path.getsize(path) <= 8192 + 2 * 400  # a line per other writer at most
            text = open(path).read()  # noqa: SIM115
            for line in text.split("\n")[:-1]:
                json.loads(line)  # whole JSON lines, never two mixed

        # logrotate: rename the file, then SIGUSR1; every process writes to a new file.
        os.rename(log, f"{log}.rotated")
        os.kill(pid, signal.SIGUSR1)
        wait_until(lambda: log.exists() and "log_reopened" in log.read_text(), what="a reopen")
        time.sleep(1.2)  # workers look at the path once a second
        size = os.path.getsize(f"{log}.rotated")
        job = submit(home, "echo")
        wait_status(home, job, {"completed"})
        wait_until(lambda: job in log.read_text(), what="the worker's line in the new file")
        assert os.path.getsize(f"{log}.rotated") == size
    finally:
        stopped = cli("athenad", "stop", home=home)
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert stopped.returncode == 0, stopped.stderr
