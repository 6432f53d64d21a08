"""Workers draining short jobs claim and complete them in batches, and give back what
they claimed but could not start soon."""

from __future__ import annotations

import json
import textwrap
import time

import pytest

from athenad.store.sqlite.queue import JobQueue
from tests.conftest import wait_until

pytestmark = pytest.mark.timeout(90)

AGENTS = textwrap.dedent(
    """
    import os, time

    def nap(ctx):
        time.sleep(ctx.payload["seconds"])
        return ctx.payload["seconds"]

    def mark(ctx):
        with open(ctx.payload["file"], "a") as out:
            out.write(f"{ctx.job_id} {os.getpid()}\\n")
        return None
    """
)


@pytest.fixture
def batch_home(home):
    (home.root / "batchagents.py").write_text(AGENTS)
    (home.root / "athena.toml").write_text(
        '[agents]\nnap = "batchagents:nap"\nmark = "batchagents:mark"\n'
    )
    return home


def log_events(home, event: str) -> list[dict]:
    """Events of the foreground daemon's log (its stderr, kept by the test fixture)."""
    found = []
    for line in (home.state_dir / "test-daemon.log").read_text().splitlines():
        if f'"{event}"' in line and line.startswith("{"):
            found.append(json.loads(line))
    return found


def all_finished(queue: JobQueue, ids: list[str]) -> bool:
    return all(queue.get(job_id)["status"] == "completed" for job_id in ids)


def test_a_backlog_of_short_jobs_completes_once_each_with_batched_commits(
    batch_home, daemon_factory
):
    daemon_factory(workers=2)
    with JobQueue(batch_home.db_path) as queue:
        ids = queue.submit_many([{"type": "echo", "payload": n} for n in range(600)])
        wait_until(lambda: all_finished(queue, ids), timeout=60, what="the backlog to drain")
        rows = [queue.get(job_id) for job_id in ids]
    assert {(row["attempts"], row["interruptions"]) for row in rows} == {(1, 0)}
    assert [row["result"] for row in rows] == list(range(600))
    # Several completions shared one commit (one log line per commit).
    batches = log_events(batch_home, "jobs_completed")
    assert batches and max(entry["count"] for entry in batches) > 1
    assert sum(entry["count"] for entry in batches) + len(
        log_events(batch_home, "job_completed")
    ) == len(ids)


def test_jobs_queued_behind_a_long_job_are_handed_to_another_worker(
    batch_home, daemon_factory, tmp_path
):
    daemon_factory(workers=2)
    marks = tmp_path / "marks.txt"
    with JobQueue(batch_home.db_path) as queue:
        # Warm both workers up on short jobs so their batches grow.
        warm = queue.submit_many([{"type": "echo"} for _ in range(200)])
        wait_until(lambda: all_finished(queue, warm), timeout=30, what="the warm-up")
        tasks = [{"type": "nap", "payload": {"seconds": 4}}]
        tasks += [{"type": "mark", "payload": {"file": str(marks)}} for _ in range(40)]
        ids = queue.submit_many(tasks)
        started = time.monotonic()
        wait_until(lambda: all_finished(queue, ids[1:]), timeout=30, what="the short jobs")
        # The short jobs did not wait for the long one, whoever claimed them first.
        assert time.monotonic() - started < 3.5
        assert queue.get(ids[0])["status"] == "running"
        rows = [queue.get(job_id) for job_id in ids[1:]]
    assert {(row["attempts"], row["interruptions"]) for row in rows} == {(1, 0)}
    lines = marks.read_text().splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(ids[1:])  # each ran once
