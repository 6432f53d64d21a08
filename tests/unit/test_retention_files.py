"""Retention's file side on a SQLite home: checkpoint files (temp leftovers too) go with
their jobs in one directory listing, and a large prune holds the write lock briefly."""

from __future__ import annotations

import time

from athenad.config import Config
from athenad.paths import Home
from athenad.storage.checkpoints import FileCheckpointStore
from athenad.store.retention import prune
from athenad.store.sqlite.queue import JobQueue
from athenad.util.timefmt import format_epoch


def test_files_by_job_lists_checkpoints_and_temp_leftovers(tmp_path):
    store = FileCheckpointStore(tmp_path)
    store.save("a-b", 1)
    store.save("a-b", 2)
    store.save("a", 1)
    (tmp_path / ".job-a-iter3.json.x1y2z3.tmp").write_text("half")
    (tmp_path / "unrelated.txt").write_text("")
    found = {
        job: sorted(path.name for path in paths) for job, paths in store.files_by_job().items()
    }
    assert found == {
        "a-b": ["job-a-b-iter1.json", "job-a-b-iter2.json"],
        "a": [".job-a-iter3.json.x1y2z3.tmp", "job-a-iter1.json"],
    }
    assert FileCheckpointStore(tmp_path / "missing").files_by_job() == {}


def test_pruned_jobs_lose_their_temp_leftovers_but_count_only_checkpoints(
    home: Home, queue: JobQueue
):
    job_id = queue.submit("explore")
    job = queue.claim("w")
    assert job is not None
    queue.complete(job.id, job.fence, None)
    store = FileCheckpointStore(home.checkpoints_dir)
    store.save(job_id, 1)
    (home.checkpoints_dir / f".job-{job_id}-iter2.json.abc.tmp").write_text("half")
    queue.conn.execute(
        "UPDATE jobs SET created_at = '2020-01-01 00:00:00.000',"
        " completed_at = '2020-01-01 00:00:01.000'"
    )
    report = prune(home, Config(), older_than="1d")
    assert (report.jobs_total, report.checkpoints) == (1, 1)
    assert list(home.checkpoints_dir.iterdir()) == []


def test_a_large_prune_holds_the_write_lock_for_milliseconds(home: Home, queue: JobQueue):
    old = format_epoch(time.time() - 30 * 86400)
    queue.submit_many([{"type": "explore"} for _ in range(5000)])
    queue.conn.execute(
        "UPDATE jobs SET status = 'completed', created_at = :t, completed_at = :t, duration_ms = 5",
        {"t": old},
    )
    report = prune(home, Config(), older_than="7d")
    assert report.jobs_total == 5000 and report.batches == 10
    assert report.longest_batch_ms < 500  # typically ~20 ms on a shared CI core
