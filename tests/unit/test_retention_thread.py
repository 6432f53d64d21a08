"""The daemon's retention thread: prunes by the current config, so a reload that sets
[retention] starts pruning, and it stops promptly."""

from __future__ import annotations

import time

import msgspec

from athenad.config import Config, RetentionConfig
from athenad.daemon import retention
from athenad.daemon.retention import start_retention
from athenad.errors import JobNotFound
from athenad.paths import Home
from athenad.store.sqlite.queue import JobQueue
from tests.conftest import wait_until


def test_pruning_follows_the_config_it_reads_each_round(home: Home, queue: JobQueue, monkeypatch):
    monkeypatch.setattr(retention, "IDLE_EVERY_S", 0.1)
    job_id = queue.submit("explore")
    job = queue.claim("w")
    assert job is not None
    queue.complete(job.id, job.fence, None)
    queue.conn.execute(
        "UPDATE jobs SET created_at = '2020-01-01 00:00:00.000',"
        " completed_at = '2020-01-01 00:00:01.000'"
    )
    current = [Config()]
    thread = start_retention(home, lambda: current[0])
    try:
        time.sleep(0.3)
        assert queue.get(job_id)["status"] == "completed"  # no [retention]: nothing goes
        # What a reload does: the supervisor's config is replaced.
        current[0] = msgspec.structs.replace(Config(), retention=RetentionConfig(completed="1d"))

        def gone() -> bool:
            try:
                queue.get(job_id)
            except JobNotFound:
                return True
            return False

        wait_until(gone, timeout=10, what="the retention thread to prune")
    finally:
        started = time.monotonic()
        thread.stop()
        assert time.monotonic() - started < 2 and not thread.thread.is_alive()
