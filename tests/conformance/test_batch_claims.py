"""Batched claims and completions (a worker draining short jobs), on every backend."""

from __future__ import annotations

import threading

from athenad.store.jobspec import Finished, encode_json
from athenad.store.queues import QueueLimits


def done(job, result=None) -> Finished:
    return Finished(job.id, job.fence, encode_json(result, "a result"))


def test_a_batch_claim_takes_ready_jobs_in_claim_order(store):
    low = store.submit_many([{"type": "echo", "payload": n} for n in range(3)])
    high = store.submit("echo", "urgent", priority=5)
    claimed = store.claim_batch("w", 7, limit=3, lease_s=30)
    assert [job.id for job in claimed] == [high, low[0], low[1]]
    for job in claimed:
        row = store.get(job.id)
        assert row["status"] == "running" and row["worker_pid"] == 7
        assert job.fence == 1 and job.attempt == 1
    assert [job.id for job in store.claim_batch("w", limit=3)] == [low[2]]
    assert store.claim_batch("w", limit=3) == []


def test_a_batch_stops_before_a_job_whose_limits_need_checking(store):
    store.set_queue_limits("models", QueueLimits(concurrency=1))
    first = store.submit("echo", 1)
    limited = store.submit("echo", 2, queue="models")
    keyed = store.submit("echo", 3, concurrency_key="repo")
    later = store.submit("echo", 4)
    assert [job.id for job in store.claim_batch("w", limit=8)] == [first]
    # The limited job comes next, alone and under its queue's limit.
    assert [job.id for job in store.claim_batch("w", limit=8)] == [limited]
    assert [job.id for job in store.claim_batch("w", limit=8)] == [keyed]
    assert [job.id for job in store.claim_batch("w", limit=8)] == [later]


def test_a_batch_claim_passes_over_a_paused_queue(store):
    store.pause_queue("held")
    store.submit("echo", 1, queue="held")
    ready = store.submit("echo", 2)
    assert [job.id for job in store.claim_batch("w", limit=4)] == [ready]


def test_racing_batch_claims_take_each_job_once(store, store_factory):
    ids = set(store.submit_many([{"type": "echo", "payload": n} for n in range(60)]))
    taken: list[str] = []
    lock = threading.Lock()

    def drain() -> None:
        mine = store_factory()
        while claimed := mine.claim_batch("racer", limit=4):
            with lock:
                taken.extend(job.id for job in claimed)

    threads = [threading.Thread(target=drain) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(taken) == sorted(ids)


def test_complete_batch_completes_releases_and_claims_in_one_go(store):
    a, b = store.submit_many([{"type": "echo", "payload": 1}, {"type": "echo", "payload": 2}])
    child = store.submit("join", after=[a, b])
    only_a = store.submit("tail", after=[a])
    jobs = store.claim_batch("w", limit=2)
    report = store.complete_batch([done(jobs[0], {"n": 1}), done(jobs[1], [2])], "w", claim=4)
    assert sorted(report.released) == sorted([child, only_a])
    assert report.stale == []
    assert sorted(job.id for job in report.claimed) == sorted([child, only_a])
    assert store.get(a)["result"] == {"n": 1} and store.get(b)["result"] == [2]
    assert store.get(a)["status"] == "completed" and store.get(a)["duration_ms"] >= 0


def test_complete_batch_reports_a_stale_fence_and_commits_the_rest(store):
    first, second = store.submit_many([{"type": "echo"}, {"type": "echo"}])
    jobs = store.claim_batch("w", limit=2)
    store.rescue(jobs[1].id, jobs[1].fence, reason="lease expired")
    newer = store.claim("elsewhere")
    report = store.complete_batch([done(jobs[0], "ok"), done(jobs[1], "late")], "w")
    assert report.stale == [second] and report.claimed == []
    assert store.get(first)["status"] == "completed"
    row = store.get(second)
    assert (row["status"], row["fence"], row["result"]) == ("running", newer.fence, None)


def test_hand_back_returns_unstarted_jobs_as_if_never_claimed(store):
    job_id = store.submit("echo")
    (job,) = store.claim_batch("w", limit=2)
    assert store.hand_back([(job.id, job.fence)]) == 1
    row = store.get(job_id)
    assert row["status"] == "pending" and row["attempts"] == 0
    assert row["started_at"] is None and row["worker_id"] is None
    assert row["interruptions"] == 0
    again = store.claim("w2")
    assert again.id == job_id and again.fence > job.fence and again.attempt == 1
    # The first claim's fence no longer holds: a second hand-back changes nothing.
    assert store.hand_back([(job.id, job.fence)]) == 0
    assert store.get(job_id)["status"] == "running"


def test_hand_back_of_a_job_asked_to_cancel_ends_it_cancelled(store):
    job_id = store.submit("echo")
    (job,) = store.claim_batch("w", limit=2)
    store.cancel(job_id)
    assert store.hand_back([(job.id, job.fence)]) == 0
    assert store.get(job_id)["status"] == "cancelled"
