"""Durable steps, sleeps and events through the real stores, the same on every backend."""

from __future__ import annotations

import time

import pytest

from athenad.errors import (
    InvalidInput,
    InvalidTransition,
    JobNotFound,
    StepFailed,
    StepsChanged,
)
from athenad.store.steps import step_store
from workers.interrupts import JobLost
from workers.steps import DurableSteps, ParkForEvent, ParkUntil


def run_of(store):
    """The job's next run: claimed, with its durable steps."""
    job = store.claim("w")
    assert job is not None
    return job, DurableSteps(step_store(store), job)


def test_a_finished_step_is_replayed_not_run_again(store):
    store.submit("agent")
    job, steps = run_of(store)
    calls = []

    def call(value):
        calls.append(value)
        return {"value": value, "pair": (1, 2)}

    assert steps.run("first", call, ("a",), {}) == {"value": "a", "pair": [1, 2]}
    assert steps.run("second", call, ("b",), {}) == {"value": "b", "pair": [1, 2]}
    store.rescue(job.id, job.fence, reason="worker died")  # a crash: the job runs again
    job, again = run_of(store)
    assert again.run("first", call, ("x",), {}) == {"value": "a", "pair": [1, 2]}
    assert again.run("second", call, ("y",), {}) == {"value": "b", "pair": [1, 2]}
    assert again.run("third", call, ("c",), {})["value"] == "c"
    assert calls == ["a", "b", "c"]
    rows = step_store(store).steps(job.id)
    assert [(r["seq"], r["name"], r["status"]) for r in rows] == [
        (0, "first", "completed"),
        (1, "second", "completed"),
        (2, "third", "completed"),
    ]


def test_repeated_names_in_a_loop_are_told_apart_by_number(store):
    store.submit("agent")
    job, steps = run_of(store)
    assert [steps.run("item", lambda i=i: i * i, (), {}) for i in range(3)] == [0, 1, 4]
    store.rescue(job.id, job.fence, reason="worker died")
    _job, again = run_of(store)
    assert [again.run("item", lambda: -1, (), {}) for _ in range(3)] == [0, 1, 4]


def test_changed_steps_on_replay_are_a_clear_error(store):
    store.submit("agent")
    job, steps = run_of(store)
    steps.run("fetch", lambda: 1, (), {})
    store.rescue(job.id, job.fence, reason="worker died")
    _job, again = run_of(store)
    with pytest.raises(StepsChanged, match="step 0 was recorded as 'fetch'.*now asks for 'plan'"):
        again.run("plan", lambda: 2, (), {})


def test_a_failed_step_replays_its_error_within_the_attempt_and_runs_again_on_a_retry(store):
    store.submit("agent", max_attempts=2, backoff_s=0)
    job, steps = run_of(store)

    def boom():
        raise RuntimeError("provider down")

    with pytest.raises(RuntimeError):
        steps.run("call", boom, (), {})
    store.rescue(job.id, job.fence, reason="worker died")  # same attempt after a crash
    job, again = run_of(store)
    with pytest.raises(StepFailed, match="step 'call' failed: provider down"):
        again.run("call", lambda: "ok", (), {})
    store.fail(job.id, job.fence, "step failed")  # attempt 1 of 2: retried
    time.sleep(0.01)
    _job, retry = run_of(store)
    assert retry.run("call", lambda: "ok", (), {}) == "ok"


def test_step_retries_and_bad_results(store):
    store.submit("agent")
    _job, steps = run_of(store)
    tries = []

    def flaky():
        tries.append(1)
        if len(tries) < 3:
            raise ConnectionError("reset")
        return "through"

    assert steps.run("flaky", flaky, (), {}, retries=2, backoff=0) == "through"
    assert step_store(store).steps(_job.id)[0]["tries"] == 3
    with pytest.raises(InvalidInput, match="the result of step 'bad' cannot be stored"):
        steps.run("bad", lambda: object(), (), {})
    with pytest.raises(InvalidInput, match="retries"):
        steps.run("x", lambda: 1, (), {}, retries=-1)


def test_a_worker_that_lost_the_job_cannot_record(store):
    store.submit("agent")
    job, steps = run_of(store)
    store.rescue(job.id, job.fence, reason="lease lapsed")
    _new_job, _ = run_of(store)
    with pytest.raises(JobLost):
        steps.run("late", lambda: 1, (), {})


def test_a_durable_sleep_parks_the_job_until_its_time(store):
    job_id = store.submit("agent")
    job, steps = run_of(store)
    with pytest.raises(ParkUntil) as parked:
        steps.sleep_until(time.time() + 0.4)
    step_store(store).park_until(job.id, job.fence, parked.value.wake_at)
    row = store.get(job_id)
    assert (row["status"], row["attempts"], row["worker_id"]) == ("scheduled", 0, None)
    assert store.claim("w") is None
    time.sleep(0.45)
    job, again = run_of(store)
    again.sleep_until(time.time() + 100)  # replayed: the recorded wake time has passed
    assert again.run("after", lambda: "awake", (), {}) == "awake"
    assert [r["status"] for r in step_store(store).steps(job_id)] == ["completed", "completed"]


def test_a_replayed_sleep_never_ends_before_its_time(store, monkeypatch):
    store.submit("agent")
    job, steps = run_of(store)
    wake_at = time.time() + 60.0006  # stored with whole milliseconds
    with pytest.raises(ParkUntil):
        steps.sleep_until(wake_at)
    # The job runs again early (its worker died before it parked), just before its time.
    store.rescue(job.id, job.fence, reason="test", count_interruption=False)
    job, again = run_of(store)
    monkeypatch.setattr(time, "time", lambda: wake_at - 0.0001)
    with pytest.raises(ParkUntil) as parked:
        again.sleep_until(wake_at + 100)
    assert parked.value.wake_at >= wake_at


def test_waiting_for_an_event_parks_and_sending_it_resumes(store):
    job_id = store.submit("agent")
    job, steps = run_of(store)
    with pytest.raises(ParkForEvent) as parked:
        steps.wait_for_event("review")
    events = step_store(store)
    assert events.park_for_event(job.id, job.fence, "review", parked.value.deadline) is True
    assert store.get(job_id)["status"] == "waiting"
    assert store.get(job_id)["wait_event_key"] == "review"
    assert store.claim("w") is None
    assert events.send_event(job_id, "other", {"n": 0}) == "kept"
    assert store.get(job_id)["status"] == "waiting"
    assert events.send_event(job_id, "review", {"verdict": "ok"}) == "delivered"
    _job, again = run_of(store)
    assert again.wait_for_event("review") == {"verdict": "ok"}
    assert again.wait_for_event("other") == {"n": 0}  # sent before the wait: kept


def test_an_event_sent_early_is_there_when_the_job_waits(store):
    job_id = store.submit("agent")
    assert step_store(store).send_event(job_id, "go", [1, 2]) == "kept"
    _job, steps = run_of(store)
    assert steps.wait_for_event("go") == [1, 2]


def test_an_event_arriving_while_parking_makes_the_job_ready(store):
    job_id = store.submit("agent")
    job, steps = run_of(store)
    with pytest.raises(ParkForEvent):
        steps.wait_for_event("go")
    events = step_store(store)
    events.send_event(job_id, "go", "now")  # between the look and the park
    assert events.park_for_event(job.id, job.fence, "go", None) is False
    assert store.get(job_id)["status"] == "pending"
    _job, again = run_of(store)
    assert again.wait_for_event("go") == "now"


def test_a_wait_times_out_with_none(store):
    job_id = store.submit("agent")
    job, steps = run_of(store)
    with pytest.raises(ParkForEvent) as parked:
        steps.wait_for_event("late", timeout=0.3)
    step_store(store).park_for_event(job.id, job.fence, "late", parked.value.deadline)
    assert store.claim("w") is None
    time.sleep(0.35)
    _job, again = run_of(store)
    assert again.wait_for_event("late", timeout=0.3) is None
    assert store.get(job_id)["wait_event_key"] is None


def test_events_for_unknown_or_finished_jobs_are_refused(store):
    events = step_store(store)
    with pytest.raises(JobNotFound):
        events.send_event("nope", "k", None)
    job_id = store.submit("agent")
    job = store.claim("w")
    store.complete(job.id, job.fence)
    with pytest.raises(InvalidTransition, match="is completed; events go to jobs"):
        events.send_event(job_id, "k", None)
    with pytest.raises(InvalidInput, match="event key"):
        events.send_event(job_id, "", None)
    with pytest.raises(JobNotFound):
        events.steps("nope")


def run_sql(store, sql: str, params: dict) -> None:
    """A raw statement on the store's database (to damage a record on purpose)."""
    if hasattr(store, "conn"):
        store.conn.execute(sql.replace("%(", ":").replace(")s", ""), params)
    else:
        with store.pool.connection() as conn:
            conn.execute(sql, params)


def test_a_large_result_is_kept_aside_and_replayed_whole(store):
    store.submit("agent")
    job, steps = run_of(store)
    big = "x" * 200_000
    assert steps.run("big", lambda: {"text": big}, (), {}) == {"text": big}
    assert step_store(store).steps(job.id)[0]["result_bytes"] > 200_000
    store.rescue(job.id, job.fence, reason="worker died")
    _job, again = run_of(store)
    assert again.run("big", lambda: {"text": "other"}, (), {}) == {"text": big}


def test_a_result_that_does_not_verify_is_not_replayed(store):
    store.submit("agent")
    job, steps = run_of(store)
    steps.run("one", lambda: "first", (), {})
    steps.run("two", lambda: "second", (), {})
    run_sql(
        store,
        "UPDATE job_steps SET result = %(bad)s WHERE job_id = %(id)s AND seq = 0",
        {"bad": '"tampered"', "id": job.id},
    )
    store.rescue(job.id, job.fence, reason="worker died")
    _job, again = run_of(store)
    calls = []
    assert again.run("one", lambda: calls.append(1) or "fresh", (), {}) == "fresh"
    assert again.run("two", lambda: calls.append(2) or "fresh two", (), {}) == "fresh two"
    assert calls == [1, 2]


def test_steps_are_counted_without_reading_them(store):
    store.submit("agent")
    job, steps = run_of(store)
    assert step_store(store).count(job.id) == 0
    steps.run("one", lambda: "x" * 100_000, (), {})
    steps.run("two", lambda: 2, (), {})
    assert step_store(store).count(job.id) == 2
