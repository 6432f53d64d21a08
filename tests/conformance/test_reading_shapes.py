"""What reads return: the same keys, value types and text timestamps on every backend."""

from __future__ import annotations

import pytest

from athenad.errors import InvalidInput
from tests.conftest import NOTHING_WAITING

JOB_KEYS = {
    "id", "type", "agent_type", "payload", "status", "priority", "parent_job_id",
    "pending_parents", "created_at", "started_at", "completed_at", "duration_ms",
    "attempts", "max_attempts", "backoff_s", "interruptions", "run_after", "timeout_s",
    "result", "error", "traceback", "cancelled_by", "cancel_requested_at", "worker_id",
    "worker_pid", "lease_expires_at", "fence", "checkpoint_iteration", "session_id",
    "resumed_from", "checkpoint_note", "run_started_at", "prior_run_ms", "parents",
    "queue", "unique_key", "concurrency_key", "wait_reason", "approval_question",
    "approval_data", "approval_decision", "approval_note", "approval_deadline",
    "approval_timeout_s", "progress", "progress_message", "progress_at", "log_seq",
    "log_bytes", "log_dropped", "wait_event_key", "model", "tokens_in", "tokens_out",
    "cost_usd", "budget_usd",
}  # fmt: skip
RUNNING_KEYS = {
    "id", "fence", "worker_id", "worker_pid", "run_started_at", "lease_expires_at",
    "timeout_s", "cancel_requested_at", "interruptions",
}  # fmt: skip


def is_timestamp_text(value: object) -> bool:
    """'YYYY-MM-DD HH:MM:SS.fff', SQLite's own format with milliseconds."""
    return (
        isinstance(value, str)
        and len(value) == 23
        and value[4] == value[7] == "-"
        and value[10] == " "
        and value[19] == "."
    )


def finished_job(store) -> str:
    job_id = store.submit("explore", {"prompt": "x"}, priority=2, timeout=30, backoff_s=2)
    job = store.claim("w", 99)
    store.complete(job.id, job.fence, {"answer": [1, 2]})
    return job_id


def test_get_has_every_column_with_its_type(store):
    job = store.get(finished_job(store))
    assert set(job) == JOB_KEYS
    for key in ("created_at", "started_at", "completed_at", "run_after", "run_started_at"):
        assert is_timestamp_text(job[key]), (key, job[key])
    assert job["payload"] == {"prompt": "x"} and job["result"] == {"answer": [1, 2]}
    assert job["status"] == "completed" and job["parents"] == []
    for key in ("priority", "attempts", "max_attempts", "fence", "duration_ms", "worker_pid"):
        assert type(job[key]) is int, key
    assert type(job["backoff_s"]) is float and type(job["timeout_s"]) is float
    assert job["lease_expires_at"] is None and job["cancel_requested_at"] is None
    assert job["queue"] == "default" and job["unique_key"] is None
    assert (job["log_seq"], job["log_bytes"], job["log_dropped"]) == (0, 0, 0)


def test_list_jobs_newest_first_with_filters(store):
    a = store.submit("explore")
    b = store.submit("plan", after=[a])
    assert [j["type"] for j in store.list_jobs()] == ["plan", "explore"]
    assert [j["id"] for j in store.list_jobs(status="pending")] == [a]
    assert [j["id"] for j in store.list_jobs(type="plan")] == [b]
    assert [j["id"] for j in store.list_jobs(status="blocked", type="explore")] == []
    assert [j["id"] for j in store.list_jobs(limit=1)] == [b]
    listed = store.list_jobs()[0]
    assert set(listed) == JOB_KEYS and listed["parents"] == [a]
    assert listed == store.get(b)
    with pytest.raises(InvalidInput, match="status 'nope'"):
        store.list_jobs(status="nope")


def test_counts_and_states(store):
    a = store.submit("explore")
    b = store.submit("plan", after=[a])
    assert store.counts() == {**NOTHING_WAITING, "blocked": 1, "pending": 1, "running": 0}
    job = store.claim("w")
    assert store.counts() == {**NOTHING_WAITING, "blocked": 1, "pending": 0, "running": 1}
    store.fail(job.id, job.fence, "boom")
    assert store.states([a, b, "missing"]) == {
        a: ("failed", None, "boom", None),
        b: ("cancelled", None, f"cancelled because ancestor {a} failed", a),
    }


def test_running_jobs_shape(store):
    store.submit("echo", timeout=5)
    store.claim("w", 7)
    (row,) = store.running_jobs()
    assert set(row) == RUNNING_KEYS
    assert is_timestamp_text(row["run_started_at"]) and is_timestamp_text(row["lease_expires_at"])
    assert row["worker_pid"] == 7 and row["timeout_s"] == 5.0 and row["interruptions"] == 0
