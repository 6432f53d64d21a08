"""The job queue's state changes, one transaction each."""

from __future__ import annotations

import asyncio

import pytest

from athenad.errors import (
    InvalidInput,
    JobFailed,
    WaitTimeout,
)
from athenad.store.sqlite.queue import JobQueue
from athenad.util.ids import is_valid_job_id, new_job_id
from tests.conftest import NOTHING_WAITING


def count_jobs(queue: JobQueue) -> int:
    return queue.conn.execute("SELECT count(*) FROM jobs").fetchall()[0][0]


def test_ids_are_unique_short_and_sorted_by_creation():
    ids = [new_job_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(is_valid_job_id(i) and len(i) == 15 for i in ids[:100])


def test_timestamps_use_sqlite_text_format_with_milliseconds(queue):
    job_id = queue.submit("echo")
    created = queue.get(job_id)["created_at"]
    assert len(created) == 23 and created[10] == " " and created[19] == "."
    newer = queue.conn.execute(
        "SELECT count(*) FROM jobs WHERE created_at > datetime('now', '-1 day')"
    ).fetchall()[0][0]
    assert newer == 1


def drain(queue: JobQueue, fail_types=()) -> None:
    while (job := queue.claim("w")) is not None:
        if job.type in fail_types:
            queue.fail(job.id, job.fence, f"{job.type} failed")
        else:
            queue.complete(job.id, job.fence, {"done": job.id})


def test_run_parallel_tasks_then_and_wait_for_jobs(queue):
    async def scenario():
        ids = await queue.run_parallel_tasks(
            [{"type": "explore", "payload": {"prompt": p}} for p in ("a", "b", "c")],
            then={"type": "code-reviewer", "payload": {"prompt": "sum"}},
        )
        assert queue.get(ids[-1])["parents"] == sorted(ids[:3])
        drain(queue)
        return ids, await queue.wait_for_jobs(ids, timeout=5)

    ids, results = asyncio.run(scenario())
    assert results == [{"done": i} for i in ids]


def test_wait_for_jobs_names_the_failed_job(queue):
    ids = queue.submit_many([{"type": "ok"}, {"type": "bad"}])
    drain(queue, fail_types=("bad",))
    with pytest.raises(JobFailed, match=f"job {ids[1]} failed: bad failed") as info:
        asyncio.run(queue.wait_for_jobs(ids))
    assert info.value.job_ids == [ids[1]]


def test_wait_for_jobs_times_out(queue):
    job_id = queue.submit("echo")
    with pytest.raises(WaitTimeout, match="1 of 1 jobs still unfinished"):
        asyncio.run(queue.wait_for_jobs([job_id], timeout=0.05))


def test_counts_and_listing(queue):
    a = queue.submit("explore")
    queue.submit("plan", after=[a])
    assert queue.counts() == {**NOTHING_WAITING, "blocked": 1, "pending": 1, "running": 0}
    assert [j["type"] for j in queue.list_jobs()] == ["plan", "explore"]
    assert [j["id"] for j in queue.list_jobs(status="pending")] == [a]
    with pytest.raises(InvalidInput, match="status 'nope'"):
        queue.list_jobs(status="nope")


def test_session_of_a_job_must_exist(queue, home):
    from athenad.storage.sessions import SessionManager

    with pytest.raises(InvalidInput, match="is not a session id"):
        queue.submit("echo", session_id="../etc/passwd")
    with pytest.raises(InvalidInput, match="does not exist"):
        queue.submit("echo", session_id="session-nope")
    session_id = SessionManager(home.sessions_dir).create_session(name="s")
    assert queue.get(queue.submit("echo", session_id=session_id))["session_id"] == session_id
    assert count_jobs(queue) == 1
