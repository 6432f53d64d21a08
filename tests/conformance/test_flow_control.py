"""Named queues, limits, unique keys, scheduled jobs and provider rate limits: the same
behaviour on every backend."""

from __future__ import annotations

import threading
import time

import pytest

from athenad.errors import InvalidInput, InvalidTransition, JobNotFound, StaleFence
from athenad.store.queues import QueueLimits


def claim_all(store, worker: str = "w", **options) -> list:
    claimed = []
    while (job := store.claim(worker, **options)) is not None:
        claimed.append(job)
    return claimed


def queue_row(store, name: str) -> dict:
    return next(row for row in store.queues() if row["name"] == name)


def test_jobs_go_to_the_default_queue_unless_told(store):
    a = store.submit("echo")
    b = store.submit("echo", queue="models")
    assert (store.get(a)["queue"], store.get(b)["queue"]) == ("default", "models")
    assert [row["name"] for row in store.queues()] == ["default", "models"]
    assert queue_row(store, "models")["counts"]["pending"] == 1
    with pytest.raises(InvalidInput, match="queue name 'no spaces' is not valid"):
        store.submit("echo", queue="no spaces")


def test_a_paused_queue_is_passed_over_until_resumed(store):
    held = store.submit("echo", queue="slow", priority=9)
    free = store.submit("echo")
    store.pause_queue("slow")
    assert queue_row(store, "slow")["state"] == "paused"
    assert [job.id for job in claim_all(store)] == [free]
    store.pause_queue("slow", paused=False)
    assert [job.id for job in claim_all(store)] == [held]
    assert queue_row(store, "slow")["state"] == "open"


def test_pausing_survives_reopening(store_factory):
    first = store_factory()
    first.pause_queue("slow")
    first.submit("echo", queue="slow")
    first.close()
    again = store_factory()
    assert queue_row(again, "slow")["paused"] is True
    assert again.claim("w") is None


def test_concurrency_caps_running_jobs_of_a_queue(store):
    ids = [store.submit("echo", queue="models") for _ in range(3)]
    store.set_queue_limits("models", QueueLimits(concurrency=2))
    first = claim_all(store)
    assert [job.id for job in first] == ids[:2]
    store.complete(first[0].id, first[0].fence)
    assert [job.id for job in claim_all(store)] == ids[2:]
    row = queue_row(store, "models")
    assert (row["concurrency"], row["counts"]["running"]) == (2, 2)
    store.set_queue_limits("models", QueueLimits(concurrency=None))
    assert queue_row(store, "models")["concurrency"] is None


def test_concurrency_holds_when_workers_claim_at_once(store_factory):
    setup = store_factory()
    setup.set_queue_limits("one", QueueLimits(concurrency=1))
    for _ in range(6):
        setup.submit("echo", queue="one")
    stores = [store_factory() for _ in range(4)]
    got: list = []
    barrier = threading.Barrier(len(stores))

    def claim(store) -> None:
        barrier.wait()
        for _ in range(5):
            job = store.claim("w")
            if job is not None:
                got.append(job.id)

    threads = [threading.Thread(target=claim, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(got) == 1
    assert setup.counts()["running"] == 1 and setup.counts()["pending"] == 5


def test_a_rate_limit_caps_starts_per_period(store):
    ids = [store.submit("echo", queue="api") for _ in range(4)]
    store.set_queue_limits("api", QueueLimits(rate="2/m"))
    started = claim_all(store)
    assert [job.id for job in started] == ids[:2]
    for job in started:
        store.complete(job.id, job.fence)
    assert claim_all(store) == []  # finished jobs still count against the window
    row = queue_row(store, "api")
    assert (row["rate"], row["starts_in_window"], row["counts"]["pending"]) == ("2/m", 2, 2)


def test_a_concurrency_key_caps_jobs_sharing_it(store):
    a = store.submit("echo", concurrency_key="repo-1")
    b = store.submit("echo", concurrency_key="repo-1")
    c = store.submit("echo", concurrency_key="repo-2")
    assert [job.id for job in claim_all(store)] == [a, c]
    assert [job.id for job in claim_all(store, key_limit=2)] == [b]


def test_a_unique_key_gives_one_live_job(store):
    first = store.enqueue([{"type": "echo", "unique_key": "nightly"}])[0]
    again = store.enqueue([{"type": "echo", "unique_key": "nightly"}])[0]
    assert not first.duplicate and again.duplicate and again.id == first.id
    assert store.submit("echo", unique_key="nightly") == first.id
    job = store.claim("w")
    assert store.submit("echo", unique_key="nightly") == first.id  # running still holds it
    store.complete(job.id, job.fence)
    later = store.enqueue([{"type": "echo", "unique_key": "nightly"}])[0]
    assert not later.duplicate and later.id != first.id


def test_unique_submitters_racing_get_one_job(store_factory):
    stores = [store_factory() for _ in range(4)]
    ids: list[str] = []
    barrier = threading.Barrier(len(stores))

    def submit(store) -> None:
        barrier.wait()
        ids.append(store.submit("echo", unique_key="race"))

    threads = [threading.Thread(target=submit, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(ids) == 4 and len(set(ids)) == 1


def test_a_delayed_job_is_scheduled_until_its_time(store):
    job_id = store.submit("echo", delay_s=0.4)
    assert store.get(job_id)["status"] == "scheduled"
    assert store.counts()["scheduled"] == 1
    assert store.claim("w") is None
    start = store.next_start()
    assert start is not None and 0 < start - time.time() <= 0.4
    time.sleep(0.45)
    job = store.claim("w")
    assert job is not None and job.id == job_id


def test_run_at_a_moment(store):
    past = store.submit("echo", run_at="2020-01-01T00:00:00Z")
    future = store.submit("echo", run_at="2999-12-24T09:00:00+01:00")
    assert store.get(past)["status"] == "pending"
    assert store.get(future)["status"] == "scheduled"
    assert store.get(future)["run_after"] == "2999-12-24 08:00:00.000"
    with pytest.raises(InvalidInput, match="is not a moment"):
        store.submit("echo", run_at="tomorrow")
    with pytest.raises(InvalidInput, match="not both"):
        store.submit("echo", run_at="2999-01-01T00:00:00Z", delay_s=5)
    assert store.cancel(future) == "cancelled"


def test_a_delayed_child_waits_for_its_parents_then_its_time(store):
    parent = store.submit("echo")
    child = store.submit("echo", after=[parent], delay_s=3600)
    assert store.get(child)["status"] == "blocked"
    job = store.claim("w")
    store.complete(job.id, job.fence)
    assert store.get(child)["status"] == "scheduled"


def test_a_queue_gives_its_jobs_a_default_priority(store):
    store.set_queue_limits("urgent", QueueLimits(priority=7))
    assert store.get(store.submit("echo", queue="urgent"))["priority"] == 7
    assert store.get(store.submit("echo", queue="urgent", priority=1))["priority"] == 1
    assert store.get(store.submit("echo"))["priority"] == 0


def test_rate_limited_job_waits_without_spending_an_attempt_and_holds_its_queue(store):
    limited = store.submit("echo", queue="api", max_attempts=1)
    other = store.submit("echo", queue="api")
    elsewhere = store.submit("echo")
    job = store.claim("w")
    assert job.id == limited
    assert store.rate_limited(job.id, job.fence, 0.5, "provider: too many requests") == "api"
    row = store.get(limited)
    assert (row["status"], row["attempts"]) == ("pending", 0)
    assert row["wait_reason"] == "provider: too many requests"
    assert queue_row(store, "api")["state"] == "held"
    assert [j.id for j in claim_all(store)] == [elsewhere]  # the api queue waits
    time.sleep(0.55)
    again = claim_all(store)
    assert {j.id for j in again} == {limited, other}
    resumed = next(j for j in again if j.id == limited)
    assert resumed.attempt == 1 and store.get(limited)["wait_reason"] is None
    with pytest.raises(StaleFence):
        store.rate_limited(limited, job.fence, 1, "late")


def test_a_job_parks_for_approval_and_resumes_with_the_decision(store):
    job_id = store.submit("echo", max_attempts=1)
    job = store.claim("w")
    store.park_for_approval(job.id, job.fence, "ship it?", {"diff": "+1 line"})
    row = store.get(job_id)
    assert (row["status"], row["attempts"], row["approval_question"]) == (
        "awaiting_approval",
        0,
        "ship it?",
    )
    assert store.counts()["awaiting_approval"] == 1
    assert store.claim("w") is None  # holds no worker, and none takes it
    assert store.decide_approval(job_id, approved=True, note="looks good") == "approved"
    again = store.claim("w")
    assert again.id == job_id and again.attempt == 1
    assert (again.approval_decision, again.approval_note) == ("approved", "looks good")
    with pytest.raises(InvalidTransition, match="only a job awaiting approval"):
        store.decide_approval(job_id, approved=False)
    with pytest.raises(JobNotFound):
        store.decide_approval("nope", approved=True)
    with pytest.raises(StaleFence):
        store.park_for_approval(job_id, job.fence, "late?")


def test_an_approval_without_a_decision_in_time_comes_back_rejected(store):
    job_id = store.submit("echo", approval_timeout_s=0.3)
    job = store.claim("w")
    store.park_for_approval(job.id, job.fence, "ok?")
    deadline = store.next_start()
    assert deadline is not None and 0 < deadline - time.time() <= 0.3
    time.sleep(0.35)
    again = store.claim("w")
    assert again is not None and again.id == job_id
    assert again.approval_decision == "rejected"
    assert "no decision" in again.approval_note


def test_cancelling_a_job_awaiting_approval(store):
    job_id = store.submit("echo")
    job = store.claim("w")
    store.park_for_approval(job.id, job.fence, "ok?", timeout_s=60)
    assert store.cancel(job_id) == "cancelled"
    assert store.get(job_id)["status"] == "cancelled"


def test_a_retry_waits_while_another_job_holds_its_unique_key(store):
    first = store.submit("echo", unique_key="nightly")
    store.cancel(first)
    second = store.submit("echo", unique_key="nightly")
    with pytest.raises(InvalidTransition, match=f"which job {second} holds"):
        store.retry(first)
    store.cancel(second)
    assert store.retry(first) == "pending"
