"""Whoever makes a job ready wakes the idle workers at once."""

from __future__ import annotations

import pytest

from athenad.store.sqlite import queue as sqlite_queue


@pytest.fixture
def wakeups(monkeypatch):
    calls: list = []
    monkeypatch.setattr(sqlite_queue, "wake_workers", lambda run_dir: calls.append(run_dir))
    return calls


def test_completing_wakes_others_for_a_released_job_this_worker_does_not_take(queue, wakeups):
    waiting = queue.submit("older")  # ready before the child: claimed next, by id
    parent = queue.submit("parent", priority=1)
    child = queue.submit("child", after=[parent])
    job = queue.claim("w1")
    assert job.id == parent
    wakeups.clear()
    released, claimed = queue.complete_and_claim(parent, job.fence, None, "w1")
    assert released == [child] and claimed.id == waiting
    assert wakeups, "the released child waits for the next idle poll"


def test_completing_does_not_wake_when_this_worker_takes_the_only_released_job(queue, wakeups):
    parent = queue.submit("parent")
    child = queue.submit("child", after=[parent])
    job = queue.claim("w1")
    wakeups.clear()
    released, claimed = queue.complete_and_claim(parent, job.fence, None, "w1")
    assert released == [child] and claimed.id == child
    assert wakeups == []
