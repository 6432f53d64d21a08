"""The queue's behaviour, written against the JobStore API, run on every backend."""

from __future__ import annotations

import threading
import time

import pytest

from athenad.errors import (
    InvalidInput,
    InvalidTransition,
    JobNotFound,
    StaleFence,
    UnknownParent,
)
from athenad.util.timefmt import format_epoch, parse_ts
from tests.conftest import NOTHING_WAITING


def test_claim_takes_highest_priority_then_oldest(store):
    low = store.submit("echo", 1, priority=0)
    high_old = store.submit("echo", 2, priority=5)
    high_new = store.submit("echo", 3, priority=5)
    assert [store.claim("w").id for _ in range(3)] == [high_old, high_new, low]
    assert store.claim("w") is None


def test_claim_records_owner_lease_fence_and_attempt(store):
    job_id = store.submit("echo", {"a": 1})
    claimed = store.claim("host:1:0", 4242, lease_s=30)
    row = store.get(job_id)
    assert claimed.payload == {"a": 1}
    assert claimed.attempt == 1 and claimed.fence == 1
    assert row["status"] == "running" and row["worker_pid"] == 4242
    assert row["worker_id"] == "host:1:0" and row["lease_expires_at"] > row["started_at"]


def test_each_job_is_claimed_once_by_racing_workers(store, store_factory):
    ids = set(store.submit_many([{"type": "echo", "payload": i} for i in range(40)]))
    claimed: list[str] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        with store_factory() as mine:
            while (job := mine.claim(f"w{n}")) is not None:
                with lock:
                    claimed.append(job.id)
                mine.complete(job.id, job.fence, n)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(claimed) == sorted(ids)
    assert store.counts() == {**NOTHING_WAITING, "blocked": 0, "pending": 0, "running": 0}


def test_complete_stores_result_duration_and_releases_fan_in_once(store):
    a, b = store.submit("echo"), store.submit("echo")
    child = store.submit("echo", after=[a, b])
    assert store.get(child)["status"] == "blocked"
    assert store.get(child)["parent_job_id"] == a
    ja = store.claim("w")
    time.sleep(0.02)
    assert store.complete(ja.id, ja.fence, {"ok": True}) == []
    assert store.get(child)["status"] == "blocked"
    jb = store.claim("w")
    assert store.complete(jb.id, jb.fence, None) == [child]
    row = store.get(ja.id)
    assert row["result"] == {"ok": True} and row["duration_ms"] >= 10
    assert store.get(child)["status"] == "pending"
    assert store.get(child)["parents"] == sorted([a, b])


def test_complete_and_claim_takes_the_released_child(store):
    parent = store.submit("echo")
    child = store.submit("echo", {"n": 2}, after=[parent])
    job = store.claim("w")
    released, claimed = store.complete_and_claim(job.id, job.fence, "done", "w")
    assert released == [child] and claimed is not None and claimed.id == child
    assert store.get(parent)["status"] == "completed"
    assert store.get(child)["status"] == "running"


def test_fail_retries_with_backoff_then_fails(store):
    job_id = store.submit("echo", max_attempts=2, backoff_s=0.05)
    job = store.claim("w")
    assert store.fail(job.id, job.fence, "boom", "Traceback...") == "pending"
    row = store.get(job_id)
    assert row["status"] == "pending" and row["run_after"] > row["created_at"]
    assert row["error"] == "boom"
    assert store.claim("w") is None  # still backing off
    time.sleep(0.1)
    job = store.claim("w")
    assert job.attempt == 2
    assert store.fail(job.id, job.fence, "boom again", "Traceback: boom") == "failed"
    failed = store.get(job_id)
    assert failed["status"] == "failed" and failed["attempts"] == 2
    assert failed["error"] == "boom again" and failed["traceback"] == "Traceback: boom"


def test_fail_not_retryable_ends_at_once(store):
    store.submit("echo", max_attempts=5)
    job = store.claim("w")
    assert store.fail(job.id, job.fence, "bad input", retryable=False) == "failed"


def test_failure_cancels_descendants_naming_the_cause(store):
    parent = store.submit("echo")
    child = store.submit("echo", after=[parent])
    grandchild = store.submit("echo", after=[child])
    other = store.submit("echo")
    job = store.claim("w")
    assert job.id == parent
    assert store.fail(job.id, job.fence, "boom") == "failed"
    for descendant in (child, grandchild):
        row = store.get(descendant)
        assert row["status"] == "cancelled" and row["cancelled_by"] == parent
        assert row["error"] == f"cancelled because ancestor {parent} failed"
        assert row["completed_at"] is not None
    assert store.get(other)["status"] == "pending"


def test_retry_brings_back_descendants_cancelled_by_the_failure(store):
    parent = store.submit("echo")
    child = store.submit("echo", after=[parent])
    grandchild = store.submit("echo", after=[child])
    job = store.claim("w")
    store.fail(job.id, job.fence, "boom")
    assert store.retry(parent) == "pending"
    assert store.get(child)["status"] == "blocked"
    assert store.get(grandchild)["status"] == "blocked"
    assert store.get(parent)["attempts"] == 0
    for _ in range(3):
        job = store.claim("w")
        store.complete(job.id, job.fence, job.id)
    assert store.get(grandchild)["status"] == "completed"


def test_retry_keeps_descendants_of_another_dead_parent_cancelled(store):
    a, b = store.submit("echo"), store.submit("echo")
    child = store.submit("echo", after=[a, b])
    for _ in range(2):
        job = store.claim("w")
        store.fail(job.id, job.fence, "boom")
    assert store.get(child)["cancelled_by"] == a
    store.retry(a)
    row = store.get(child)
    assert row["status"] == "cancelled" and row["cancelled_by"] == b


def test_retry_refuses_jobs_that_are_not_failed_or_cancelled(store):
    job_id = store.submit("echo")
    with pytest.raises(InvalidTransition, match="only failed or cancelled"):
        store.retry(job_id)


def test_retry_refuses_a_job_whose_parent_is_dead(store):
    parent = store.submit("echo")
    child = store.submit("echo", after=[parent])
    store.cancel(parent)
    with pytest.raises(InvalidTransition, match=f"depends on job {parent}"):
        store.retry(child)


def test_cancel_waiting_job_cancels_descendants(store):
    parent = store.submit("echo")
    child = store.submit("echo", after=[parent])
    assert store.cancel(parent) == "cancelled"
    row = store.get(child)
    assert row["status"] == "cancelled" and row["cancelled_by"] == parent
    assert row["error"] == f"cancelled because ancestor {parent} was cancelled"
    assert store.claim("w") is None
    assert store.cancel(parent) == "cancelled"  # twice is fine


def test_cancel_running_job_is_requested_and_visible(store):
    job_id = store.submit("echo")
    child = store.submit("echo", after=[job_id])
    job = store.claim("w")
    assert store.job_control(job_id) == (job.fence, "running", False)
    assert store.renew_lease(job_id, job.fence) is False
    assert store.cancel(job_id) == "cancelling"
    assert store.job_control(job_id) == (job.fence, "running", True)
    assert store.renew_lease(job_id, job.fence) is True
    store.finish_cancelled(job_id, job.fence)
    assert store.get(job_id)["status"] == "cancelled"
    assert store.get(child)["cancelled_by"] == job_id


def test_a_failure_after_cancel_was_asked_is_not_retried(store):
    store.submit("echo", max_attempts=3)
    job = store.claim("w")
    store.cancel(job.id)
    assert store.fail(job.id, job.fence, "stopped") == "failed"


def test_cancel_completed_job_is_an_error(store):
    job_id = store.submit("echo")
    job = store.claim("w")
    store.complete(job.id, job.fence, 1)
    with pytest.raises(InvalidTransition, match="already completed"):
        store.cancel(job_id)


def test_stale_fence_is_refused_and_changes_nothing(store):
    job_id = store.submit("echo")
    first = store.claim("w1", 1)
    assert store.rescue(job_id, first.fence, reason="test") == "pending"
    second = store.claim("w2", 2)
    assert second.fence == first.fence + 1
    for late_write in (
        lambda: store.complete(job_id, first.fence, "late"),
        lambda: store.fail(job_id, first.fence, "late"),
        lambda: store.finish_cancelled(job_id, first.fence),
        lambda: store.record_checkpoint(job_id, first.fence, 3),
        lambda: store.renew_lease(job_id, first.fence),
    ):
        with pytest.raises(StaleFence, match="is stale"):
            late_write()
    assert store.rescue(job_id, first.fence, reason="late") == ""
    assert store.expire_timed_out(job_id, first.fence, 5) == ""
    store.record_resume(job_id, first.fence, 7, "late")
    row = store.get(job_id)
    assert row["status"] == "running" and row["worker_id"] == "w2"
    assert row["checkpoint_iteration"] is None and row["resumed_from"] is None
    store.complete(job_id, second.fence, "mine")
    assert store.get(job_id)["result"] == "mine"


def test_a_late_complete_and_claim_releases_and_claims_nothing(store):
    parent = store.submit("parent")
    child = store.submit("child", after=[parent])
    other = store.submit("other")
    first = store.claim("w1", 1)
    assert first.id == parent
    assert store.rescue(parent, first.fence, reason="test") == "pending"
    second = store.claim("w2", 2)
    assert second.id == parent
    with pytest.raises(StaleFence, match="is stale"):
        store.complete_and_claim(parent, first.fence, "late", "w1", 1)
    assert store.get(child)["status"] == "blocked"  # not released by the late write
    assert store.get(other)["status"] == "pending"  # and nothing claimed for w1
    assert store.get(parent)["worker_id"] == "w2"


def test_writes_for_a_missing_job_say_so(store):
    with pytest.raises(JobNotFound):
        store.complete("missing", 1, None)
    with pytest.raises(JobNotFound):
        store.fail("missing", 1, "x")
    assert store.rescue("missing", 1, reason="x") == ""
    assert store.job_control("missing") is None


def test_rescue_does_not_use_attempts_but_poison_pill_fails(store):
    job_id = store.submit("echo", max_attempts=1)
    child = store.submit("echo", after=[job_id])
    for _ in range(3):
        job = store.claim("w")
        assert job.attempt == 1  # interruptions never use up attempts
        assert store.rescue(job.id, job.fence, reason="worker died") == "pending"
    assert store.get(job_id)["error"] == "interrupted: worker died"
    job = store.claim("w")
    assert job.interruptions == 3
    assert store.rescue(job.id, job.fence, reason="worker died") == "failed"
    row = store.get(job_id)
    assert row["status"] == "failed" and row["interruptions"] == 4
    assert "interrupted 4 times" in row["error"] and "poison pill" in row["error"]
    assert store.get(child)["status"] == "cancelled"


def test_rescue_without_counting_interruption(store):
    store.submit("echo")
    for _ in range(5):
        job = store.claim("w")
        assert store.rescue(job.id, job.fence, reason="drain", count_interruption=False)
    assert store.get(job.id)["interruptions"] == 0
    assert store.get(job.id)["attempts"] == 0


def test_rescue_of_a_job_asked_to_cancel_ends_it(store):
    job_id = store.submit("echo")
    job = store.claim("w")
    store.cancel(job_id)
    assert store.rescue(job_id, job.fence, reason="worker died") == "cancelled"
    assert store.get(job_id)["error"] == "cancelled by request (worker died)"


def test_late_rescue_counts_running_time_only_until_the_last_sign_of_life(store):
    job_id = store.submit("echo")
    job = store.claim("w")
    started = parse_ts(store.get(job_id)["run_started_at"]).timestamp()
    time.sleep(0.2)  # the worker died at once; its death is noticed 0.2 s later
    store.rescue(job_id, job.fence, reason="gone", ran_until=format_epoch(started + 0.01))
    assert store.get(job_id)["prior_run_ms"] < 100


def test_duration_counts_every_run_and_started_at_the_first(store):
    job_id = store.submit("echo")
    first = store.claim("w1")
    started = store.get(job_id)["started_at"]
    time.sleep(0.05)
    store.rescue(job_id, first.fence, reason="worker died")
    time.sleep(0.1)  # waiting in the queue is not running time
    second = store.claim("w2")
    time.sleep(0.05)
    store.complete(job_id, second.fence, None)
    row = store.get(job_id)
    assert row["started_at"] == started
    wall_ms = (parse_ts(row["completed_at"]) - parse_ts(started)).total_seconds() * 1000
    assert 100 <= row["duration_ms"] <= wall_ms - 90


def test_expire_timed_out_fails_or_retries(store):
    job_id = store.submit("echo", max_attempts=2, backoff_s=0, timeout=1)
    job = store.claim("w")
    assert store.expire_timed_out(job_id, job.fence, 1) == "pending"
    job = store.claim("w")
    assert store.expire_timed_out(job_id, job.fence, 1) == "failed"
    assert store.get(job_id)["error"] == "timed out after 1 s"


def test_lease_renews_forward(store):
    job_id = store.submit("echo")
    job = store.claim("w", lease_s=1)
    first = store.get(job_id)["lease_expires_at"]
    assert store.renew_lease(job_id, job.fence, lease_s=120) is False
    renewed = store.get(job_id)["lease_expires_at"]
    assert (parse_ts(renewed) - parse_ts(first)).total_seconds() > 100
    running = store.running_jobs()
    assert [(r["id"], r["fence"], r["worker_id"]) for r in running] == [(job_id, job.fence, "w")]
    assert running[0]["lease_expires_at"] == renewed


def test_checkpoints_and_resume_are_recorded_by_the_holder(store):
    job_id = store.submit("echo")
    assert store.record_checkpoint_unheld(job_id, 1) is True
    job = store.claim("w")
    assert job.checkpoint_iteration == 1
    assert store.record_checkpoint_unheld(job_id, 2) is False
    store.record_checkpoint(job_id, job.fence, 5)
    store.record_resume(job_id, job.fence, 1, "resumed from checkpoint 1")
    row = store.get(job_id)
    assert row["checkpoint_iteration"] == 5 and row["resumed_from"] == 1
    assert row["checkpoint_note"] == "resumed from checkpoint 1"


def test_dependencies_on_finished_parents(store):
    done = store.submit("echo")
    job = store.claim("w")
    store.complete(job.id, job.fence, None)
    assert store.get(store.submit("echo", after=[done]))["status"] == "pending"
    dead = store.submit("echo")
    store.cancel(dead)
    orphan = store.get(store.submit("echo", after=[dead]))
    assert orphan["status"] == "cancelled" and orphan["cancelled_by"] == dead
    assert orphan["error"] == f"cancelled because ancestor {dead} cancelled"


def test_batch_with_dependencies_inside_the_batch(store):
    ids = store.submit_many(
        [{"type": "explore"}, {"type": "explore"}, {"type": "review", "after": [0, 1]}]
    )
    assert [store.get(i)["status"] for i in ids] == ["pending", "pending", "blocked"]
    assert store.get(ids[2])["pending_parents"] == 2


def test_delayed_job_waits_for_its_time(store):
    job_id = store.submit("echo", delay_s=0.2)
    assert store.claim("w") is None
    time.sleep(0.25)
    assert store.claim("w").id == job_id


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({"type": "echo", "payload": object()}, "cannot be encoded as JSON"),
        ({"type": "echo", "priority": "high"}, "priority 'high' is not an integer"),
        ({"type": "echo", "after": ["nope"]}, "'nope' is not an existing job"),
        ({"type": "echo", "max_attempts": 0}, "max_attempts 0 must be at least 1"),
        ({"type": ""}, "non-empty string 'type'"),
        ({"type": "echo", "colour": "red"}, "unknown task field"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(store, task, message):
    store.submit("echo")
    with pytest.raises(InvalidInput, match=message):
        store.submit_many([{"type": "echo"}, task])
    assert len(store.list_jobs()) == 1


def test_unknown_parent_and_unknown_job_are_clear_errors(store):
    with pytest.raises(UnknownParent, match="'ghost' is not an existing job"):
        store.submit("echo", after=["ghost"])
    for call in (store.get, store.cancel, store.retry):
        with pytest.raises(JobNotFound, match="'missing' does not exist"):
            call("missing")
