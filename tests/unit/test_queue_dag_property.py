"""Property tests: random job DAGs driven to the end by a simulated worker loop.

Each job depends on a random subset of earlier ones and has a planned outcome:
complete, fail, fail once then complete (a retried attempt), or be cancelled by the
user (while pending if the user is quick enough, else while running). Jobs come in
two batches with some work done in between, so later jobs may depend on parents
that already finished, failed or were cancelled.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from athenad.errors import InvalidTransition
from athenad.store.sqlite.queue import FINISHED, JobQueue
from tests.conftest import NOTHING_WAITING

OUTCOMES = ("complete", "fail", "flaky", "cancel")
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def dags(draw):
    """(parents per job, outcome per job, priority per job, size of the first batch)."""
    size = draw(st.integers(1, 14))
    parents = [
        sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else [] for i in range(size)
    ]
    outcomes = draw(st.lists(st.sampled_from(OUTCOMES), min_size=size, max_size=size))
    priorities = draw(st.lists(st.integers(0, 2), min_size=size, max_size=size))
    split = draw(st.integers(1, size))
    return parents, outcomes, priorities, split


class Sim:
    """One queue, the planned outcomes, and a log of what the worker saw."""

    def __init__(self, queue: JobQueue, parents, outcomes, priorities) -> None:
        self.queue = queue
        self.parents = parents
        self.outcomes = list(outcomes)
        self.priorities = priorities
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.completed: set[int] = set()
        self.claims: dict[int, int] = {}
        self.user_cancelled: set[int] = set()

    def submit(self, upto: int) -> None:
        start = len(self.ids)
        batch = []
        for i in range(start, upto):
            # Earlier batches are named by id, this batch by index.
            after = [p - start if p >= start else self.ids[p] for p in self.parents[i]]
            flaky = self.outcomes[i] == "flaky"
            batch.append(
                {
                    "type": f"job{i}",
                    "payload": {"i": i},
                    "priority": self.priorities[i],
                    "after": after,
                    "max_attempts": 2 if flaky else 1,
                    "backoff_s": 0,
                }
            )
        new = self.queue.submit_many(batch)
        self.ids.extend(new)
        self.index.update({job_id: start + n for n, job_id in enumerate(new)})

    def status(self, i: int) -> str:
        return self.queue.get(self.ids[i])["status"]

    def drive(self, data, max_steps: int | None = None) -> None:
        """Claim and settle jobs; sometimes cancel a ready job first, as a user would."""
        steps = 0
        while max_steps is None or steps < max_steps:
            steps += 1
            cancellable = [
                i
                for i, outcome in enumerate(self.outcomes[: len(self.ids)])
                if outcome == "cancel" and self.status(i) == "pending"
            ]
            if cancellable and data.draw(st.booleans(), label="cancel while pending"):
                i = data.draw(st.sampled_from(cancellable), label="job to cancel")
                assert self.queue.cancel(self.ids[i]) == "cancelled"
                self.user_cancelled.add(i)
                continue
            job = self.queue.claim("sim")
            if job is None:
                assert not cancellable, "a pending job was not claimable"
                return
            self.settle(job)

    def settle(self, job) -> None:
        i = self.index[job.id]
        # Never claimed before every parent completed, in the model and in the table.
        assert set(self.parents[i]) <= self.completed, (i, self.parents[i], self.completed)
        for parent in self.queue.get(job.id)["parents"]:
            assert self.queue.get(parent)["status"] == "completed"
        self.claims[i] = self.claims.get(i, 0) + 1
        outcome = self.outcomes[i]
        if outcome == "complete" or (outcome == "flaky" and job.attempt == 2):
            self.queue.complete(job.id, job.fence, {"i": i})
            self.completed.add(i)
        elif outcome == "flaky":
            assert self.queue.fail(job.id, job.fence, "first attempt fails") == "pending"
        elif outcome == "fail":
            assert self.queue.fail(job.id, job.fence, "boom", retryable=False) == "failed"
        else:
            assert self.queue.cancel(job.id) == "cancelling"
            self.queue.finish_cancelled(job.id, job.fence)
            self.user_cancelled.add(i)

    def ancestors(self, i: int) -> set[int]:
        found: set[int] = set()
        todo = list(self.parents[i])
        while todo:
            p = todo.pop()
            if p not in found:
                found.add(p)
                todo.extend(self.parents[p])
        return found

    def check_final(self) -> dict[int, dict]:
        """Every job ended, and ended as its plan and its ancestors say."""
        rows = {i: self.queue.get(job_id) for i, job_id in enumerate(self.ids)}
        assert self.queue.counts() == {**NOTHING_WAITING, "blocked": 0, "pending": 0, "running": 0}
        for i, row in rows.items():
            assert row["status"] in FINISHED, (i, row["status"])
            if not set(self.parents[i]) <= self.completed:
                assert row["status"] == "cancelled", (i, row["status"])
                cause = row["cancelled_by"]
                assert cause in self.index, (i, cause)
                assert self.index[cause] in self.ancestors(i)
                assert rows[self.index[cause]]["status"] in ("failed", "cancelled")
                assert i not in self.claims
                continue
            expected = {
                "complete": "completed",
                "flaky": "completed",
                "fail": "failed",
                "cancel": "cancelled",
            }[self.outcomes[i]]
            assert row["status"] == expected, (i, row["status"], self.outcomes[i])
        for i, row in rows.items():
            if row["status"] == "failed":
                for d in range(len(self.ids)):
                    if i in self.ancestors(d):
                        assert rows[d]["status"] == "cancelled", (i, d)
        return rows


@pytest.mark.slow
@SETTINGS
@given(dag=dags(), data=st.data(), pause=st.integers(0, 6))
def test_random_dags_end_settled_and_respect_dependencies(dag, data, pause):
    parents, outcomes, priorities, split = dag
    with tempfile.TemporaryDirectory() as tmp, JobQueue(Path(tmp) / "athena.db") as queue:
        sim = Sim(queue, parents, outcomes, priorities)
        sim.submit(split)
        sim.drive(data, max_steps=pause)
        sim.submit(len(parents))
        sim.drive(data)
        sim.check_final()
        for i in range(len(parents)):
            expected = 2 if outcomes[i] == "flaky" and i in sim.completed else 1
            assert sim.claims.get(i, expected) == expected


def requeue_model(sim: Sim, rows: dict[int, dict], failed: int) -> set[int]:
    """Which jobs a retry of ``failed`` brings back: those it cancelled, nearest first,
    as long as no other parent is still failed or cancelled."""
    back = {failed}
    # Parents have lower indexes than their children, so index order is nearest first.
    caused = sorted(i for i, row in rows.items() if row["cancelled_by"] == sim.ids[failed])
    for i in caused:
        if all(rows[p]["status"] == "completed" or p in back for p in sim.parents[i]):
            back.add(i)
    return back


@pytest.mark.slow
@SETTINGS
@given(dag=dags(), data=st.data())
def test_retry_of_a_failed_job_brings_back_what_it_cancelled(dag, data):
    parents, outcomes, priorities, _ = dag
    with tempfile.TemporaryDirectory() as tmp, JobQueue(Path(tmp) / "athena.db") as queue:
        sim = Sim(queue, parents, outcomes, priorities)
        sim.submit(len(parents))
        sim.drive(data)
        rows = sim.check_final()
        failed = [i for i, row in rows.items() if row["status"] == "failed"]
        if not failed:
            return
        target = data.draw(st.sampled_from(failed), label="job to retry")
        back = requeue_model(sim, rows, target)

        # The cause is fixed: whatever comes back now completes.
        for i in back:
            sim.outcomes[i] = "complete"
        assert queue.retry(sim.ids[target]) == "pending"
        for i in range(len(parents)):
            row = queue.get(sim.ids[i])
            if i in back:
                ready = all(p in sim.completed for p in parents[i])
                assert row["status"] == ("pending" if ready else "blocked"), (i, row["status"])
                assert row["cancelled_by"] is None and row["attempts"] == 0
            else:
                assert row["status"] == rows[i]["status"], (i, row["status"])
                if row["status"] == "cancelled" and i not in sim.user_cancelled:
                    cause = sim.index[row["cancelled_by"]]
                    assert cause in sim.ancestors(i)
                    assert queue.get(sim.ids[cause])["status"] in ("failed", "cancelled")
        with pytest.raises(InvalidTransition):
            queue.retry(sim.ids[target])

        sim.drive(data)
        sim.check_final()
        for i in back:
            assert queue.get(sim.ids[i])["status"] == "completed", i
