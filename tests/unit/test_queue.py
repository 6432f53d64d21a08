"""The job queue's state changes, one transaction each."""

from __future__ import annotations

import asyncio
import time

import pytest

from athenad.errors import (
    InvalidInput,
    InvalidTransition,
    JobFailed,
    JobNotFound,
    StaleFence,
    UnknownParent,
    WaitTimeout,
)
from athenad.store.sqlite.queue import JobQueue
from athenad.util.ids import is_valid_job_id, new_job_id


def count_jobs(queue: JobQueue) -> int:
    return queue.conn.execute("SELECT count(*) FROM jobs").fetchall()[0][0]


def test_ids_are_unique_short_and_sorted_by_creation():
    ids = [new_job_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(is_valid_job_id(i) and len(i) == 15 for i in ids[:100])


def test_claim_takes_highest_priority_then_oldest(queue):
    low = queue.submit("echo", 1, priority=0)
    high_old = queue.submit("echo", 2, priority=5)
    high_new = queue.submit("echo", 3, priority=5)
    order = [queue.claim("w").id for _ in range(3)]
    assert order == [high_old, high_new, low]
    assert queue.claim("w") is None


def test_claim_records_owner_lease_fence_and_attempt(queue):
    job_id = queue.submit("echo", {"a": 1})
    claimed = queue.claim("host:1:0", 4242, lease_s=30)
    row = queue.get(job_id)
    assert claimed.payload == {"a": 1}
    assert claimed.attempt == 1 and claimed.fence == 1
    assert row["status"] == "running" and row["worker_pid"] == 4242
    assert row["worker_id"] == "host:1:0" and row["lease_expires_at"] > row["started_at"]


def test_timestamps_use_sqlite_text_format_with_milliseconds(queue):
    job_id = queue.submit("echo")
    created = queue.get(job_id)["created_at"]
    assert len(created) == 23 and created[10] == " " and created[19] == "."
    newer = queue.conn.execute(
        "SELECT count(*) FROM jobs WHERE created_at > datetime('now', '-1 day')"
    ).fetchall()[0][0]
    assert newer == 1


def test_complete_stores_result_duration_and_releases_fan_in_once(queue):
    a, b = queue.submit("echo"), queue.submit("echo")
    child = queue.submit("echo", after=[a, b])
    assert queue.get(child)["status"] == "blocked"
    assert queue.get(child)["parent_job_id"] == a
    ja = queue.claim("w")
    time.sleep(0.01)
    assert queue.complete(ja.id, ja.fence, {"ok": True}) == []
    assert queue.get(child)["status"] == "blocked"
    jb = queue.claim("w")
    assert queue.complete(jb.id, jb.fence, None) == [child]
    row = queue.get(ja.id)
    assert row["result"] == {"ok": True} and row["duration_ms"] >= 10
    assert queue.get(child)["status"] == "pending"
    assert queue.get(child)["parents"] == sorted([a, b])


def test_stale_fence_is_refused(queue):
    job_id = queue.submit("echo")
    first = queue.claim("w1", 1)
    assert queue.rescue(job_id, first.fence, reason="test") == "pending"
    second = queue.claim("w2", 2)
    assert second.fence == first.fence + 1
    with pytest.raises(StaleFence):
        queue.complete(job_id, first.fence, "late")
    with pytest.raises(StaleFence):
        queue.fail(job_id, first.fence, "late")
    with pytest.raises(StaleFence):
        queue.record_checkpoint(job_id, first.fence, 3)
    queue.complete(job_id, second.fence, "mine")
    assert queue.get(job_id)["result"] == "mine"


def test_fail_retries_with_backoff_then_fails_and_cancels_descendants(queue):
    parent = queue.submit("echo", max_attempts=2, backoff_s=0.05)
    child = queue.submit("echo", after=[parent])
    grandchild = queue.submit("echo", after=[child])
    job = queue.claim("w")
    assert queue.fail(job.id, job.fence, "boom", "Traceback...") == "pending"
    row = queue.get(parent)
    assert row["status"] == "pending" and row["run_after"] > row["created_at"]
    assert queue.claim("w") is None  # still backing off
    time.sleep(0.1)
    job = queue.claim("w")
    assert job.attempt == 2
    assert queue.fail(job.id, job.fence, "boom again", "Traceback: boom") == "failed"
    failed = queue.get(parent)
    assert failed["error"] == "boom again" and failed["traceback"] == "Traceback: boom"
    for descendant in (child, grandchild):
        row = queue.get(descendant)
        assert row["status"] == "cancelled" and row["cancelled_by"] == parent
        assert parent in row["error"]


def test_retry_brings_back_descendants_cancelled_by_the_failure(queue):
    parent = queue.submit("echo")
    child = queue.submit("echo", after=[parent])
    grandchild = queue.submit("echo", after=[child])
    job = queue.claim("w")
    queue.fail(job.id, job.fence, "boom")
    assert queue.retry(parent) == "pending"
    assert queue.get(child)["status"] == "blocked"
    assert queue.get(grandchild)["status"] == "blocked"
    assert queue.get(parent)["attempts"] == 0
    for _ in range(3):
        job = queue.claim("w")
        queue.complete(job.id, job.fence, job.id)
    assert queue.get(grandchild)["status"] == "completed"


def test_retry_refuses_jobs_that_are_not_failed_or_cancelled(queue):
    job_id = queue.submit("echo")
    with pytest.raises(InvalidTransition, match="only failed or cancelled"):
        queue.retry(job_id)


def test_cancel_waiting_job_cancels_descendants(queue):
    parent = queue.submit("echo")
    child = queue.submit("echo", after=[parent])
    assert queue.cancel(parent) == "cancelled"
    assert queue.get(child)["status"] == "cancelled"
    assert queue.get(child)["cancelled_by"] == parent
    assert queue.claim("w") is None


def test_cancel_running_job_is_requested_and_visible(queue):
    job_id = queue.submit("echo")
    job = queue.claim("w")
    assert queue.cancel(job_id) == "cancelling"
    assert queue.job_control(job_id) == (job.fence, "running", True)
    assert queue.renew_lease(job_id, job.fence) is True
    queue.finish_cancelled(job_id, job.fence)
    assert queue.get(job_id)["status"] == "cancelled"


def test_cancel_completed_job_is_an_error(queue):
    job_id = queue.submit("echo")
    job = queue.claim("w")
    queue.complete(job.id, job.fence, 1)
    with pytest.raises(InvalidTransition, match="already completed"):
        queue.cancel(job_id)


def test_rescue_does_not_use_attempts_but_poison_pill_fails(queue):
    job_id = queue.submit("echo", max_attempts=1)
    child = queue.submit("echo", after=[job_id])
    for expected in ("pending", "pending", "pending"):
        job = queue.claim("w")
        assert job.attempt == 1  # interruptions never use up attempts
        assert queue.rescue(job.id, job.fence, reason="worker died") == expected
    job = queue.claim("w")
    assert queue.rescue(job.id, job.fence, reason="worker died") == "failed"
    row = queue.get(job_id)
    assert row["interruptions"] == 4 and "interrupted 4 times" in row["error"]
    assert "poison pill" in row["error"]
    assert queue.get(child)["status"] == "cancelled"


def test_rescue_without_counting_interruption(queue):
    queue.submit("echo")
    for _ in range(5):
        job = queue.claim("w")
        queue.rescue(job.id, job.fence, reason="drain", count_interruption=False)
    assert queue.get(job.id)["interruptions"] == 0


def test_dependencies_on_finished_parents(queue):
    done = queue.submit("echo")
    job = queue.claim("w")
    queue.complete(job.id, job.fence, None)
    assert queue.get(queue.submit("echo", after=[done]))["status"] == "pending"
    dead = queue.submit("echo")
    queue.cancel(dead)
    orphan = queue.get(queue.submit("echo", after=[dead]))
    assert orphan["status"] == "cancelled" and orphan["cancelled_by"] == dead


def test_batch_with_dependencies_inside_the_batch(queue):
    ids = queue.submit_many(
        [{"type": "explore"}, {"type": "explore"}, {"type": "review", "after": [0, 1]}]
    )
    assert [queue.get(i)["status"] for i in ids] == ["pending", "pending", "blocked"]


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({"type": "echo", "payload": object()}, "cannot be encoded as JSON"),
        ({"type": "echo", "priority": "high"}, "priority 'high' is not an integer"),
        ({"type": "echo", "priority": 1.5}, "priority 1.5 is not an integer"),
        ({"type": "echo", "after": ["nope"]}, "'nope' is not an existing job"),
        ({"type": "echo", "max_attempts": 0}, "max_attempts 0 must be at least 1"),
        ({"type": ""}, "non-empty string 'type'"),
        ({"type": "echo", "colour": "red"}, "unknown task field"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(queue, task, message):
    queue.submit("echo")
    with pytest.raises(InvalidInput, match=message):
        queue.submit_many([{"type": "echo"}, task])
    assert count_jobs(queue) == 1


def test_unknown_parent_is_a_clear_error(queue):
    with pytest.raises(UnknownParent, match="'ghost' is not an existing job"):
        queue.submit("echo", after=["ghost"])


def test_unknown_job_id_is_a_clear_error(queue):
    for call in (queue.get, queue.cancel, queue.retry):
        with pytest.raises(JobNotFound, match="'missing' does not exist"):
            call("missing")


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
    assert queue.counts() == {"blocked": 1, "pending": 1, "running": 0}
    assert [j["type"] for j in queue.list_jobs()] == ["plan", "explore"]
    assert [j["id"] for j in queue.list_jobs(status="pending")] == [a]
    with pytest.raises(InvalidInput, match="status 'nope'"):
        queue.list_jobs(status="nope")


def test_duration_counts_every_run_and_started_at_the_first(queue):
    job_id = queue.submit("echo")
    first = queue.claim("w1")
    started = queue.get(job_id)["started_at"]
    time.sleep(0.05)
    queue.rescue(job_id, first.fence, reason="worker died")
    time.sleep(0.1)  # waiting in the queue is not running time
    second = queue.claim("w2")
    time.sleep(0.05)
    queue.complete(job_id, second.fence, None)
    row = queue.get(job_id)
    assert row["started_at"] == started
    from athenad.util.timefmt import parse_ts

    wall_ms = (parse_ts(row["completed_at"]) - parse_ts(started)).total_seconds() * 1000
    assert row["duration_ms"] >= 100
    assert row["duration_ms"] <= wall_ms - 90  # the 0.1 s spent waiting is left out


def test_session_of_a_job_must_exist(queue, home):
    from athenad.storage.sessions import SessionManager

    with pytest.raises(InvalidInput, match="is not a session id"):
        queue.submit("echo", session_id="../etc/passwd")
    with pytest.raises(InvalidInput, match="does not exist"):
        queue.submit("echo", session_id="session-nope")
    session_id = SessionManager(home.sessions_dir).create_session(name="s")
    assert queue.get(queue.submit("echo", session_id=session_id))["session_id"] == session_id
    assert count_jobs(queue) == 1


def test_late_rescue_counts_running_time_only_until_the_last_sign_of_life(queue):
    from athenad.util.timefmt import format_epoch

    job_id = queue.submit("echo")
    job = queue.claim("w")
    started = time.time()
    time.sleep(0.2)  # the worker died at once; its death is noticed 0.2 s later
    queue.rescue(job_id, job.fence, reason="gone", ran_until=format_epoch(started + 0.01))
    assert queue.get(job_id)["prior_run_ms"] < 100
